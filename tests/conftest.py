from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from synthetic import build_tiny_bert  # noqa: E402


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
