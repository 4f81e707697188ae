"""The folders the job writes to: checked before any slow work, and a full disk reported by folder.

Whether a folder can be written is found out by writing: a file is created in it and removed.
Permission bits say nothing to root (SageMaker runs the container as root), while a read-only
mount, a root-squashed NFS export or a folder owned by another user all refuse the file.

A full disk (``ENOSPC``, or ``EDQUOT`` for a quota) is reported with the folder the job was
writing, which torch's and the ONNX exporter's writers do not say: ``torch.save`` raises a
``RuntimeError`` that names no file, with the ``OSError`` only in its context. Each job step
that writes wraps its writes in :func:`writing_into`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from contracts.errors import StorageError

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
MORE_SPACE = "free space there, or give the job a larger volume (VolumeSizeInGB)"


def check_writable(folders: Mapping[str, Path], create: bool = True) -> None:
    """Create each folder (parents too) and a file in it, then remove both: the folders are left as
    they were. ``folders`` maps what the job writes there (and the setting that moves it) to the
    folder. ``create`` False (a dry run): only the folders that exist are tried. Raises
    ``StorageError`` naming the first folder that refuses."""
    for what, folder in folders.items():
        if not create and not folder.is_dir():
            continue
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
                pass
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
            refused = Path(os.fsdecode(exc.filename)) if exc.filename else folder
            at = "" if refused.is_relative_to(folder) else f" ({refused})"  # a parent that could not be made
            raise StorageError(
                f"Cannot write {what} to {folder}: {problem}{at}. Make the folder writable for the job's user "
                "(a read-write mount, its owner, no root squashing on NFS), or move it."
            ) from exc
        finally:
            for made in missing:  # innermost first
                with contextlib.suppress(OSError):
                    made.rmdir()


def out_of_space(exc: BaseException) -> OSError | None:
    """The full-disk ``OSError`` that ``exc`` is or was raised from (its cause or context), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno in OUT_OF_SPACE:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def no_space_reason(folder: Path | None, what: str = "") -> str:
    written = f" {what}" if what else ""
    if folder is None:
        return f"No space left on device while writing{written}: {MORE_SPACE}."
    return f"No space left on device while writing{written} to {folder}: {MORE_SPACE}."


def full_folder(full: OSError, default: Path | None = None) -> Path | None:
    """The folder the failed write was for: the file's folder when the error names a file outside
    ``default`` (or there is no default), else ``default``."""
    if full.filename:
        path = Path(os.fsdecode(full.filename))
        if default is None or not path.is_relative_to(default):
            return path.parent
    return default


@contextlib.contextmanager
def writing_into(folder: Path, what: str) -> Iterator[None]:
    """A full disk met in the block becomes a ``StorageError`` that names ``folder`` and ``what``."""
    try:
        yield
    except Exception as exc:
        full = out_of_space(exc)
        if full is None:
            raise
        where = full_folder(full, folder)
        raise StorageError(no_space_reason(where, what if where == folder else "")) from exc
