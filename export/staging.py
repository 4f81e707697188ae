"""Stage a job's outputs and move them into place together, so a failed job leaves no partial set.

Each final folder gets a hidden work folder inside it (``.staging-<id>/``), so every move is a
rename within one filesystem: ``model/`` and ``output/data/`` are often separate mounts (SageMaker
local mode, docker-compose), where a rename from a sibling folder would fail. The job writes into
the staging folders; at the end each staged entry replaces the entry of the same name in its final
folder. Whatever a previous run left there is parked in the work folder until every folder is
done, so a stale file (``val_predictions.csv`` after a switch to Parquet, an old tokenizer's vocab)
never sits beside the new outputs. An error while moving puts every moved entry back, so the final
folders hold either the previous outputs or this run's, never a mix; only a process killed during
those few renames can leave one. Entries named in ``keep`` (``tensorboard_train/``, written during
training beside the evaluation files) are left as they are.

A work folder is named after its host and process (``.staging-<host>-<pid>-<id>``). At the start
only leftovers of this host whose process is gone are removed (or that carry this process's own
id, from an earlier life of a restarted container); another process's folder, on this host or on
another one sharing the folder, is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

WORK_PREFIX = ".staging-"
_OWNER = re.compile(rf"^{re.escape(WORK_PREFIX)}(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{{8}}$")


@contextlib.contextmanager
def staged_directories(*final_dirs: Path, keep: frozenset[str] = frozenset()) -> Iterator[tuple[Path, ...]]:
    """One staging folder per final folder; all move into place when the block succeeds, none when it fails."""
    for final_dir in final_dirs:  # all before any new work folder, in case two final folders are one
        _remove_leftovers(final_dir)
    works: list[Path] = []
    try:
        for final_dir in final_dirs:  # named before it is made: a stop in between leaves nothing behind
            works.append(_work_folder_name(final_dir))
            (works[-1] / "new").mkdir(parents=True)
            (works[-1] / "replaced").mkdir()
        yield tuple(work / "new" for work in works)
        _commit(list(zip(works, final_dirs)), keep)
    finally:
        for work in works:
            shutil.rmtree(work, ignore_errors=True)


def _remove_leftovers(final_dir: Path) -> None:
    """Work folders of a job of this host that was killed while staging."""
    for work in final_dir.glob(f"{WORK_PREFIX}*"):
        if _abandoned(work.name):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log.info("Leaving %s: another process is staging its outputs there", work)


def _abandoned(name: str) -> bool:
    owner = _OWNER.match(name)
    if owner is None or owner["host"] != socket.gethostname():
        return owner is None  # a folder of another host is that host's business
    pid = int(owner["pid"])
    return pid == os.getpid() or not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _work_folder_name(final_dir: Path) -> Path:
    return final_dir / f"{WORK_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _commit(pairs: list[tuple[Path, Path]], keep: frozenset[str]) -> None:
    """Park the previous entries and move every staged one into place; on any error undo every move."""
    moves: list[tuple[Path, Path]] = []
    try:
        for work, final_dir in pairs:
            for previous in sorted(final_dir.iterdir()):
                if previous.name not in keep and not previous.name.startswith(WORK_PREFIX):
                    _rename(previous, work / "replaced" / previous.name, moves)
            for item in sorted((work / "new").iterdir()):
                _rename(item, final_dir / item.name, moves)
    except BaseException:
        for source, target in reversed(moves):
            os.replace(target, source)
        raise


def _rename(source: Path, target: Path, moves: list[tuple[Path, Path]]) -> None:
    os.replace(source, target)
    moves.append((source, target))
