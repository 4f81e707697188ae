"""A SageMaker training job in local mode with SDK v2's ``Estimator``, run with the SDK's own
virtualenv (not the project's).

    python train_estimator.py SPEC.json

SPEC holds ``image_uri``, ``role``, ``instance_count``, ``output_path`` (file://), ``container_root``
(where the SDK makes each host's folders), ``hyperparameters`` (a plain dict: the SDK turns every
value into a string, as for a real job), ``environment`` and ``channels`` (name → file:// folder).
With ``script_mode`` (``entry_point``, ``source_dir``, ``framework_version``, ``py_version``) the job
is the PyTorch framework estimator's: the source folder becomes /opt/ml/code and the image's toolkit
installs its requirements.txt and runs the entry point (hyperparameters JSON-encoded, as that
estimator does).
The job's log (the containers' output, streamed by docker-compose) goes to stdout; the last line of
stdout is one JSON object:

- ``ok``, ``error`` (the SDK's exception when the job failed), ``job_name``, ``model_data``,
  ``artifacts`` (the folder that receives ``model.tar.gz`` and ``output.tar.gz``: the output path);
- ``hosts``: per host, the config files the SDK wrote into ``/opt/ml/input/config``
  (``resourceconfig.json``, ``inputdataconfig.json``, ``hyperparameters.json``), copied before the
  SDK deletes them at the end of the job;
- ``volumes``: per host, the compose file's ``HOST_DIR:CONTAINER_DIR`` mounts, and ``command``.

Needs ``AWS_DEFAULT_REGION`` and (dummy) AWS credentials in the environment; tests/helpers/engine.py
sets them and opts out of the SDK's telemetry through ``SAGEMAKER_USER_CONFIG_OVERRIDE``.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession
    from sagemaker.local import image as local_image

    report: dict = {"ok": False, "error": None, "job_name": None, "model_data": None, "hosts": {}, "volumes": {},
                    "artifacts": spec["output_path"].removeprefix("file://")}
    container = local_image._SageMakerContainer

    def generate_compose_file(self, command, additional_volumes=None, additional_env_vars=None):
        content = generate(self, command, additional_volumes, additional_env_vars)
        for host, service in content["services"].items():
            report["volumes"][host] = service["volumes"]
            report["command"] = service.get("command")
        return content

    def cleanup(self, dirs_to_delete=None):
        for host in self.hosts:
            config = Path(self.container_root, host, "input", "config")
            report["hosts"][host] = {p.name: json.loads(p.read_text()) for p in sorted(config.glob("*.json"))}
        return clean(self, dirs_to_delete)

    generate, clean = container._generate_compose_file, container._cleanup
    container._generate_compose_file, container._cleanup = generate_compose_file, cleanup

    Path(spec["container_root"]).mkdir(parents=True, exist_ok=True)
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": spec["container_root"]}}
    common = {
        "image_uri": spec["image_uri"],
        "role": spec["role"],
        "instance_type": "local",
        "instance_count": spec["instance_count"],
        "output_path": spec["output_path"],
        "hyperparameters": spec["hyperparameters"],
        "environment": spec["environment"],
        "sagemaker_session": session,
    }
    if spec.get("script_mode"):
        from sagemaker.pytorch import PyTorch

        estimator = PyTorch(**spec["script_mode"], **common)
    else:
        estimator = Estimator(**common)
    try:
        estimator.fit(spec["channels"])
        report["ok"] = True
        report["model_data"] = estimator.model_data
    except Exception as error:  # the report says why; the exit status says that it failed
        report["error"] = f"{type(error).__name__}: {error}"
        report["traceback"] = traceback.format_exc()
    if estimator.latest_training_job is not None:
        report["job_name"] = estimator.latest_training_job.name
    sys.stdout.flush()
    print("\n" + json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
