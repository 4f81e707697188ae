"""Shared set-up for the benchmarks: the demo data and model, timing, and result output.

Every benchmark is a script (``python benchmarks/<name>.py``) with a ``run(...) -> dict`` function
that returns its figures, ``--model`` and size options so the smoke test can run it tiny, and
``--json PATH`` so ``benchmarks/run_all.py`` can collect its figures into RESULTS.md. Each prints
its headline ratio as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

from demo.prepare_clothing import HERE as DEMO_DIR  # noqa: E402
from demo.prepare_clothing import cap_rows, load_reviews, minilm_dir, split_reviews  # noqa: E402
from hyperparams.config import Config  # noqa: E402
from hyperparams.loading import validate_config  # noqa: E402


def demo_config(model_path: str | None = None, **overrides: Any) -> Config:
    """The demo's hyperparameters (demo/hyperparameters.json), with the MiniLM path or ``model_path``."""
    raw = json.loads((DEMO_DIR / "hyperparameters.json").read_text())
    raw["tokenizer"] = model_path or str(minilm_dir())
    raw.update(overrides)
    return validate_config(raw)


def demo_frames(train_rows: int, eval_rows: int = 0, seed: int = 42) -> dict[str, pd.DataFrame]:
    """Stratified samples of the clothing reviews' demo splits (the same split as `make demo`)."""
    splits = split_reviews(load_reviews(), "stratified", seed)
    frames = {"train": cap_rows(splits["train"], train_rows, seed)}
    if eval_rows:
        frames["val"] = cap_rows(splits["val"], eval_rows, seed)
        frames["test"] = cap_rows(splits["test"], eval_rows, seed)
    return {k: v.reset_index(drop=True) for k, v in frames.items()}


def prepare(config: Config, frames: dict[str, pd.DataFrame]):
    """Tokenizer, backbone and preprocessed splits, exactly as the job builds them (no cache)."""
    from models.backbone import Backbone
    from processing.dataset import EncodedSplit
    from processing.preparation import encode_labels, encode_texts
    from processing.tabular import TabularEncoders
    from processing.text.loading import load_tokenizer

    tokenizer = load_tokenizer(config.tokenizer)
    backbone = Backbone.pretrained(config.tokenizer)
    _, labels = encode_labels(config, frames)
    tabular = TabularEncoders.fit(config, frames["train"], labels["train"])
    texts, _ = encode_texts(config, tokenizer, frames, files={})
    splits = {
        split: EncodedSplit(texts[split], tabular.transform(config, frame, split), labels[split])
        for split, frame in frames.items()
    }
    return tokenizer, backbone, splits


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls after an untimed one: a first call builds oneDNN
    kernels for new shapes and fills caches, which a job pays once, not per batch."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (``VmRSS``) or at its peak since start or the last
    :func:`reset_peak_rss` (``VmHWM``), in MB (Linux)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024


def reset_peak_rss() -> float:
    """Restart the peak from the current resident memory, and return that: a transient peak while
    importing would otherwise hide what the measured work adds."""
    Path("/proc/self/clear_refs").write_text("5")
    return rss_mb()


def arguments(description: str, **defaults: Any) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=None, help="tokenizer/BERT folder (default: the installed MiniLM)")
    parser.add_argument("--repeats", type=int, default=defaults.pop("repeats", 3))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    for name, value in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    return parser


def report(figures: dict[str, Any], headline: str, json_path: Path | None) -> None:
    """Print every figure, then the headline ratio last; optionally save the figures as JSON."""
    for name, value in figures.items():
        print(f"{name}: {value:.4g}" if isinstance(value, float) else f"{name}: {value}")
    if json_path:
        json_path.write_text(json.dumps({"figures": figures, "headline": headline}, indent=2))
    print(headline, flush=True)
