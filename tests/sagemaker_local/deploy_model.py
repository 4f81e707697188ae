"""Deploy a trained model in local mode with SDK v2, as a user would: ``Model(...).deploy()`` to a local
endpoint, ``predict()`` rows, delete the endpoint, then a batch transform of a header-less CSV with
the same ``Model``. Runs in the SDK's own virtualenv (not the project's).

    python deploy_model.py SPEC.json

SPEC holds ``image_uri``, ``role``, ``model_data`` (file:// path of a model.tar.gz; local mode
unpacks it next to itself and mounts that folder as /opt/ml/model), ``container_root``,
``serving_port`` (the host port the endpoint's 8080 is published on), ``environment`` (the model's
container environment), ``requests`` (each ``name``, ``body_file``, ``content_type``, ``accept``)
and ``transform`` (``input`` and ``output``: file:// folders; ``content_type``, ``split_type``,
``assemble_with``, ``accept``, ``strategy``, ``max_payload``).

The containers' output goes to stdout; the last line of stdout is one JSON object: ``ok``,
``error`` (the SDK's exception), ``endpoint_name``, ``responses`` (per request name its body as
text), ``endpoint_deleted`` (the local client no longer lists the endpoint) and
``transform_outputs`` (the files the transform wrote, relative to its output folder).
"""

from __future__ import annotations

import json
import socket
import sys
import traceback
from pathlib import Path


def answers(port: int) -> bool:
    """Whether anything still accepts connections on the endpoint's port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    from sagemaker.deserializers import BytesDeserializer
    from sagemaker.local import LocalSession
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import IdentitySerializer

    report: dict = {"ok": False, "error": None, "endpoint_name": None, "responses": {}, "port_closed": False,
                    "transform_outputs": []}
    Path(spec["container_root"]).mkdir(parents=True, exist_ok=True)
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": spec["container_root"],
                                "serving_port": spec["serving_port"]}}
    model = Model(image_uri=spec["image_uri"], model_data=spec["model_data"], role=spec["role"],
                  env=spec["environment"], predictor_cls=Predictor, sagemaker_session=session)
    predictor = None
    try:
        predictor = model.deploy(initial_instance_count=1, instance_type="local")
        report["endpoint_name"] = predictor.endpoint_name
        for request in spec["requests"]:
            predictor.serializer = IdentitySerializer(content_type=request["content_type"])
            predictor.deserializer = BytesDeserializer(accept=request["accept"])
            body = Path(request["body_file"]).read_bytes()
            report["responses"][request["name"]] = predictor.predict(body).decode("utf-8")
        predictor.delete_endpoint()
        predictor = None
        report["port_closed"] = not answers(spec["serving_port"])

        job = spec["transform"]
        transformer = model.transformer(
            instance_count=1, instance_type="local", strategy=job["strategy"], assemble_with=job["assemble_with"],
            output_path=job["output"], accept=job["accept"], max_payload=job["max_payload"],
        )
        # local mode runs the transform before this returns; logs=False: the logs are in CloudWatch otherwise
        transformer.transform(job["input"], content_type=job["content_type"], split_type=job["split_type"],
                              logs=False)
        output = Path(job["output"].removeprefix("file://"))
        report["transform_outputs"] = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
        report["ok"] = True
    except Exception as error:  # the report says why; the exit status says that it failed
        report["error"] = f"{type(error).__name__}: {error}"
        report["traceback"] = traceback.format_exc()
    finally:
        if predictor is not None:
            predictor.delete_endpoint()
    sys.stdout.flush()
    print("\n" + json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
