"""The ``serve`` command: gunicorn serving ``serving.app`` as SageMaker's hosting contract asks.

    python -m serving.server        # docker run IMAGE serve; SageMaker starts endpoints this way

gunicorn, the production WSGI server AWS's own framework containers run, pre-forks worker
processes that each load the model and score one request at a time: scoring is CPU-bound (ONNX
Runtime or PyTorch), so processes, not threads or an event loop, are what run requests side by
side. It restarts a worker that dies, kills one stuck past the timeout, and on SIGTERM stops
accepting and finishes the requests in flight.

Settings, all from the environment SageMaker sets (defaults in brackets):

- ``SAGEMAKER_BIND_TO_PORT`` [8080]: the port (the image carries the
  ``com.amazonaws.sagemaker.capabilities.accept-bind-to-port`` label);
- ``SAGEMAKER_MODEL_SERVER_WORKERS`` [the number of CPUs]: worker processes; each runs its engine
  on CPUs / workers threads;
- ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` [60]: seconds a request may take before its worker is
  replaced (loading the model is not a request and does not count; a test holds gunicorn to it);
- ``SAGEMAKER_MAX_PAYLOAD_IN_MB`` [6]: the largest request body (413 above it);
- ``INFERENCE_ENGINE`` [onnx]: ``onnx`` (ONNX Runtime on ``model.onnx``) or ``torch`` (``model.pth``);
- ``PREDICTION_THRESHOLD`` [0.5]: for a binary model, the probability of the second class from
  which it is predicted; ``best_f1`` takes the threshold the job tuned on val (``manifest.json``);
- the model: ``/opt/ml/model`` (``SM_MODEL_DIR`` or ``SAGEMAKER_BASE_DIR`` move it).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from gunicorn.app.base import BaseApplication

from contracts.errors import ConfigError
from contracts.logs import configure_logging
from contracts.paths import resolve_paths
from inference.outputs import DEFAULT_THRESHOLD
from inference.saved_model import ENGINES
from serving.app import DEFAULT_MAX_PAYLOAD_MB, ServingSettings, create_app

log = logging.getLogger("serving")

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
WORKER_BOOT_ERROR = 3  # gunicorn's exit status for a worker that could not start: the server stops


class Server(BaseApplication):
    def __init__(self, settings: ServingSettings, options: Mapping[str, object]):
        self.settings = settings
        self.options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        try:
            return create_app(self.settings)
        except Exception:
            log.exception("The model could not be loaded; stopping the server")
            # gunicorn halts on a worker's boot error (exit status 3); a plain sys.exit from a worker
            # forked after torch was imported can hang in the interpreter's shutdown instead
            os._exit(WORKER_BOOT_ERROR)


def settings_from_env(environ: Mapping[str, str]) -> tuple[ServingSettings, dict[str, object]]:
    """The application's settings and gunicorn's options; a bad value is a ConfigError naming it."""
    workers = _number(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1, int)
    timeout = _number(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT, int)
    port = _number(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, int)
    payload = _number(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", DEFAULT_MAX_PAYLOAD_MB, float)
    engine = environ.get("INFERENCE_ENGINE", "onnx").strip().lower()
    if engine not in ENGINES:
        raise ConfigError(f"INFERENCE_ENGINE={engine!r}; set it to one of {list(ENGINES)}.")
    model = resolve_paths(environ).model_dir
    settings = ServingSettings(
        model=model,
        engine=engine,
        threshold=_threshold(environ.get("PREDICTION_THRESHOLD", ""), model),
        max_payload_mb=payload,
        threads=max(1, (os.cpu_count() or 1) // workers),
        workers=workers,
    )
    options = {
        "bind": f"0.0.0.0:{port}",
        "workers": workers,
        "worker_class": "sync",
        "timeout": timeout,
        "graceful_timeout": timeout,
        "keepalive": 75,  # longer than the 60 s idle timeout of SageMaker's load balancer
        "accesslog": "-",
        "errorlog": "-",
        "control_socket_disable": True,  # gunicorn's runtime control socket: nothing here uses it
    }
    return settings, options


def _number(environ: Mapping[str, str], name: str, default, kind):
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise ConfigError(f"{name}={raw!r} is not a positive number; unset it or give one.")
    return value


def _threshold(raw: str, model: Path) -> float:
    raw = raw.strip().lower()
    if not raw:
        return DEFAULT_THRESHOLD
    if raw == "best_f1":
        manifest = model / "manifest.json"
        metrics = json.loads(manifest.read_text()).get("metrics", {}) if manifest.is_file() else {}
        tuned = metrics.get("best_f1_threshold")
        if not tuned:
            raise ConfigError(f"PREDICTION_THRESHOLD=best_f1 but {manifest} holds no tuned threshold; give a number.")
        return float(tuned["threshold"])
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise ConfigError(f"PREDICTION_THRESHOLD={raw!r}; give a probability between 0 and 1, or best_f1.")
    return value


def main() -> int:
    configure_logging()
    try:
        settings, options = settings_from_env(os.environ)
    except ConfigError as exc:
        log.error("Cannot serve: %s", exc)
        return 1
    log.info("Serving %s on %s with %d worker(s), engine %s", settings.model, options["bind"], options["workers"],
             settings.engine)
    Server(settings, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
