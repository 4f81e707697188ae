"""The job itself (``pytorch_training.main``) on the demo data, with callbacks added to its Trainer:
how a benchmark measures what the job does, not a copy of its loop."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  (puts the repository on sys.path)

from demo.prepare_clothing import build


def demo_inputs(folder: Path, train_rows: int, eval_rows: int, split: str = "stratified") -> Path:
    """The demo's /opt/ml layout with stratified samples of its splits, as `make demo` builds it."""
    build(folder, split, train_rows, eval_rows, seed=42)
    return folder


def job_folder(inputs: Path, base: Path, model: str | None = None, **overrides: Any) -> Path:
    """A job in ``base`` on the inputs of ``inputs``, with the demo's hyperparameters and ``overrides``."""
    shutil.copytree(inputs / "input", base / "input")
    hyperparameters = json.loads((inputs / "code" / "hyperparams" / "hyperparameters.json").read_text())
    hyperparameters.update(overrides)
    if model:
        hyperparameters["tokenizer"] = model
    (base / "code" / "hyperparams").mkdir(parents=True)
    (base / "code" / "hyperparams" / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    return base


def run_job(base: Path, *callbacks) -> float:
    """Run the job on ``base`` with ``callbacks`` on its Trainer; the wall seconds of its train step
    (loaders, Trainer, every training step and validation, checkpoints). Raises if the job fails."""
    import job.steps
    import pytorch_training

    build_trainer, train = job.steps.build_trainer, job.steps.train
    seconds = []

    def build_with_callbacks(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.extend(callbacks)
        return trainer

    def timed_train(*args, **kwargs):
        started = time.perf_counter()
        trained = train(*args, **kwargs)
        seconds.append(time.perf_counter() - started)
        return trained

    job.steps.build_trainer, job.steps.train = build_with_callbacks, timed_train
    os.environ["SAGEMAKER_BASE_DIR"] = str(base)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if pytorch_training.main([]) != 0:
            raise RuntimeError(f"the job in {base} failed: {(base / 'output' / 'failure').read_text()[:2000]}")
    finally:
        job.steps.build_trainer, job.steps.train = build_trainer, train
    return seconds[0]
