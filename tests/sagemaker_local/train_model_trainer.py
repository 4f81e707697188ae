"""A SageMaker training job in local mode with SDK v3's ``ModelTrainer`` (``Mode.LOCAL_CONTAINER``),
run with that SDK's own virtualenv (not the project's).

    python train_model_trainer.py SPEC.json

SPEC is the one ``train_estimator.py`` reads (``output_path`` is not used: v3 packs the archives in
``container_root/compressed_artifacts``). v3 turns each hyperparameter into JSON, keeping strings as
they are, and names the hosts ``algo-1``, ``algo-2``… The last line of stdout is one JSON object
with the keys ``train_estimator.py`` prints.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    from sagemaker.train.configs import Compute, InputData
    from sagemaker.train.local import local_container
    from sagemaker.train.model_trainer import Mode, ModelTrainer

    root = Path(spec["container_root"])
    root.mkdir(parents=True, exist_ok=True)
    report: dict = {"ok": False, "error": None, "job_name": None, "model_data": None, "hosts": {}, "volumes": {},
                    "artifacts": str(root / "compressed_artifacts")}
    container = local_container._LocalContainer

    def generate_compose_file(self, environment, volumes):
        content = generate(self, environment, volumes)
        for host, service in content["services"].items():
            report["volumes"][host] = service["volumes"]
            report["command"] = service.get("command")
        report["job_name"] = self.training_job_name
        return content

    def retrieve_artifacts(self, compose_data):
        for host in self.hosts:  # the SDK deletes each host's folder once the archives are made
            config = Path(self.container_root, host, "input", "config")
            report["hosts"][host] = {p.name: json.loads(p.read_text()) for p in sorted(config.glob("*.json"))}
        return retrieve(self, compose_data)

    generate, retrieve = container._generate_compose_file, container.retrieve_artifacts
    container._generate_compose_file, container.retrieve_artifacts = generate_compose_file, retrieve_artifacts

    try:
        trainer = ModelTrainer(
            training_mode=Mode.LOCAL_CONTAINER,
            training_image=spec["image_uri"],
            role=spec["role"],
            compute=Compute(instance_type="local_cpu", instance_count=spec["instance_count"]),
            hyperparameters=spec["hyperparameters"],
            environment=spec["environment"],
            local_container_root=str(root),
            base_job_name="multimodal-training",
        )
        channels = [InputData(channel_name=name, data_source=uri.removeprefix("file://"))
                    for name, uri in spec["channels"].items()]
        trainer.train(input_data_config=channels)
        report["ok"] = True
        report["model_data"] = str(root / "compressed_artifacts" / "model.tar.gz")
    except Exception as error:  # the report says why; the exit status says that it failed
        report["error"] = f"{type(error).__name__}: {error}"
        report["traceback"] = traceback.format_exc()
    sys.stdout.flush()
    print("\n" + json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
