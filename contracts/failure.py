"""``output/failure``: why the job stopped, in a sentence a user can act on, then the details.

SageMaker shows the first 1024 characters of this file as the job's failure reason, so the first
line is kept short; the traceback follows for whoever needs it.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

from contracts.errors import UserError
from contracts.storage import full_folder, no_space_reason, out_of_space

log = logging.getLogger(__name__)

REASON_LIMIT = 1024
DEVICE_MEMORY_FIX = (
    "Out of GPU memory; lower batch_size (raise accumulate_grad_batches to keep the effective batch size), "
    "lower max_sen_len or max_total_chunks, or set fp16=true or gradient_checkpointing=true"
)
HOST_OUT_OF_MEMORY = "DefaultCPUAllocator: can't allocate memory"  # torch's RuntimeError when host RAM runs out


def failure_reason(exc: BaseException) -> str:
    """The first line of the failure file."""
    message = str(exc).strip()
    first = message.splitlines()[0] if message else ""
    if isinstance(exc, UserError):
        reason = first or type(exc).__name__
    elif isinstance(exc, (KeyboardInterrupt, SystemExit)):  # Lightning turns Ctrl+C into SystemExit
        reason = (
            "interrupted (Ctrl+C, or an exit raised inside the job) before it finished; a restart with the same "
            "config resumes from the newest checkpoint, if training had written one."
        )
    elif (full := out_of_space(exc)) is not None:  # a write that no job step named the folder of
        reason = no_space_reason(full_folder(full))
    elif _is_device_out_of_memory(exc):
        reason = f"{DEVICE_MEMORY_FIX} ({first})"
    elif isinstance(exc, MemoryError) or HOST_OUT_OF_MEMORY in message:
        reason = "Out of memory; lower batch_size or max_sen_len/max_total_chunks, or use a larger instance."
    else:
        reason = f"Unexpected {type(exc).__name__}: {first}. This looks like a bug; the traceback below shows where."
    return reason if len(reason) <= REASON_LIMIT else reason[: REASON_LIMIT - 3] + "..."


def _is_device_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), or the RuntimeError other backends raise; matched by name so
    the contract layer need not import torch."""
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def write_failure(path: Path, exc: BaseException) -> str:
    reason = failure_reason(exc)
    details = str(exc).strip().splitlines()[1:]
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([reason, *details, "", trace]), encoding="utf-8")
    except OSError as problem:  # a read-only or full output/: the log is all that is left
        log.error("Could not write the failure file %s (%s); the reason is only in this log", path, problem)
    return reason
