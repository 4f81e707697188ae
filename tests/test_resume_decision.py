"""One resume decision per job: two SageMaker "hosts" (one process each, their own /opt/ml and so
their own checkpoint folder, as on instances without shared storage) train together with DDP on
CPU. Global rank 0 decides; the host whose folder lacks the checkpoint receives it and both
train on from the same state. The exchange's other cases run on two threads (fast tier)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from contracts.errors import ConfigError
from helpers.data import hyperparameters, make_rows, write_job
from helpers.jobs import ROOT
from training.distributed import ProcessPlan
from training.resume_decision import DECISION_VARIABLE, PORT_OFFSET, agreed_checkpoint

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


def plan_of(node_rank: int, port: int) -> ProcessPlan:
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    return ProcessPlan("cpu", 1, 2, node_rank, "ddp", "lightning", rendezvous)


def both_hosts(folders, decide_on_rank_zero):
    """``agreed_checkpoint`` on two hosts at once (threads); each host's outcome: its path, or its error."""
    port = free_ports()
    environs = [{}, {}]

    def host(rank: int):
        never = lambda: pytest.fail("only global rank 0 decides")  # noqa: E731
        return agreed_checkpoint(
            folders[rank], plan_of(rank, port), decide_on_rank_zero if rank == 0 else never, environs[rank]
        )

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(host, rank) for rank in (0, 1)]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=60))
            except Exception as exc:
                outcomes.append(exc)
    return outcomes, environs


def test_a_host_holding_other_bytes_under_the_name_gets_rank_zeros(tmp_path):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder, content in zip(folders, (b"rank 0's checkpoint", b"an older one")):
        folder.mkdir()
        (folder / "last.ckpt").write_bytes(content)
    outcomes, environs = both_hosts(folders, lambda: folders[0] / "last.ckpt")
    assert outcomes == [folders[0] / "last.ckpt", folders[1] / "last.ckpt"]
    assert (folders[1] / "last.ckpt").read_bytes() == b"rank 0's checkpoint"
    assert [env[DECISION_VARIABLE] for env in environs] == ["last.ckpt", "last.ckpt"], "for the ranks started later"


def test_when_rank_zero_starts_fresh_every_host_does(tmp_path, caplog):
    folders = [tmp_path / "a", tmp_path / "b"]
    folders[0].mkdir()
    folders[1].mkdir()
    (folders[1] / "last.ckpt").write_bytes(b"a checkpoint only this host has")
    outcomes, _ = both_hosts(folders, lambda: None)
    assert outcomes == [None, None]
    assert "Global rank 0 starts training fresh; the checkpoints here (last.ckpt in" in caplog.text


def test_when_rank_zero_cannot_decide_every_host_fails_with_its_reason(tmp_path):
    def foreign():
        raise ConfigError("Checkpoint /opt/ml/checkpoints/last.ckpt cannot be read as a checkpoint of this job")

    outcomes, _ = both_hosts([tmp_path, tmp_path], foreign)
    assert [type(outcome) for outcome in outcomes] == [ConfigError, ConfigError]
    assert str(outcomes[1]) == (
        "Global rank 0 could not choose a checkpoint to resume: Checkpoint /opt/ml/checkpoints/last.ckpt cannot be "
        "read as a checkpoint of this job"
    )


def test_the_ranks_lightning_starts_take_their_nodes_decision(tmp_path):
    plan = ProcessPlan("cpu", 2, 1, 0, "ddp", "lightning")
    never = lambda: pytest.fail("only the node's first process decides")  # noqa: E731
    assert agreed_checkpoint(tmp_path, plan, never, {"LOCAL_RANK": "1", DECISION_VARIABLE: "last.ckpt"}) == (
        tmp_path / "last.ckpt"
    )
    assert agreed_checkpoint(tmp_path, plan, never, {"LOCAL_RANK": "1", DECISION_VARIABLE: ""}) is None
    environ = {}
    assert agreed_checkpoint(tmp_path, plan, lambda: tmp_path / "last.ckpt", environ) == tmp_path / "last.ckpt"
    assert environ == {DECISION_VARIABLE: "last.ckpt"}
