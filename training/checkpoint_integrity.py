"""Is a checkpoint file whole, and did this job write it? Answered before Lightning loads one.

Three answers (``CheckpointFile.state``):

- ``damaged``: a PyTorch archive whose bytes are not all there or not all right: cut short (a copy
  that stopped, a disk that filled before this job wrote atomically) or changed (a bad disk, a
  partial sync). Every entry of the archive is read and its CRC-32 compared, so a changed byte in
  the weights is found too, not only a broken end (``torch.load`` with ``mmap`` reads neither).
- ``foreign``: a whole file that this job did not write: not a PyTorch archive, an archive holding
  objects other than tensors and plain data (refused by the safe ``weights_only`` load, never
  unpickled), or one without this job's run record (another program's Lightning checkpoint, say).
- ``intact``: a checkpoint of this job; ``run`` holds what ``RunState`` stored in it.

The check reads the file once at disk speed (about a second per GB) and unpickles only the small
record, with ``weights_only=True``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

ZIP_SIGNATURE = b"PK\x03\x04"  # the first bytes of every archive torch.save writes


@dataclass(frozen=True)
class CheckpointFile:
    path: Path
    state: str  # "intact", "damaged" or "foreign"
    problem: str = ""  # why it is damaged or foreign, in a few words
    run: dict = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.state == "intact"


def inspect_checkpoint(path: Path) -> CheckpointFile:
    """Whether ``path`` is an intact checkpoint of this job, a damaged one, or a file of something else."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(ZIP_SIGNATURE))
    except OSError as exc:
        return CheckpointFile(path, "damaged", f"it cannot be opened: {exc.strerror or exc}")
    if start != ZIP_SIGNATURE:
        return CheckpointFile(path, "foreign", "it is not a PyTorch checkpoint archive")
    try:
        with zipfile.ZipFile(path) as archive:
            bad_entry = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return CheckpointFile(path, "damaged", f"the archive is incomplete, probably cut short ({_first_line(exc)})")
    if bad_entry is not None:
        return CheckpointFile(path, "damaged", f"its entry {bad_entry} fails its CRC-32 check (changed bytes)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # the safe loader refuses code objects; anything else is not ours either
        return CheckpointFile(path, "foreign", f"it holds objects a safe load refuses ({_first_line(exc)})")
    run = saved.get("run") if isinstance(saved, dict) else None
    if not isinstance(run, dict):
        return CheckpointFile(path, "foreign", "it holds no run record of this job (another program wrote it)")
    return CheckpointFile(path, "intact", run=run)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
