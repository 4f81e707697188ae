"""Fixtures shared by the test modules, and the test tiers.

Tiers: a test that runs the job (or a CLI) in a child process is marked ``subprocess``, one that
starts a second process ``multiprocess``, one that runs a benchmark script ``benchmark``, one that
builds and runs the real image under a Docker engine ``container``; each of them is also marked
``slow`` here. ``make test-fast`` runs ``-m "not slow"``; ``make test`` runs all.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers.data import CLASSES, build_tiny_bert, hyperparameters, make_rows, write_job  # noqa: E402
from helpers.engine import (  # noqa: E402
    PRETRAINED_CHANNEL,
    EngineUnavailable,
    ensure_framework_standin,
    ensure_project_image,
    ensure_standin,
    run_local_training_job,
    start_engine,
)
from helpers.jobs import run_job_in_process, run_script  # noqa: E402

SLOW_REASONS = ("subprocess", "multiprocess", "benchmark", "container")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(reason) for reason in SLOW_REASONS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_bert))


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


@pytest.fixture(scope="session")
def binary_job(tmp_path_factory, tiny_bert) -> Path:
    """A finished binary job (in this process) on CSV splits whose ids are zero-padded digits ("00007")."""
    sizes = (("train", 96), ("val", 32), ("test", 32))
    frames = {split: make_rows(n, seed=i) for i, (split, n) in enumerate(sizes)}
    for frame in frames.values():
        frame["uid"] = [f"{row:06d}" for row in range(len(frame))]
    base = write_job(tmp_path_factory.mktemp("binary_job"), hyperparameters(tiny_bert, max_epochs=2), frames=frames)
    assert run_job_in_process(base) == 0, (base / "output" / "failure").read_text()
    return base


@pytest.fixture(scope="session")
def multiclass_job(tmp_path_factory, tiny_bert) -> Path:
    """A finished multiclass job (in this process) on Parquet splits with string labels and integer ids."""
    sizes = (("train", 96), ("val", 30), ("test", 30))
    frames = {split: make_rows(n, seed=i, multiclass=True) for i, (split, n) in enumerate(sizes)}
    for i, frame in enumerate(frames.values()):
        frame["uid"] = np.arange(len(frame), dtype=np.int64) + 1000 * i
    hparams = hyperparameters(tiny_bert, max_epochs=1, is_binary=False, num_classes=3, multiclass_categories=CLASSES)
    base = write_job(tmp_path_factory.mktemp("multiclass_job"), hparams, fmt="parquet", frames=frames)
    assert run_job_in_process(base) == 0, (base / "output" / "failure").read_text()
    return base


@pytest.fixture(scope="session")
def script_job(tmp_path_factory, tiny_bert):
    """A finished binary job run as users run it: ``python pytorch_training.py train`` in its own
    process, three epochs. Returns the /opt/ml folder and the completed process (its stdout)."""
    base = write_job(tmp_path_factory.mktemp("script_job"), hyperparameters(tiny_bert, max_epochs=3), fmt="csv")
    result = run_script(base, args=("train",))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return base, result


# The real image under a real Docker engine (tests marked ``container``; helpers/engine.py). Without an
# engine these fixtures fail with what to install: a container test never skips.


@pytest.fixture(scope="session")
def docker_engine():
    """A Docker engine that answers: the running one, or dockerd started here (as root)."""
    try:
        return start_engine()
    except EngineUnavailable as error:
        problem = str(error)
    pytest.fail(f"the container tests need a Docker engine: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def standin_base(docker_engine) -> str:
    """The tag of the CPU stand-in for the PyTorch base image (built once, cached by its recipe)."""
    try:
        return ensure_standin(docker_engine)
    except EngineUnavailable as error:
        problem = str(error)
    pytest.fail(f"the container tests cannot build the stand-in base image: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def training_image(docker_engine, standin_base) -> str:
    """The tag of the project image built FROM the stand-in from this working tree."""
    return ensure_project_image(docker_engine, standin_base)


@pytest.fixture(scope="session")
def framework_image(docker_engine) -> str:
    """The stand-in for SageMaker's PyTorch framework image (the stand-in base plus the toolkit), for script mode."""
    return ensure_framework_standin(docker_engine)


@pytest.fixture
def sagemaker_local_job(tmp_path, tiny_bert, docker_engine, training_image):
    """Runs a SageMaker training job in local mode on the test image and returns its ``LocalJob``:
    ``run(instance_count=1, sdk="v2", rows=(40, 12, 12), environment=None, **hyperparameters)``
    (``sdk``: "v2" for ``Estimator``, "v3" for ``ModelTrainer``; each SDK's virtualenv is made on
    first use). Channels train/val/test hold generated CSV splits; ``pretrained`` holds the tiny
    BERT, which the ``tokenizer`` hyperparameter names by its container path; ``HF_HUB_OFFLINE=1``."""
    runs = iter(range(100))

    def run(instance_count: int = 1, sdk: str = "v2", rows=(40, 12, 12), environment: dict | None = None,
            **overrides):
        work = tmp_path / f"job{next(runs)}"
        data = write_job(work / "data", {}, rows=rows) / "input" / "data"
        channels = {split: data / split for split in ("train", "val", "test")}
        channels["pretrained"] = tiny_bert
        hparams = hyperparameters(Path(PRETRAINED_CHANNEL), **{"max_epochs": 1, **overrides})
        return run_local_training_job(
            docker_engine, training_image, work, channels, hparams, sdk=sdk, instance_count=instance_count,
            environment={"HF_HUB_OFFLINE": "1", **(environment or {})},
        )

    return run
