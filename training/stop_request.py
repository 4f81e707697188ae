"""The job's SIGTERM handler: standard library only, so the entry script installs it before the
seconds of importing torch, Lightning and transformers, and a stop at any moment is reported.

What a signal does depends on where the job is:
- while the job finds its folders (``hold``, the first lines of the entry script): it raises the
  flag, and ``Interrupted`` follows as soon as a failure file can be written;
- before training (imports, configuration, preprocessing) and after it (export, evaluation): it
  raises ``Interrupted`` at once; nothing is lost that a restart does not redo;
- during training (``deferred``): it only raises the flag that ``training.interruption`` acts on
  at the end of the current step, after saving ``last.ckpt``;
- once the outputs start moving into place (``let_finish``, which first raises for a stop that a
  library swallowed): it is logged and the job finishes, since stopping then could only leave a
  half-moved set of outputs or, once they are moved, report a failure of a job that succeeded.

Once a stop was received, whatever error the job ends with is reported as the stop (``reported``):
a library that caught it may have raised an error of its own instead.

The warning it logs names the job step the signal arrived in (the innermost function of
``job.steps`` running at the time, or ``imports``), so a log tells where a stop met the job.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from types import FrameType

from contracts.errors import Interrupted

log = logging.getLogger(__name__)

STEPS_MODULE = "job.steps"
ENTRY_MODULES = ("__main__", "pytorch_training")
OUTSIDE_TRAINING = (
    "interrupted (SIGTERM) outside training; a restart with the same config resumes from the newest "
    "checkpoint, if training had written one"
)


class StopRequest:
    """The SIGTERM handler and what it received."""

    def __init__(self) -> None:
        self.received = False
        self.deferred = False
        self.finishing = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        where = job_step(frame)
        if self.finishing:
            log.warning("Received signal %d in %s, with the outputs in place or moving there; finishing", signum, where)
            return
        self.received = True
        log.warning("Received signal %d in %s; stopping", signum, where)
        if not self.deferred:
            raise Interrupted(OUTSIDE_TRAINING)

    def check(self) -> None:
        """Raise ``Interrupted`` if a stop was received and swallowed: libraries probing their optional
        dependencies at import time catch every ``Exception``, this job's stop included."""
        if self.received and not self.deferred and not self.finishing:
            raise Interrupted(OUTSIDE_TRAINING)

    def reported(self, exc: BaseException) -> BaseException:
        """What the failure file reports for ``exc``, the error the job ends with: the ``Interrupted``
        that ``exc`` is or wraps; else, once a stop was received, an ``Interrupted`` too, since a
        library that caught the stop may raise an error of its own without it (the ONNX exporter
        turns it into "Failed to decompose the FX graph"); else ``exc`` itself."""
        found = stop_behind(exc)
        if found is not None or not self.received:
            return found or exc
        interrupted = Interrupted(OUTSIDE_TRAINING)
        interrupted.__cause__ = exc
        return interrupted

    def hold(self) -> None:
        """From here a stop only raises the flag, until ``release``: for the first lines of the job,
        where the failure file's location is not known yet and could not be written."""
        self.deferred = True

    def release(self) -> None:
        """End ``hold``: a stop received meanwhile raises ``Interrupted`` now. Called as the first line of
        the block that reports failures, so no moment is left where a stop escapes the report."""
        self.deferred = False
        self.check()

    def let_finish(self) -> None:
        """The outputs are about to move into place: a stop received so far ends the job now (the ONNX
        exporter, for one, catches it and carries on); from here on a signal is logged and the job finishes."""
        self.check()
        self.finishing = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = signal.signal(signal.SIGTERM, self.handle)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)


def job_step(frame: FrameType | None) -> str:
    """The innermost ``job.steps`` function running in ``frame``'s stack; else ``imports`` while a
    module is being imported; else the innermost function of the entry script (``start-up`` if none)."""
    entry: str | None = None
    importing = False
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module == STEPS_MODULE:
            return frame.f_code.co_name
        importing = importing or frame.f_code.co_filename.startswith("<frozen importlib")
        if entry is None and module in ENTRY_MODULES:
            entry = frame.f_code.co_name
        frame = frame.f_back
    return "imports" if importing else entry or "start-up"


def stop_behind(exc: BaseException) -> Interrupted | None:
    """The ``Interrupted`` that ``exc`` is, or that a library wrapped into its own error (the ONNX
    exporter reports an exception inside its tracing as an export error), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Interrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
