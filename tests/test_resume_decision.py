"""One resume decision per job: two SageMaker "hosts" (one process each, their own /opt/ml and so
their own checkpoint folder, as on instances without shared storage) train together with DDP on
CPU. Global rank 0 decides; the host whose folder lacks the checkpoint receives it and both
train on from the same state."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import pytest
import torch

from helpers.data import hyperparameters, make_rows, write_job
from helpers.jobs import ROOT
from training.resume_decision import PORT_OFFSET

ROWS = (("train", 64), ("val", 16), ("test", 16))
HOSTS = ("algo-1", "algo-2")


def free_ports() -> int:
    """A port P with P + PORT_OFFSET free as well (the process group and the decision store)."""
    for _ in range(50):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + PORT_OFFSET))
            except OSError:
                continue
            return port
    raise AssertionError("no two free neighbouring ports")


def two_hosts(bases, tiny_bert, max_epochs: int, timeout: int = 300) -> list[str]:
    """Both hosts' jobs to the end; returns their logs (each asserted to have succeeded)."""
    port = free_ports()
    frames = {split: make_rows(n, seed=i) for i, (split, n) in enumerate(ROWS)}
    jobs = []
    for base, host in zip(bases, HOSTS):
        write_job(base, hyperparameters(tiny_bert, max_epochs=max_epochs, accelerator="cpu"), frames=frames)
        env = {
            **os.environ,
            "SAGEMAKER_BASE_DIR": str(base),
            "SM_HOSTS": '["algo-1", "algo-2"]',
            "SM_CURRENT_HOST": host,
            "MASTER_ADDR": "127.0.0.1",  # the hosts' names resolve nowhere here; the port is free
            "MASTER_PORT": str(port),
        }
        log = open(base / f"job-{max_epochs}.log", "w")  # noqa: SIM115 (closed with the process)
        command = [sys.executable, str(ROOT / "pytorch_training.py")]
        jobs.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    try:
        statuses = [job.wait(timeout=timeout) for job in jobs]
    finally:
        for job in jobs:
            job.kill()
    logs = [(base / f"job-{max_epochs}.log").read_text() for base in bases]
    assert statuses == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    return logs


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.multiprocess
def test_a_host_without_the_checkpoint_receives_it_from_rank_zero(tmp_path, tiny_bert):
    """The first job (1 epoch) leaves its checkpoints on algo-1 only (global rank 0 writes them).
    The second asks for 2 epochs: rank 0 resumes the finished epoch, and algo-2, whose folder is
    empty, must resume the same bytes, or it would train 2 epochs against rank 0's one."""
    first, second = tmp_path / "algo-1", tmp_path / "algo-2"
    two_hosts([first, second], tiny_bert, max_epochs=1)
    decided = first / "checkpoints" / "last.ckpt"
    assert not list((second / "checkpoints").glob("*.ckpt"))
    chosen, step = sha256(decided), torch.load(decided, weights_only=True)["global_step"]

    logs = two_hosts([first, second], tiny_bert, max_epochs=2)
    received = second / "checkpoints" / "last.ckpt"
    assert f"Resuming from {received}, received from global rank 0" in logs[1]
    assert sha256(received) == chosen, "algo-2 resumed exactly rank 0's checkpoint"
    assert f"Resuming from {decided}" in logs[0]
    assert all(log.count("Done in") == 1 for log in logs)
    assert torch.load(decided, weights_only=True)["global_step"] == 2 * step
