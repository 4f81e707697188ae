"""Checkpoints that survive a kill and describe the run that wrote them; choosing one to resume from.

- Writes are atomic: the bytes go to a temporary file in the checkpoint folder, are flushed to
  disk, and the file is renamed over the target, so a checkpoint is either the old one or the
  new one, never truncated. (Lightning's own writer stages in the system temp folder and moves the
  file, which is a non-atomic copy when ``/tmp`` and the checkpoint folder are on different disks.)
- Each checkpoint carries the resolved config, the digests of the train and val files and their
  combined fingerprint (as nanoGPT's checkpoints carry their model arguments), the number of
  processes, the torch random states, and whether training had finished.
- On start, ``last.ckpt`` (else the newest ``epoch=N-step=M.ckpt``) is resumed when it is intact
  and its fingerprint matches this run (``max_epochs`` and ``early_stop_patience`` may differ, to
  train longer: ``training.continuation``). A damaged checkpoint gives way to the next intact one
  of the run, with a warning; a file this job did not write is an error
  (``training.checkpoint_integrity``). A checkpoint of a different run is an error, never silently
  resumed or overwritten: the message lists what differs and how to start over. So is one written
  by another number of processes (``devices=auto`` on another instance type or count): its data
  position is per process and its learning-rate schedule was planned for its own batches per
  process, so continuing it with another world size would train on other rows than it reports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from contracts.errors import ConfigError
from hyperparams.config import Config
from processing.files import SplitFiles
from training.checkpoint_integrity import CheckpointFile, inspect_checkpoint
from training.continuation import CONTINUABLE_FIELDS, continued_bounds, trains_again
from training.sampling import ResumableLoader

log = logging.getLogger(__name__)

LAST = "last.ckpt"
_STEP = re.compile(r"^epoch=(\d+)-step=(\d+)\.ckpt$")


def write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write`` fills a temporary file beside ``target`` (flushed to disk), which then replaces it:
    a kill at any moment leaves the old file or the new one, never a part. A killed write's
    temporary file (``.*.partial``) is removed at the next start."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.partial"
    try:
        with open(partial, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        write_atomically(Path(path), lambda f: torch.save(checkpoint, f))


def data_digests(files: Mapping[str, SplitFiles]) -> dict[str, str]:
    """SHA-256 of each split's input file (or of its shards)."""
    return {split: source.sha256() for split, source in files.items()}


def run_fingerprint(config: Config, data_digests: Mapping[str, str]) -> str:
    """What a checkpoint must match to be resumed: every input file, and every hyperparameter but the
    bounds a rerun may raise to train longer (``training.continuation``)."""
    settings = {k: v for k, v in config.model_dump(mode="json").items() if k not in CONTINUABLE_FIELDS}
    payload = json.dumps({"config": settings, "data": dict(data_digests)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class RunState(Callback):
    """Adds the run's identity, random state and completion to every checkpoint; restores them on resume."""

    def __init__(self, config: Config, data_digests: Mapping[str, str], last: Path):
        self.last = last
        self.config = config.model_dump(mode="json")
        self.data_digests = dict(data_digests)
        self.fingerprint = run_fingerprint(config, data_digests)
        self._finished = False
        self._rng: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        loader = trainer.train_dataloader
        checkpoint["run"] = {
            "fingerprint": self.fingerprint,
            "config": self.config,
            "data": self.data_digests,
            "training_finished": self._finished or trainer.should_stop,
            "world_size": trainer.world_size,
            "data_position": loader.position() if isinstance(loader, ResumableLoader) else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        run = checkpoint.get("run", {})
        if run.get("training_finished"):
            max_epochs, patience = self.config["max_epochs"], self.config["early_stop_patience"]
            if trains_again(checkpoint, trainer.early_stopping_callback, max_epochs, patience):
                log.info("Training had finished; it continues up to max_epochs=%d (early_stop_patience=%d)",
                         max_epochs, patience)
            else:
                trainer.should_stop = True  # max_epochs or early stopping had ended training; do not train past it
        self._rng = run.get("rng")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Restored here, after Lightning's set-up, so the first resumed step draws dropout masks
        # from exactly the state the interrupted run would have used.
        if self._rng is not None:
            torch.set_rng_state(self._rng["torch"])
            if self._rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._rng["cuda"])
            self._rng = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Checkpoint the final state, so a restart after training (say, during export) trains no further."""
        self._finished = True
        trainer.save_checkpoint(self.last)


def checkpoint_to_resume(folder: Path, config: Config, data_digests: Mapping[str, str], world_size: int) -> Path | None:
    """The checkpoint this run of ``world_size`` processes continues from, or None to start fresh.

    Candidates, newest first: ``last.ckpt``, then ``epoch=N-step=M.ckpt`` by step. Each is checked
    before Lightning sees it (``training.checkpoint_integrity``). A damaged one is skipped with a
    warning and the next intact checkpoint of this run is resumed; when none is intact the job
    fails instead of starting over. A foreign file fails the job: the folder holds something that
    is not this job's, and training on over it would bury it.

    Raises ConfigError for a foreign file, for a checkpoint of a different run or of another number
    of processes, and when every checkpoint is damaged.
    """
    damaged: list[CheckpointFile] = []
    for candidate in _candidates(folder):
        found = inspect_checkpoint(candidate)
        if found.state == "damaged":
            log.warning("Checkpoint %s is damaged (%s); looking for an older intact one", candidate, found.problem)
            damaged.append(found)
            continue
        if found.state == "foreign":
            raise ConfigError(
                f"Checkpoint {candidate} cannot be read as a checkpoint of this job ({found.problem}); move it out "
                f"of {folder} or delete it, or give the job an empty checkpoint folder (a new checkpoint_s3_uri, "
                "or another LocalPath in checkpointconfig.json)."
            )
        _check_same_run(candidate, found.run, config, data_digests, world_size)
        if damaged:
            log.warning(
                "Resuming from %s, the newest intact checkpoint of this run (skipped as damaged: %s); the steps "
                "after it are trained again",
                candidate,
                ", ".join(d.path.name for d in damaged),
            )
        elif continued := continued_bounds(found.run.get("config", {}), config.model_dump(mode="json")):
            log.info("Resuming from %s to continue training (%s; same data and other settings)", candidate, continued)
        else:
            log.info("Resuming from %s (same config and data as this run)", candidate)
        return candidate
    if damaged:
        problems = "; ".join(f"{d.path.name}: {d.problem}" for d in damaged)
        raise ConfigError(
            f"No intact checkpoint in {folder} ({problems}); this job will not start over on its own. Restore the "
            "folder (e.g. from the checkpoint_s3_uri copy), or delete these files to start training over."
        )
    return None


def _check_same_run(
    candidate: Path, run: dict, config: Config, data_digests: Mapping[str, str], world_size: int
) -> None:
    if run.get("fingerprint") != run_fingerprint(config, data_digests):
        raise ConfigError(
            f"Checkpoint {candidate} was written by a different run ({_differences(run, config, data_digests)}); "
            "this job will not resume it or write over it. Use an empty checkpoint folder (a new checkpoint_s3_uri, "
            "or another LocalPath in checkpointconfig.json), or delete the old checkpoints to start over."
        )
    saved = run.get("world_size", "an unknown number of")
    if saved != world_size:
        raise ConfigError(
            f"Checkpoint {candidate} was written by {saved} training processes and this run has {world_size}; "
            "its position in the data and its learning-rate schedule hold only for the same number. Resume on the "
            "instance type and instance_count that wrote it (GPUs per host x hosts = processes), or use an empty "
            "checkpoint folder to start over."
        )


def saved_run(checkpoint: Path) -> dict | None:
    """What ``RunState`` stored in ``checkpoint`` (None for a checkpoint written by something else)."""
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True).get("run")
    except Exception as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(
            f"Checkpoint {checkpoint} cannot be read ({type(exc).__name__}: {first_line}); "
            "delete it (or the whole checkpoint folder) to start training over."
        ) from exc


def _candidates(folder: Path) -> list[Path]:
    """``last.ckpt`` and the numbered checkpoints, newest first."""
    for partial in folder.glob(".*.partial"):  # left by a write that was killed; nothing writes at start
        partial.unlink(missing_ok=True)
    numbered = [(int(m[2]), int(m[1]), p) for p in folder.glob("epoch=*-step=*.ckpt") if (m := _STEP.match(p.name))]
    last = [folder / LAST] if (folder / LAST).is_file() else []
    return last + [path for *_, path in sorted(numbered, reverse=True)]


def _differences(run: dict | None, config: Config, data_digests: Mapping[str, str]) -> str:
    if not run or "config" not in run:
        return "it records no run configuration"
    now = config.model_dump(mode="json")
    changed = [
        f"{k}: {run['config'].get(k)!r} -> {v!r}"
        for k, v in now.items()
        if run["config"].get(k) != v and k not in CONTINUABLE_FIELDS
    ]
    saved_data = run.get("data", {})
    changed += [f"{split} data file changed" for split, d in data_digests.items() if saved_data.get(split) != d]
    shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
    return shown or "its fingerprint differs"
