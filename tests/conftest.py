from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from synthetic import CLASSES, build_tiny_bert, hyperparameters, make_rows, write_job  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert))


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
    )


@pytest.fixture
def run_main(monkeypatch):
    """Run the entry script's main() in this process (fast: no interpreter start-up) and return
    its exit status."""
    import pytorch_training

    def run(base: Path, extra_env: dict | None = None, args: list[str] | None = None) -> int:
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
        for key, value in (extra_env or {}).items():
            monkeypatch.setenv(key, value)
        return pytorch_training.main(args or [])

    return run


def run_job_in_process(base: Path) -> int:
    """main() against ``base`` as the /opt/ml root, for session fixtures (no monkeypatch there)."""
    import pytorch_training

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_BASE_DIR", str(base))
        return pytorch_training.main([])


@pytest.fixture(scope="session")
def binary_job(tmp_path_factory, tiny_bert) -> Path:
    """A finished binary job on CSV splits whose ids are zero-padded digits ("00007")."""
    sizes = (("train", 96), ("val", 32), ("test", 32))
    frames = {split: make_rows(n, seed=i) for i, (split, n) in enumerate(sizes)}
    for frame in frames.values():
        frame["uid"] = [f"{row:06d}" for row in range(len(frame))]
    base = write_job(tmp_path_factory.mktemp("binary_job"), hyperparameters(tiny_bert, max_epochs=2), frames=frames)
    assert run_job_in_process(base) == 0, (base / "output" / "failure").read_text()
    return base


@pytest.fixture(scope="session")
def multiclass_job(tmp_path_factory, tiny_bert) -> Path:
    """A finished multiclass job on Parquet splits with string labels and integer ids."""
    sizes = (("train", 96), ("val", 30), ("test", 30))
    frames = {split: make_rows(n, seed=i, multiclass=True) for i, (split, n) in enumerate(sizes)}
    for i, frame in enumerate(frames.values()):
        frame["uid"] = np.arange(len(frame), dtype=np.int64) + 1000 * i
    hparams = hyperparameters(tiny_bert, max_epochs=1, is_binary=False, num_classes=3, multiclass_categories=CLASSES)
    base = write_job(tmp_path_factory.mktemp("multiclass_job"), hparams, fmt="parquet", frames=frames)
    assert run_job_in_process(base) == 0, (base / "output" / "failure").read_text()
    return base
