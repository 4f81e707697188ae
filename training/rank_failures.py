"""A training rank that fails or vanishes ends the whole job, within a bounded time, with a reason.

Under DDP and FSDP every rank waits for the others in each collective (the gradient all-reduce of
every step). When one rank stops, either it raised (it writes its reason to ``output/failure``
when no rank has, and exits 1) or it was killed (SIGKILL: the kernel's out-of-memory killer, a
stopped instance) and says nothing. Either way its connections close, and the next collective on
every other rank fails at once with gloo's or NCCL's "Connection reset/closed by peer".
``rank_failures`` turns that error into a ``RankFailure`` naming the rank and its reason: the exit
status and the first line of its failure file for a rank this process started, "lost contact"
for a rank elsewhere. It also closes the process group, since the destructors of a group with a
dead peer abort the process (exit 134 instead of 1).

Lightning's own watch over the ranks it starts (``_ChildProcessObserver``) SIGKILLs the whole node
five seconds after one fails, usually before anything is written, so the job ended with status 137
and no failure file. ``ChildRanks`` replaces it: it polls the ranks this process started every
``POLL_SECONDS``, gives this process ``GRACE`` to fail with its reason, and otherwise (stuck in a
call that no closed connection ends) writes the failure file itself, stops the other ranks and
exits with status 1.

Bounds: a rank that dies ends the job within ``POLL_SECONDS + 2 x GRACE`` (about 61 s; a few seconds
measured, as the lost connection fails the next step at once). A rank that hangs without dying
ends it after the process group's timeout (torch's default, 30 minutes). A node that fails before
the ranks meet leaves the others waiting at the rendezvous for that timeout too, unless the
platform stops them first (SageMaker stops every host of a job when one fails).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch.distributed as dist
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher

from contracts.errors import UserError
from contracts.failure import write_failure
from training.distributed import local_rank

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# How long a rank that lost a connection waits to see the rank behind it exit: a rank that raised closes
# its connections when Python shuts down (after writing its failure file), and shutting down an
# interpreter with torch loaded can take seconds on a busy host.
EXIT_WAIT = 10.0
GRACE = 30.0  # seconds this process has to report a dead rank itself, and then to exit
# What gloo and NCCL say when a peer's connections close (its process ended or its host is gone).
LOST_PEER = (
    "Connection reset by peer",
    "Connection closed by peer",
    "Broken pipe",
    "Connection refused",
    "NCCL communicator was aborted",
    "remote process exited",
)
RESTART = "A restart with the same config resumes from the newest checkpoint in {folder}."


class RankFailure(UserError):
    """A training rank failed or vanished; the message says which, why, and how to continue."""


class ChildRanks(threading.Thread):
    """Watches the ranks this process started; on a failure, makes sure the job ends (module docstring)."""

    def __init__(
        self,
        children: list[subprocess.Popen],
        first_rank: int,
        world_size: int,
        failure_file: Path,
        folder: Path,
        grace: float = GRACE,
    ):
        super().__init__(daemon=True, name="child-ranks")
        self.children = children  # children[i] is global rank first_rank + i
        self.first_rank, self.world_size = first_rank, world_size
        self.failure_file, self.folder, self.grace = failure_file, folder, grace
        self.failed = threading.Event()
        self.reported = threading.Event()
        self.reason = ""
        atexit.register(self._stop_children)

    def run(self) -> None:
        while not self.failed.is_set():
            time.sleep(POLL_SECONDS)
            statuses = [child.poll() for child in self.children]
            if all(status == 0 for status in statuses):
                return
            for offset, status in enumerate(statuses):
                if status not in (None, 0):
                    self.reason = self._describe(self.first_rank + offset, status)
                    self.failed.set()
                    break
        log.error("%s", self.reason)
        if not self.reported.wait(self.grace):
            log.error("This rank did not stop within %.0fs of it; writing the failure and exiting", self.grace)
            write_failure(self.failure_file, RankFailure(f"{self.reason}. {RESTART.format(folder=self.folder)}"))
        else:
            time.sleep(self.grace)  # time to write the failure file and exit on its own
        self._stop_children()
        os._exit(1)

    def _describe(self, rank: int, status: int) -> str:
        reason = _first_line(self.failure_file)  # the rank's own, written before it exited (this one writes later)
        exit_status = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
        if reason:
            return f"Training rank {rank} of {self.world_size} failed ({exit_status}): {reason}"
        if status < 0:
            return (
                f"Training rank {rank} of {self.world_size} vanished: {exit_status}, from outside the job (the "
                "kernel's out-of-memory killer does this when the instance runs out of memory)"
            )
        return f"Training rank {rank} of {self.world_size} failed ({exit_status}) without a reason; see its log"

    def _stop_children(self) -> None:
        if self.failed.is_set():
            for child in self.children:
                if child.poll() is None:
                    child.kill()


class _WatchedLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher for the node's other ranks, with ``ChildRanks`` instead of its observer."""

    def __init__(self, launcher: _SubprocessScriptLauncher, watch: Callable[[list[subprocess.Popen]], None]):
        super().__init__(launcher.cluster_environment, launcher.num_processes, launcher.num_nodes)
        self.watch = watch

    def launch(self, function: Callable, *args: Any, trainer: pl.Trainer | None = None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            self.watch(self.procs)
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)


@contextlib.contextmanager
def rank_failures(trainer: pl.Trainer, failure_file: Path, checkpoints_dir: Path) -> Iterator[None]:
    """Around training: a failed or vanished rank becomes a ``RankFailure`` here and ends the job in bounded time.

    Replaces Lightning's watch over the ranks it starts on this node (a private attribute, checked
    against the pinned Lightning release by tests/test_fault_ranks.py).
    """
    world_size = trainer.world_size
    watchers: list[ChildRanks] = []
    parent = os.getppid()

    def watch(children: list[subprocess.Popen]) -> None:
        first = trainer.node_rank * trainer.num_devices + 1
        watchers.append(ChildRanks(children, first, world_size, failure_file, checkpoints_dir))
        watchers[0].start()

    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher) and world_size > 1:
        trainer.strategy._launcher = _WatchedLauncher(launcher, watch)
    try:
        yield
    except Exception as exc:
        reason = _rank_lost(exc, watchers, parent, started_by_lightning=isinstance(launcher, _SubprocessScriptLauncher))
        if reason is None or world_size == 1:
            raise
        for watcher in watchers:
            watcher.reported.set()
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        raise RankFailure(f"{reason}. {RESTART.format(folder=checkpoints_dir)}") from exc


def _rank_lost(exc: Exception, watchers: list[ChildRanks], parent: int, started_by_lightning: bool) -> str | None:
    """Why training stopped when another rank is the cause; None when this rank's own error is
    (a SIGTERM, say, which stops every rank together: the others' exits are not the cause)."""
    if not any(sign in str(exc) for sign in LOST_PEER):
        return None
    for watcher in watchers:  # a rank this process started: its exit is usually seen within a poll or two
        if watcher.failed.wait(EXIT_WAIT):
            return watcher.reason
    detail = str(exc).strip().splitlines()[0][:300]
    if started_by_lightning and local_rank() > 0 and _parent_gone(parent, wait=EXIT_WAIT):
        return (
            f"Training rank 0 of this node vanished: the process that started this rank is gone, killed from "
            f"outside ({detail})"
        )
    return (
        f"Training lost contact with another rank ({detail}): it failed or its instance stopped; its own "
        "output/failure and log say why"
    )


def _parent_gone(parent: int, wait: float) -> bool:
    """Whether the process that started this one has ended, waiting up to ``wait`` seconds: a killed
    process's connections close before the kernel hands its children to another parent, so the lost
    connection can be seen here a moment before ``getppid`` changes."""
    deadline = time.monotonic() + wait
    while os.getppid() == parent:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _first_line(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except OSError:
        return ""
