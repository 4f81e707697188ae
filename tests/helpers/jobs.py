"""Running the job the ways users do, and checking what a run left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from export.staging import WORK_PREFIX

ROOT = Path(__file__).resolve().parents[2]

MODEL_FILES = [
    "model.pth",
    "model_artifacts.pth",
    "model.onnx",
    "impute_dict.json",
    "impute_dict.pkl",
    "risk_table_map.json",
    "risk_table_map.pkl",
    "tokenizer.json",
    "tokenizer_config.json",
    "hyperparameters.json",
    "manifest.json",
]


def run_script(base: Path, extra_env: dict | None = None, args: tuple[str, ...] = (), timeout: int = 600):
    """Run pytorch_training.py as a subprocess against ``base`` as the /opt/ml root."""
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), **(extra_env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "pytorch_training.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def run_job_in_process(base: Path, extra_env: dict | None = None) -> int:
    """main() against ``base`` as the /opt/ml root, in this process (for session fixtures, where
    the ``run_main`` fixture is not available)."""
    import pytorch_training

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_BASE_DIR", str(base))
        for key, value in (extra_env or {}).items():
            patch.setenv(key, value)
        return pytorch_training.main([])


def failure_reason(base: Path) -> str:
    """The first line of output/failure: what SageMaker shows as the job's failure reason."""
    return (base / "output" / "failure").read_text().splitlines()[0]


def assert_failed_cleanly(base: Path, status: int, *fragments: str) -> None:
    """Exit status 1, a short first line holding every fragment, nothing in model/, no staging left."""
    assert status == 1
    reason = failure_reason(base)
    assert len(reason) < 1024
    for fragment in fragments:
        assert fragment in reason, reason
    assert not (base / "model").exists() or not any((base / "model").iterdir())
    assert not list(base.rglob(f"{WORK_PREFIX}*"))


def job_outputs(base: Path) -> dict[str, tuple[bytes, int]]:
    """Content and modification time of every file a run writes at its end: model/ and output/data/
    except the training curves. The time tells a rewrite with equal content (a resumed run's) apart."""
    folders = [base / "model", base / "output" / "data"]
    return {
        str(p.relative_to(base)): (p.read_bytes(), p.stat().st_mtime_ns)
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "tensorboard_train" not in p.parts
    }
