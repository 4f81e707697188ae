"""One resume decision per job: global rank 0 chooses the checkpoint, every rank trains from it.

Each node reads its own checkpoint folder, and without shared storage the folders differ (a
replaced instance starts empty; a sync may lag). A rank that resumed something else than rank 0,
or started fresh while rank 0 resumed, would train from another state: under DDP its optimizer,
schedule, step count and data position would be its own, and the ranks would soon wait for each
other in different collectives. So:

- global rank 0 chooses (``training.checkpoints.checkpoint_to_resume``: the newest intact
  checkpoint of this run, or none) and publishes the file's name and SHA-256;
- every process that exists from the start (each node's first process under Lightning's
  launcher, every process under torchrun) takes that decision. One whose folder lacks the file, or
  holds other bytes under its name, receives rank 0's bytes, writes them atomically into its own
  folder and resumes them; with no checkpoint at rank 0, it starts fresh too, whatever its folder
  holds (with a warning);
- the ranks Lightning starts later on a node inherit the node's decision in the environment
  (``DECISION_VARIABLE``), so they never choose for themselves.

The processes meet before the process group exists (that only happens when training starts, and
the decision is needed before preprocessing) through a key-value store (``torch.distributed.
TCPStore``) that rank 0 serves on ``MASTER_PORT + 1`` of ``MASTER_ADDR``, for ``DECISION_TIMEOUT``
at most. If rank 0 cannot decide (a foreign or another run's checkpoint), every process fails with
its reason.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, MutableMapping
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from contracts.errors import ConfigError
from processing.cache import file_sha256
from training.checkpoints import write_atomically
from training.distributed import TORCHRUN_VARIABLES, ProcessPlan, local_rank

log = logging.getLogger(__name__)

DECISION_VARIABLE = "MULTIMODAL_RESUME_CHECKPOINT"  # the node's decision, for the ranks Lightning starts later
PORT_OFFSET = 1  # the store listens on MASTER_PORT + 1; the process group takes MASTER_PORT itself
DECISION_TIMEOUT = timedelta(minutes=30)  # as long as the process group waits for a rank
CHUNK = 64 * 1024 * 1024  # checkpoint bytes per store value


def agreed_checkpoint(
    folder: Path, plan: ProcessPlan, decide: Callable[[], Path | None], environ: MutableMapping[str, str] | None = None
) -> Path | None:
    """The checkpoint every rank resumes (None: all start fresh); ``decide`` chooses it, on global rank 0 only."""
    env = os.environ if environ is None else environ
    if plan.world_size == 1:
        return decide()
    if plan.launcher == "lightning" and local_rank(env) > 0:  # started by this node's first process
        name = env.get(DECISION_VARIABLE, "")
        return folder / name if name else None
    if plan.launcher == "torchrun":
        index, members = int(env["RANK"]), int(env["WORLD_SIZE"])
    else:
        index, members = plan.node_rank, plan.num_nodes
    checkpoint = _exchange(folder, decide, index, members, _store_address(plan, env)) if members > 1 else decide()
    env[DECISION_VARIABLE] = checkpoint.name if checkpoint else ""
    return checkpoint


def _store_address(plan: ProcessPlan, env: MutableMapping[str, str]) -> tuple[str, int]:
    host = env.get("MASTER_ADDR") or plan.rendezvous.get("MASTER_ADDR")
    port = env.get("MASTER_PORT") or plan.rendezvous.get("MASTER_PORT")
    if not host or not port:
        raise ConfigError(
            "The ranks cannot agree on a checkpoint: MASTER_ADDR and MASTER_PORT are not set. Start the job "
            f"with torchrun ({', '.join(TORCHRUN_VARIABLES)}) or on SageMaker hosts (SM_HOSTS, SM_CURRENT_HOST)."
        )
    return host, int(port) + PORT_OFFSET


def _exchange(folder: Path, decide: Callable[[], Path | None], index: int, members: int, address: tuple[str, int]):
    host, port = address
    store = dist.TCPStore(host, port, is_master=index == 0, timeout=DECISION_TIMEOUT, wait_for_workers=False)
    if index == 0:
        return _publish(store, decide, members)
    return _follow(store, folder, index)


def _publish(store: dist.TCPStore, decide: Callable[[], Path | None], members: int) -> Path | None:
    try:
        checkpoint = decide()
    except Exception as exc:
        store.set("decision", json.dumps({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}))
        raise
    if checkpoint is None:
        store.set("decision", json.dumps({"checkpoint": None}))
    else:
        store.set("decision", json.dumps({"checkpoint": checkpoint.name, "sha256": file_sha256(checkpoint)}))
        needed = [i for i in range(1, members) if store.get(f"answer/{i}") == b"need"]
        if needed:
            log.info("Sending %s to the ranks without it (processes %s)", checkpoint.name, needed)
            data = checkpoint.read_bytes()
            chunks = [data[start : start + CHUNK] for start in range(0, len(data), CHUNK)] or [b""]
            for number, chunk in enumerate(chunks):
                store.set(f"bytes/{number}", chunk)
            store.set("bytes/count", str(len(chunks)))
    for i in range(1, members):
        store.get(f"done/{i}")  # the store stays up until every process has what it needs
    return checkpoint


def _follow(store: dist.TCPStore, folder: Path, index: int) -> Path | None:
    decision = json.loads(store.get("decision"))
    try:
        if "error" in decision:
            raise ConfigError(f"Global rank 0 could not choose a checkpoint to resume: {decision['error']}")
        name = decision["checkpoint"]
        if name is None:
            left = sorted(p.name for p in folder.glob("*.ckpt"))
            if left:
                log.warning(
                    "Global rank 0 starts training fresh; the checkpoints here (%s in %s) are not used",
                    ", ".join(left),
                    folder,
                )
            return None
        local = folder / name
        if local.is_file() and file_sha256(local) == decision["sha256"]:
            store.set(f"answer/{index}", "have")
            log.info("Resuming from %s, the checkpoint global rank 0 chose (the same bytes)", local)
            return local
        store.set(f"answer/{index}", "need")
        count = int(store.get("bytes/count"))
        chunks = [store.get(f"bytes/{number}") for number in range(count)]
        write_atomically(local, lambda f: f.writelines(chunks))
        if file_sha256(local) != decision["sha256"]:
            raise ConfigError(f"The copy of global rank 0's checkpoint in {local} differs from it; restart the job.")
        log.warning("Resuming from %s, received from global rank 0: this node's checkpoint folder lacked it", local)
        return local
    finally:
        store.set(f"done/{index}", "1")
