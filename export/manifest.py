"""``model/manifest.json``: where a model came from, so any model can be traced to its data and code.

What it was trained on (each split file's path, size, SHA-256 and rows, and the upstream step's
``model_artifacts_input`` files the job read: precomputed imputation, risk tables, feature
selection; and the earlier job's model its weights started from, if any, with its SHA-256),
with what (the resolved config and its hash, model class, parameter counts, library
versions, the code's git commit), when (start, end, duration), how it went (best checkpoint, the
weights exported, final metrics, ONNX parity) and the SHA-256 of every file beside it.
``config_sha256`` is the SHA-256 of the config as canonical JSON (keys sorted, no spaces, UTF-8),
so equal configs have equal hashes whatever their file layout.

A ``RunRecord`` is started with the job and writes the manifest last, into the same staging
folder as the other model files, so a manifest only ever describes files that exist.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
from torch import nn

from export.onnx_export import PARITY_TOLERANCE
from hyperparams.config import Config
from processing.cache import file_sha256
from processing.files import SplitFiles
from training.trainer import exported_checkpoint

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2  # 2: inputs.<split> lists its files (a channel may hold shards)
LIBRARIES = (
    "torch", "lightning", "transformers", "tokenizers", "torchmetrics", "onnx", "onnxruntime", "onnxscript",
    "pandas", "pyarrow", "numpy", "scikit-learn", "pydantic",
)
CODE_DIR = Path(__file__).resolve().parent.parent
_CHECKPOINT_NAME = re.compile(r"epoch=(\d+)-step=(\d+)")


@dataclass
class RunRecord:
    """Facts about one job, collected as it runs."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    pipeline_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    parent_model: dict[str, Any] | None = None  # the pretrained_model channel's model the weights started from
    _clock: float = field(default_factory=time.perf_counter, repr=False)

    def record_pipeline_inputs(self, files: Iterable[Path]) -> None:
        """Hash the ``model_artifacts_input`` files just after the job read them, so the manifest
        describes what was used even if the channel changes while the job trains."""
        self.pipeline_inputs = {path.name: file_entry(path) for path in files}

    def record_parent_model(self, entry: dict[str, Any]) -> None:
        """The earlier job's model this one started from (``models.warm_start.ParentModel.lineage``)."""
        self.parent_model = entry

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._clock

    def write_manifest(
        self,
        model_dir: Path,
        *,
        config: Config,
        files: Mapping[str, SplitFiles],
        frames: Mapping[str, pd.DataFrame],
        model: nn.Module,
        trainer: pl.Trainer,
        onnx_parity: float,
        metrics: dict,
    ) -> Path:
        """Write ``model_dir/manifest.json``; call it after every other model file is written."""
        config_json = config.model_dump(mode="json")
        ended = datetime.now(UTC)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "inputs": {split: split_entry(source, len(frames[split])) for split, source in files.items()},
            "model_artifacts_input": self.pipeline_inputs,
            "parent_model": self.parent_model,
            "config": config_json,
            "config_sha256": config_sha256(config_json),
            "model": {
                "model_class": config.model_class,
                "python_class": f"{type(model).__module__}.{type(model).__qualname__}",
                "parameters": sum(p.numel() for p in model.parameters()),
                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "pretrained": config.tokenizer,
            },
            "code": {"git_commit": git_commit(CODE_DIR)},
            "environment": environment(),
            "started_at": self.started_at.isoformat(),
            "ended_at": ended.isoformat(),
            "duration_seconds": round((ended - self.started_at).total_seconds(), 3),
            "training": training_summary(trainer, config),
            "metrics": metrics,
            "onnx_parity": {
                "max_abs_diff": onnx_parity,
                "tolerance": PARITY_TOLERANCE,
                "passed": bool(onnx_parity <= PARITY_TOLERANCE),
            },
            "artifacts": {
                p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                for p in sorted(model_dir.iterdir())
                if p.is_file() and p.name != MANIFEST_NAME
            },
        }
        path = model_dir / MANIFEST_NAME
        path.write_text(json.dumps(manifest, indent=2))
        return path


def split_entry(source: SplitFiles, rows: int) -> dict[str, Any]:
    """A split's rows and SHA-256 (of its file, or of its shards together), and each file with its rows."""
    shard_rows = source.rows or (rows,)
    return {
        "rows": rows,
        "sha256": source.sha256(),
        "files": [{**file_entry(path), "rows": n} for path, n in zip(source.paths, shard_rows)],
    }


def file_entry(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def config_sha256(config_json: Mapping[str, Any]) -> str:
    canonical = json.dumps(config_json, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def git_commit(directory: Path) -> dict[str, Any] | None:
    """The commit the code was run from and whether it had local changes; None outside a git checkout."""
    try:
        commit = _git(directory, "rev-parse", "HEAD")
        dirty = bool(_git(directory, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def training_summary(trainer: pl.Trainer, config: Config) -> dict[str, Any]:
    """Where training ended, the best checkpoint by ``early_stop_metric`` (its epoch is 0-based, as
    in the checkpoint's name), and which weights were exported."""
    checkpoint = trainer.checkpoint_callback
    best_path = getattr(checkpoint, "best_model_path", "") or ""
    best_score = getattr(checkpoint, "best_model_score", None)
    return {
        "epochs_completed": trainer.current_epoch,
        "global_step": trainer.global_step,
        "monitor": config.early_stop_metric,
        "best": {**checkpoint_position(best_path), "score": float(best_score) if best_score is not None else None},
        "exported_weights": exported_weights(trainer, config),
        "precision": str(trainer.precision),
        "accelerator": type(trainer.accelerator).__name__,
        "devices": trainer.num_devices,
        "num_nodes": trainer.num_nodes,
    }


def exported_weights(trainer: pl.Trainer, config: Config) -> dict[str, Any]:
    """The weights in ``model.pth``, as ``trained_model`` chose them, and why when they are not the best."""
    path = exported_checkpoint(trainer, config)
    if path:
        return {"source": "best checkpoint", **checkpoint_position(path)}
    reason = "load_ckpt is true, but no best checkpoint was saved" if config.load_ckpt else "load_ckpt is false"
    return {"source": "last step", "step": trainer.global_step, "reason": reason}


def checkpoint_position(path: str) -> dict[str, Any]:
    """The checkpoint's path and its 0-based epoch and step, read from its name; None for each when absent."""
    found = _CHECKPOINT_NAME.search(Path(path).name)
    return {
        "checkpoint": path or None,
        "epoch": int(found.group(1)) if found else None,
        "step": int(found.group(2)) if found else None,
    }
