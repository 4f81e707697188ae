"""Several processes: the process plan (SageMaker hosts, torchrun), data sharding, the per-node
preprocessing handshake, and real 2-process DDP and FSDP runs on CPU through the entry script."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from contracts.errors import ConfigError
from contracts.platform import read_cluster
from export.staging import WORK_PREFIX
from helpers.data import hyperparameters, write_job
from helpers.jobs import MODEL_FILES, run_script
from hyperparams.loading import validate_config
from processing.dataset import EncodedSplit
from training import distributed, sampling
from training.data import fit_loaders
from training.distributed import local_rank_zero_first, plan_processes

TWO_HOSTS = {"SM_HOSTS": '["algo-2", "algo-1"]', "SM_CURRENT_HOST": "algo-2", "SM_NETWORK_INTERFACE_NAME": "eth0"}
TORCHRUN = {"RANK": "3", "GROUP_RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "4"}


def config(tiny_bert, **overrides):
    return validate_config(hyperparameters(tiny_bert, accelerator="cpu", **overrides))


@pytest.fixture(autouse=True)
def network_interfaces(tmp_path_factory, monkeypatch):
    """The hosts in these tests have the interfaces eth0 and eth1 (whatever this machine has)."""
    folder = tmp_path_factory.mktemp("net")
    for name in ("eth0", "eth1", "lo"):
        (folder / name).mkdir()
    monkeypatch.setattr(distributed, "NETWORK_INTERFACES", str(folder))


def plan(cfg, environ: dict, resource_config: Path | None = None):
    """The process plan as the job makes it: the cluster from the variables, else from resourceconfig.json."""
    return plan_processes(cfg, environ, read_cluster(environ, resource_config or Path("/nonexistent.json")))


def test_one_process_by_default(tiny_bert):
    p = plan(config(tiny_bert), {})
    assert (p.devices, p.num_nodes, p.node_rank, p.strategy, p.rendezvous) == (1, 1, 0, "single", {})


def test_sagemaker_hosts_give_node_rank_master_and_port(tiny_bert):
    p = plan(config(tiny_bert), TWO_HOSTS)
    assert (p.num_nodes, p.node_rank, p.world_size, p.strategy) == (2, 1, 2, "ddp")
    assert p.rendezvous == {
        "MASTER_ADDR": "algo-1",
        "MASTER_PORT": "29500",
        "NODE_RANK": "1",
        "NCCL_SOCKET_IFNAME": "eth0",
        "GLOO_SOCKET_IFNAME": "eth0",
    }
    environ = {"MASTER_PORT": "7777"}
    p.export(environ)
    assert environ["MASTER_ADDR"] == "algo-1" and environ["NODE_RANK"] == "1"
    assert environ["MASTER_PORT"] == "7777", "a port the user set wins"


def resource_config(folder: Path, hosts: list[str], current: str, interface: str = "eth0") -> Path:
    """resourceconfig.json as the platform (and the SDK's local mode) writes it."""
    path = folder / "resourceconfig.json"
    hosts_ = [{"instance_group_name": "homogeneousCluster", "instances": hosts, "instance_type": "local"}]
    path.write_text(json.dumps({"current_host": current, "hosts": hosts, "network_interface_name": interface,
                                "current_group_name": "homogeneousCluster", "instance_groups": hosts_}))
    return path


def test_without_the_toolkits_variables_the_platforms_resourceconfig_gives_the_hosts(tiny_bert, tmp_path):
    """The image's `train` runs the job without the sagemaker-training toolkit, which is what sets SM_HOSTS."""
    path = resource_config(tmp_path, ["algo-2-x1y2z", "algo-1-x1y2z"], "algo-1-x1y2z", "eth1")
    p = plan(config(tiny_bert), {}, path)
    assert (p.num_nodes, p.node_rank, p.world_size, p.strategy) == (2, 0, 2, "ddp")
    assert p.rendezvous["MASTER_ADDR"] == "algo-1-x1y2z" and p.rendezvous["GLOO_SOCKET_IFNAME"] == "eth1"
    second = plan(config(tiny_bert), {}, resource_config(tmp_path, ["algo-2-x1y2z", "algo-1-x1y2z"], "algo-2-x1y2z"))
    assert (second.node_rank, second.rendezvous["MASTER_ADDR"]) == (1, "algo-1-x1y2z")
    with_variables = plan(config(tiny_bert), TWO_HOSTS, path)
    assert (with_variables.node_rank, with_variables.rendezvous["MASTER_ADDR"]) == (1, "algo-1"), "variables win"


def test_an_interface_the_host_lacks_is_left_to_gloo_and_nccl(tiny_bert, tmp_path, caplog):
    """SDK v3's local mode names "ethwe", which its containers do not have: naming it to gloo would
    kill every rank ("Unable to find address"), so the job warns and lets them choose."""
    path = resource_config(tmp_path, ["algo-1", "algo-2"], "algo-2", "ethwe")
    with caplog.at_level(logging.WARNING):
        p = plan(config(tiny_bert), {}, path)
    assert p.rendezvous == {"MASTER_ADDR": "algo-1", "MASTER_PORT": "29500", "NODE_RANK": "1"}
    assert "names the network interface 'ethwe', which this host does not have" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "resourceconfig.json is not valid JSON"),
        ('{"current_host": "algo-1"}', "has no list of host names under 'hosts'"),
        ('{"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}', "The current host 'algo-3' is not one of"),
    ],
)
def test_a_broken_resourceconfig_names_the_file(tiny_bert, tmp_path, content, message):
    (tmp_path / "resourceconfig.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        plan(config(tiny_bert), {}, tmp_path / "resourceconfig.json")


def test_a_single_sagemaker_host_needs_no_rendezvous(tiny_bert):
    p = plan(config(tiny_bert), {"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1"})
    assert (p.num_nodes, p.rendezvous, p.strategy) == (1, {}, "single")


def test_torchrun_variables_win(tiny_bert):
    p = plan(config(tiny_bert, strategy="fsdp"), {**TORCHRUN, **TWO_HOSTS})
    assert (p.devices, p.num_nodes, p.node_rank, p.launcher, p.strategy) == (2, 2, 1, "torchrun", "fsdp")
    assert p.rendezvous == {}


@pytest.mark.parametrize(
    ("overrides", "environ", "message"),
    [
        (
            {},
            {"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-9"},
            "The current host 'algo-9' is not one of the hosts ['algo-1', 'algo-2'] in SM_HOSTS",
        ),
        ({}, {"SM_HOSTS": "algo-1,algo-2", "SM_CURRENT_HOST": "algo-1"}, "SM_HOSTS='algo-1,algo-2' is not a JSON list"),
        ({"num_nodes": 3}, TWO_HOSTS, "num_nodes=3 but the hosts in SM_HOSTS gives 2"),
        ({"devices": 4}, TORCHRUN, "devices=4 but torchrun's --nproc_per_node gives 2"),
    ],
)
def test_contradicting_process_settings_name_what_to_change(tiny_bert, overrides, environ, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan(config(tiny_bert, **overrides), environ)


@pytest.fixture
def four_gpus(monkeypatch):
    """No GPU exists here: the device count is the one thing these tests have to fake."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


@pytest.mark.parametrize(
    ("overrides", "environ", "expected"),
    [
        ({}, {}, ("gpu", 4, "ddp")),  # every visible GPU, with DDP
        ({}, {"SM_NUM_GPUS": "2"}, ("gpu", 2, "ddp")),
        ({}, {"SM_NUM_GPUS": "1"}, ("gpu", 1, "single")),
        ({}, {"SM_NUM_GPUS": "0"}, ("cpu", 1, "single")),
        ({"devices": 3}, {"SM_NUM_GPUS": "2"}, ("gpu", 3, "ddp")),  # the hyperparameter wins
        ({"devices": 1}, {}, ("gpu", 1, "single")),
    ],
)
def test_gpus_used_by_default_sagemakers_count_and_explicit_devices(four_gpus, tiny_bert, overrides, environ, expected):
    cfg = validate_config(hyperparameters(tiny_bert, **overrides))
    plan = plan_processes(cfg, environ)
    assert (plan.accelerator, plan.devices, plan.strategy) == expected


@pytest.mark.parametrize(
    ("overrides", "sm_num_gpus", "message"),
    [
        ({}, "8", r"SM_NUM_GPUS=8, but only 4 GPU\(s\) are visible; .*set devices to a number from 1 to 4"),
        ({"accelerator": "gpu"}, "0", r"accelerator=gpu but SM_NUM_GPUS=0 gives the job no GPU; set accelerator"),
        ({}, "two", r"SM_NUM_GPUS='two' is not a number of GPUs"),
    ],
)
def test_sagemakers_gpu_count_that_cannot_be_met_is_a_config_error(
    four_gpus, tiny_bert, overrides, sm_num_gpus, message
):
    with pytest.raises(ConfigError, match=message):
        plan_processes(validate_config(hyperparameters(tiny_bert, **overrides)), {"SM_NUM_GPUS": sm_num_gpus})


def test_gpu_requested_without_one_is_a_config_error(tiny_bert, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="accelerator='gpu' but no GPU is visible"):
        plan_processes(validate_config(hyperparameters(tiny_bert, accelerator="gpu")), {})


@pytest.fixture
def gpus_torch_cannot_use(tmp_path, monkeypatch):
    """A GPU instance whose driver is too old for this torch's CUDA: the device files exist, the driver
    reports its version, and torch sees no GPU. (Files and versions are what can be faked here.)"""
    (tmp_path / "dev").mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl"):
        (tmp_path / "dev" / name).touch()
    version = tmp_path / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n")
    monkeypatch.setattr(distributed, "NVIDIA_DEVICES", str(tmp_path / "dev" / "nvidia[0-9]*"))
    monkeypatch.setattr(distributed, "NVIDIA_DRIVER_VERSION", str(version))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    return tmp_path


@pytest.mark.parametrize("accelerator", ["auto", "gpu"])
def test_gpus_torch_cannot_use_stop_the_job_with_the_driver_and_the_fix(tiny_bert, gpus_torch_cannot_use, accelerator):
    with pytest.raises(ConfigError) as failure:
        plan_processes(config_with(tiny_bert, accelerator=accelerator), {})
    message = str(failure.value)
    dev = gpus_torch_cannot_use / "dev"
    assert message.startswith(f"The NVIDIA GPU device(s) {dev / 'nvidia0'}, {dev / 'nvidia1'} are present but PyTorch ")
    assert "the host's NVIDIA driver is 535.104.05" in message
    assert "built for CUDA 13.0, which needs driver >= 580" in message
    assert "--build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime" in message
    assert "or set accelerator=cpu to train on the CPU on purpose" in message


def test_sagemakers_gpu_count_without_a_usable_gpu_stops_the_job(tiny_bert, gpus_torch_cannot_use, monkeypatch):
    monkeypatch.setattr(distributed, "NVIDIA_DEVICES", str(gpus_torch_cannot_use / "none[0-9]*"))
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ConfigError, match=r"SageMaker gives this job 4 GPU\(s\) \(SM_NUM_GPUS\) but PyTorch cannot use "
                       r"them: this image's torch is a CPU build"):
        plan_processes(config_with(tiny_bert), {"SM_NUM_GPUS": "4"})


def test_the_cpu_on_purpose_trains_on_the_cpu_of_a_gpu_machine(tiny_bert, gpus_torch_cannot_use):
    assert plan_processes(config_with(tiny_bert, accelerator="cpu"), {}).accelerator == "cpu"
    assert plan_processes(config_with(tiny_bert), {"SM_NUM_GPUS": "0"}).accelerator == "cpu"


def test_the_driver_version_is_read_from_procfs(tmp_path):
    path = tmp_path / "version"
    path.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs)\n")
    assert distributed.nvidia_driver_version(str(path)) == "580.65.06"
    assert distributed.nvidia_driver_version(str(tmp_path / "absent")) is None


def config_with(tiny_bert, **overrides):
    return validate_config(hyperparameters(tiny_bert, **overrides))


def _split(rows: int) -> EncodedSplit:
    from processing.text.ragged import RaggedChunks

    chunks = RaggedChunks(  # every row one chunk [2, 5, 3]
        np.tile(np.array([2, 5, 3], dtype=np.uint16), rows), np.arange(rows + 1) * 3, np.arange(rows + 1)
    )
    return EncodedSplit({"text": chunks}, np.zeros((rows, 3), dtype=np.float32), np.arange(rows) % 2)


def test_ranks_share_out_every_row_each_epoch_in_a_new_order(tiny_bert, monkeypatch):
    """Rank r of 3 takes every third row of the epoch's order; the last rows wrap around so all
    ranks run the same number of batches; the order changes with the epoch, not between ranks."""
    cfg = config(tiny_bert, batch_size=4)
    orders = {}
    for epoch in (0, 1):
        seen = []
        for rank in range(3):
            monkeypatch.setattr(sampling, "world_position", lambda rank=rank: (rank, 3))
            train, val = fit_loaders({"train": _split(10), "val": _split(7)}, cfg, pad_id=0)
            train.batch_sampler.sampler.set_epoch(epoch)
            batches = [b["index"].tolist() for b in train]
            assert [len(b) for b in batches] == [4]
            seen += [i for b in batches for i in b]
            assert len(val) == 1 and len(next(iter(val))["index"]) == 3
        assert sorted(set(seen)) == list(range(10)) and len(seen) == 12
        orders[epoch] = seen
    assert orders[0] != orders[1]


def test_a_resumed_loader_continues_with_the_next_batch(tiny_bert):
    cfg = config(tiny_bert, batch_size=3)
    splits = {"train": _split(11), "val": _split(4)}
    reference, _ = fit_loaders(splits, cfg, pad_id=0)
    reference.batch_sampler.sampler.set_epoch(2)
    expected = [b["index"].tolist() for b in reference]

    first, _ = fit_loaders(splits, cfg, pad_id=0)
    first.batch_sampler.sampler.set_epoch(2)
    batches = iter(first)
    done = [next(batches)["index"].tolist() for _ in range(2)]
    position = first.position()
    assert position == {"epoch": 2, "rows_done": 6}

    resumed, _ = fit_loaders(splits, cfg, pad_id=0)
    resumed.resume(position)
    assert done + [b["index"].tolist() for b in resumed] == expected
    resumed.batch_sampler.sampler.set_epoch(3)
    assert sum(len(b["index"]) for b in resumed) == 11, "the next epoch is whole again"


def test_other_local_ranks_wait_for_rank_zero_to_preprocess(tmp_path, monkeypatch):
    events = []
    monkeypatch.setenv("LOCAL_RANK", "1")

    def rank_zero():
        time.sleep(0.5)
        events.append("rank 0 done")
        (tmp_path / "ready-abc").touch()

    threading.Thread(target=rank_zero).start()
    with local_rank_zero_first(tmp_path, "abc", poll_seconds=0.05):
        events.append("rank 1 runs")
    assert events == ["rank 0 done", "rank 1 runs"]

    monkeypatch.setenv("LOCAL_RANK", "0")
    with local_rank_zero_first(tmp_path / "node", "xyz"):
        assert not (tmp_path / "node" / "ready-xyz").exists()
    assert (tmp_path / "node" / "ready-xyz").exists()


def _rank_waiting_for_a_slow_writer(rank: int, port: int, results) -> None:
    """One of two gloo ranks whose process group times out after 2 s, while global rank 0 writes for 5 s."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=2))
    try:
        with distributed.others_wait_for_global_zero(SimpleNamespace(is_global_zero=rank == 0)) as writer:
            if writer:
                time.sleep(5)
        results.put((rank, "left together"))
    except RuntimeError as exc:
        results.put((rank, str(exc)[:300]))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.multiprocess
def test_other_ranks_outwait_a_writer_slower_than_the_process_group_timeout():
    """Rank 0's export and evaluation can outlast the training process group's timeout; the other
    ranks' wait for it must not time out with it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ranks = [context.Process(target=_rank_waiting_for_a_slow_writer, args=(r, port, results)) for r in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=120)
        process.kill()
    assert sorted(results.get(timeout=1) for _ in ranks) == [(0, "left together"), (1, "left together")]


def two_process_job(base, tiny_bert, strategy: str):
    hparams = hyperparameters(tiny_bert, max_epochs=1, accelerator="cpu", devices=2, strategy=strategy)
    write_job(base, hparams, rows=(64, 21, 23))
    started = time.monotonic()
    result = run_script(base, timeout=300)
    seconds = time.monotonic() - started
    print(f"2-process {strategy} job: {seconds:.1f}s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def ddp_job(tmp_path_factory, tiny_bert):
    base = tmp_path_factory.mktemp("ddp")
    return base, two_process_job(base, tiny_bert, "ddp")


@pytest.mark.multiprocess
def test_ddp_on_two_processes_writes_one_set_of_artifacts(ddp_job):
    base, result = ddp_job
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stdout
    assert result.stdout.count("Done in") == 2, "both ranks reach the end"
    assert {p.name for p in (base / "model").iterdir()} == set(MODEL_FILES)
    assert not list(base.rglob(f"{WORK_PREFIX}*"))
    assert len(list((base / "output" / "data" / "tensorboard_eval").glob("events.out.tfevents.*"))) == 1
    assert len(list((base / "output" / "data" / "tensorboard_train").glob("events.out.tfevents.*"))) == 1
    assert len(list((base / "checkpoints").glob("epoch=*-step=*.ckpt"))) == 1
    assert torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)["run"]["world_size"] == 2
    assert not (base / "output" / "failure").exists()
    # rank 0 tokenized; rank 1 found all three splits in the node's cache
    assert result.stdout.count("tokenized text loaded from the cache") == 3


@pytest.mark.multiprocess
def test_ddp_evaluates_every_test_row_exactly_once(ddp_job):
    base, _ = ddp_job
    given = pd.read_csv(base / "input" / "data" / "test" / "test.csv")
    predicted = pd.read_csv(base / "output" / "data" / "test_predictions.csv")
    assert predicted["uid"].tolist() == given["uid"].tolist()
    results = torch.load(base / "output" / "data" / "predict_results.pth", weights_only=True)
    assert results["y_true"].tolist() == given["label"].tolist()
    assert json.loads((base / "output" / "data" / "metrics.json").read_text())["test"]["auroc"] > 0


@pytest.mark.multiprocess
def test_fsdp_on_two_cpu_processes_exports_the_full_model(tmp_path, tiny_bert, ddp_job):
    """FSDP2 shards the encoders across the two ranks; the exported model has every weight, so its
    predictions equal those of the same training under DDP."""
    result = two_process_job(tmp_path, tiny_bert, "fsdp")
    assert "strategy fsdp" in result.stdout
    ddp_base, _ = ddp_job
    fsdp_predictions = pd.read_csv(tmp_path / "output" / "data" / "test_predictions.csv")
    ddp_predictions = pd.read_csv(ddp_base / "output" / "data" / "test_predictions.csv")
    assert fsdp_predictions["prob_1"].to_numpy() == pytest.approx(ddp_predictions["prob_1"].to_numpy(), abs=1e-5)
    fsdp_weights = torch.load(tmp_path / "model" / "model.pth", weights_only=True)
    assert fsdp_weights.keys() == torch.load(ddp_base / "model" / "model.pth", weights_only=True).keys()


def test_local_rank_before_any_process_group(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert distributed.local_rank() == 0
    assert distributed.local_rank({"LOCAL_RANK": "3"}) == 3


def test_evaluation_batches_cover_every_row_once_and_group_similar_lengths(tiny_bert):
    from processing.loaders import scoring_loader
    from processing.text.ragged import RaggedChunks

    lengths = np.array([9, 3, 7, 3, 9, 5, 4, 8])  # one chunk per row, of these lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    chunks = RaggedChunks(np.full(lengths.sum(), 5, dtype=np.uint16), offsets, np.arange(len(lengths) + 1))
    split = EncodedSplit({"text": chunks}, np.zeros((8, 3), dtype=np.float32), np.arange(8) % 2)
    loader = scoring_loader(split, config(tiny_bert, batch_size=1), pad_id=0)  # batches of 4 rows
    batches = list(loader)
    assert sorted(i for b in batches for i in b["index"].tolist()) == list(range(8))
    assert [b["input_ids"].shape[-1] for b in batches] == [5, 9]  # short rows together, long rows together
