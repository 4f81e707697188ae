"""Everything the job leaves in ``output/data`` after training.

``metrics.json``, ``predict_results.pth``, ``{val,test}_predictions.<input format>`` and
``tensorboard_eval/``: event files with every metric as a scalar and every figure as an image,
and the figures as PNG (``roc_curve``, ``pr_curve``, ``confusion_matrix``, ``calibration``).

The functions take every row of a split at once: global rank 0 scores the whole of val and test
itself while the other ranks wait, so nothing is gathered across ranks.

``best_f1_threshold`` (binary only) is tuned on val; when val makes F1 undefined at every threshold
(no positive label), it is absent and the top-level ``missing`` says why, like a missing metric of
a split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.tensorboard import SummaryWriter

from evaluation.metrics import best_f1_threshold, compute_metrics
from evaluation.plots import calibration_figure, confusion_figure, pr_figure, roc_figure, save_figure
from hyperparams.config import Config
from inference.outputs import DEFAULT_THRESHOLD, predicted_classes, prediction_frame
from processing.files import SplitFiles, write_table

log = logging.getLogger(__name__)

TUNED_METRICS = ["f1_score", "precision", "recall"]
NOT_SPLITS = ("best_f1_threshold", "missing")  # the other top-level entries of metrics.json


@dataclass
class SplitResult:
    y_true: np.ndarray  # class indices
    probs: np.ndarray  # [rows, classes]
    frame: pd.DataFrame  # the split as read (ids and original labels)
    file: SplitFiles | Path  # where it was read from: the predictions keep its format


def write_evaluation(output_dir: Path, config: Config, results: dict[str, SplitResult], step: int = 0) -> dict:
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics = evaluation_metrics(config, results)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    torch.save(prediction_tensors(results), output_dir / "predict_results.pth")
    for split, result in results.items():
        frame = prediction_frame(
            result.frame[config.id_name], result.frame[config.label_name], result.probs, config.class_labels,
            config.id_name, config.label_name, threshold=DEFAULT_THRESHOLD,
        )
        write_predictions(frame, output_dir, split, result.file)
    write_tensorboard(output_dir / "tensorboard_eval", config, results, metrics, step)
    for name, reason in missing_metrics(metrics):
        log.warning("%s is missing: %s", name, reason)
    return metrics


def write_predictions(frame: pd.DataFrame, output_dir: Path, split: str, input_file: SplitFiles | Path) -> Path:
    """``<split>_predictions.<the input file's format>``."""
    path = output_dir / f"{split}_predictions{input_file.suffix.lower()}"
    write_table(frame, path)
    return path


def evaluation_metrics(config: Config, results: dict[str, SplitResult]) -> dict:
    report = {
        split: compute_metrics(r.y_true, r.probs, config.metric_choices, config.class_labels).to_dict()
        for split, r in results.items()
    }
    if config.is_binary and "val" in results:
        threshold = best_f1_threshold(results["val"].y_true, results["val"].probs[:, 1])
        if threshold is None:
            report["missing"] = {
                "best_f1_threshold": f"no val sample has the positive label {config.class_labels[1]!r}, "
                "so F1 is undefined at every threshold"
            }
        else:
            tuned = {"threshold": threshold, "found_on": "val"}
            for split, r in results.items():
                at = compute_metrics(r.y_true, r.probs, TUNED_METRICS, config.class_labels, threshold)
                tuned[split] = at.to_dict()
            report["best_f1_threshold"] = tuned
    return report


def missing_metrics(metrics: dict) -> Iterator[tuple[str, str]]:
    """(name, reason) of everything in ``metrics.json`` that could not be computed."""
    yield from metrics.get("missing", {}).items()
    for split in (s for s in metrics if s not in NOT_SPLITS):
        yield from ((f"{split}/{name}", reason) for name, reason in metrics[split].get("missing", {}).items())


def metric_scalars(metrics: dict) -> Iterator[tuple[str, float]]:
    """(tag, value) for every number in ``metrics.json``: ``<split>/<metric>``,
    ``<split>/<metric>/<class>`` and ``best_f1_threshold/...``."""
    for split, values in ((s, v) for s, v in metrics.items() if s not in NOT_SPLITS):
        for name, value in values.items():
            if isinstance(value, float) and name != "threshold":
                yield f"{split}/{name}", value
        for name, classes in values.get("per_class", {}).items():
            yield from ((f"{split}/{name}/{label}", v) for label, v in classes.items() if v is not None)
    if tuned := metrics.get("best_f1_threshold"):
        yield "best_f1_threshold/threshold", tuned["threshold"]
        for split, at in tuned.items():
            if isinstance(at, dict):
                yield from ((f"best_f1_threshold/{split}/{m}", at[m]) for m in TUNED_METRICS if m in at)


def prediction_tensors(results: dict[str, SplitResult]) -> dict:
    """``y_true``/``y_pred`` of the test split at the top level (the original contract), and of
    every split under its name."""
    per_split = {
        split: {"y_true": torch.tensor(r.y_true), "y_pred": torch.tensor(r.probs)} for split, r in results.items()
    }
    top = per_split.get("test") or next(iter(per_split.values()))
    return {**top, **per_split}


def write_tensorboard(log_dir: Path, config: Config, results: dict[str, SplitResult], metrics: dict, step: int) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    scores = {split: (r.y_true, r.probs) for split, r in results.items()}
    threshold = DEFAULT_THRESHOLD if config.is_binary else None
    figures = {
        "roc_curve": roc_figure(scores, config.class_labels),
        "pr_curve": pr_figure(scores, config.class_labels),
        "confusion_matrix": confusion_figure(
            {s: r.y_true for s, r in results.items()},
            {s: predicted_classes(r.probs, DEFAULT_THRESHOLD) for s, r in results.items()},
            config.class_labels,
            threshold,
        ),
        "calibration": calibration_figure(scores, config.class_labels),
    }
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for tag, value in metric_scalars(metrics):
            writer.add_scalar(tag, value, step)
        for name, fig in figures.items():
            writer.add_figure(f"eval/{name}", fig, step, close=False)
            save_figure(fig, log_dir / f"{name}.png")


def metric_lines(metrics: dict) -> list[str]:
    """One stable line per final metric, e.g. ``test/auroc=0.9412``: a tuning job's regex reads these."""
    return [
        f"{split}/{name}={value:.4f}"
        for split in ("val", "test")
        for name, value in metrics.get(split, {}).items()
        if isinstance(value, float) and name != "threshold"
    ]
