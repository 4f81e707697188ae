"""Processes and devices: how many there are, which one this is, and how they find each other.

Three ways to start the job, one outcome (``ProcessPlan``):

- one command on one machine (``docker run``, a single-host SageMaker job): this process is local
  rank 0; with several devices Lightning starts the other ranks itself when training begins;
- SageMaker with several hosts: the platform starts the container once per host, and
  ``contracts.platform.Cluster`` (from ``resourceconfig.json``, or the toolkit's ``SM_HOSTS`` /
  ``SM_CURRENT_HOST``) gives the node rank (index in the sorted host list) and the master (the
  first host, port ``MASTER_PORT``), exported before the Trainer is built; ranks are node rank x
  devices per node + local rank;
- ``torchrun``: every rank is started by torchrun, whose variables (``RANK``, ``LOCAL_RANK``,
  ``GROUP_RANK``, ``LOCAL_WORLD_SIZE``, ``WORLD_SIZE``) decide devices and nodes.

Devices per node, unless torchrun decides: ``devices`` when set, else ``SM_NUM_GPUS`` when SageMaker
sets it (0: train on the CPU), else every visible GPU (one process on a machine without one).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist

from contracts.errors import ConfigError
from contracts.platform import Cluster
from hyperparams.config import Config

log = logging.getLogger(__name__)

NETWORK_INTERFACES = "/sys/class/net"  # one entry per network interface of this host
NVIDIA_DEVICES = "/dev/nvidia[0-9]*"  # one device file per GPU the container was given
NVIDIA_DRIVER_VERSION = "/proc/driver/nvidia/version"
# The oldest Linux driver of each CUDA major release (with CUDA's minor-version compatibility).
DRIVER_FOR_CUDA = {"12": ">= 525", "13": ">= 580"}
OLDER_DRIVER_BASE_IMAGE = "pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime"
MASTER_PORT = 29500  # the torch.distributed default; every SageMaker host uses the same one
TORCHRUN_VARIABLES = ("RANK", "GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "WORLD_SIZE")
# How long the other ranks wait for global rank 0 to export and evaluate: longer than any job may
# run (SageMaker's limit is 28 days), because that work grows with the val/test splits without
# bound. A rank 0 that fails or dies closes its connections, which ends the wait at once.
WAIT_FOR_WRITER = timedelta(days=28)


@dataclass(frozen=True)
class ProcessPlan:
    accelerator: str  # "cpu" or "gpu"
    devices: int  # processes per node
    num_nodes: int
    node_rank: int
    strategy: str  # "single", "ddp" or "fsdp"
    launcher: str  # who starts the ranks: "lightning" or "torchrun"
    rendezvous: dict[str, str] = field(default_factory=dict)  # environment the ranks need to meet

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def on_gpu(self) -> bool:
        return self.accelerator == "gpu"

    def export(self, environ: MutableMapping[str, str] | None = None) -> None:
        """Set the rendezvous variables (where not already set) for Lightning and the ranks it starts."""
        env = os.environ if environ is None else environ
        for key, value in self.rendezvous.items():
            env.setdefault(key, value)

    def describe(self) -> str:
        nodes = f" on {self.num_nodes} nodes (this is node {self.node_rank})" if self.num_nodes > 1 else ""
        return (
            f"{self.world_size} process(es), {self.devices} {self.accelerator} device(s) per node{nodes}, "
            f"strategy {self.strategy}, started by {self.launcher}"
        )


def plan_processes(
    config: Config, environ: Mapping[str, str] | None = None, cluster: Cluster | None = None
) -> ProcessPlan:
    """Devices, nodes and strategy from the config, the launch environment (``os.environ`` by
    default) and the SageMaker cluster, if any."""
    env = os.environ if environ is None else environ
    sagemaker_gpus = _sagemaker_gpus(env)
    accelerator = _accelerator(config.accelerator, sagemaker_gpus)
    if all(name in env for name in TORCHRUN_VARIABLES):
        devices = int(env["LOCAL_WORLD_SIZE"])
        nodes, node_rank, rendezvous = int(env["WORLD_SIZE"]) // devices, int(env["GROUP_RANK"]), {}
        launcher = "torchrun"
        _must_agree("devices", config.devices, devices, "torchrun's --nproc_per_node")
    else:
        devices = _devices(config.devices, accelerator, sagemaker_gpus)
        nodes, node_rank, rendezvous = _cluster_rendezvous(cluster)
        launcher = "lightning"
    if launcher == "torchrun":
        nodes_source = "torchrun's --nnodes"
    else:
        nodes_source = f"the hosts in {cluster.source}" if cluster else "a single host (no SageMaker cluster)"
    _must_agree("num_nodes", config.num_nodes, nodes, nodes_source)
    strategy = {"auto": "ddp" if devices * nodes > 1 else "single"}.get(config.strategy, config.strategy)
    return ProcessPlan(accelerator, devices, nodes, node_rank, strategy, launcher, rendezvous)


def _sagemaker_gpus(env: Mapping[str, str]) -> int | None:
    """``SM_NUM_GPUS``: the GPUs SageMaker gives the job (None when not set)."""
    raw = env.get("SM_NUM_GPUS", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ConfigError(
            f"SM_NUM_GPUS={raw!r} is not a number of GPUs; SageMaker sets it to the instance's GPU count, "
            "so check a hand-made environment (or unset it)."
        )
    return int(raw)


def _accelerator(requested: str, sagemaker_gpus: int | None) -> str:
    if requested == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        unusable = unusable_gpus_reason(sagemaker_gpus)
        if unusable:
            raise ConfigError(unusable)
        if requested in ("gpu", "cuda"):
            raise ConfigError(f"accelerator={requested!r} but no GPU is visible; set accelerator to auto or cpu.")
        return "cpu"
    if requested == "auto":
        return "gpu" if sagemaker_gpus != 0 else "cpu"
    return "gpu"


def unusable_gpus_reason(sagemaker_gpus: int | None) -> str | None:
    """Why NVIDIA GPUs that this machine has cannot be used by PyTorch, or None when it has none.

    Training on the CPU of a GPU instance is hours at the price of a GPU, so it is refused: the
    usual cause is a host driver older than the CUDA release this image's torch is built for.
    """
    devices = sorted(glob.glob(NVIDIA_DEVICES))
    if sagemaker_gpus == 0 or not (devices or sagemaker_gpus):
        return None  # no GPU here, or SageMaker says the job gets none
    if devices:
        present = f"The NVIDIA GPU device(s) {', '.join(devices)} are present"
    else:
        present = f"SageMaker gives this job {sagemaker_gpus} GPU(s) (SM_NUM_GPUS)"
    driver = nvidia_driver_version()
    built_for = torch.version.cuda
    if built_for is None:
        cause = "this image's torch is a CPU build"
    else:
        needed = DRIVER_FOR_CUDA.get(built_for.split(".")[0], "a newer one")
        cause = (
            f"the host's NVIDIA driver is {driver or 'unknown (no /proc/driver/nvidia/version)'} and this image's "
            f"torch {torch.__version__} is built for CUDA {built_for}, which needs driver {needed}"
        )
    return (
        f"{present} but PyTorch cannot use them: {cause}. Build the image for this host's driver "
        f"(docker build --build-arg BASE_IMAGE={OLDER_DRIVER_BASE_IMAGE}: CUDA 12.8, driver >= 525), or set "
        "accelerator=cpu to train on the CPU on purpose."
    )


def nvidia_driver_version(path: str | None = None) -> str | None:
    """The kernel driver's version, e.g. ``535.104.05``, from its /proc file (None without one)."""
    try:
        text = Path(path or NVIDIA_DRIVER_VERSION).read_text()
    except OSError:
        return None
    found = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", text)
    return found.group(1) if found else None


def _devices(requested: int | str, accelerator: str, sagemaker_gpus: int | None) -> int:
    """Processes per node: an explicit ``devices`` wins, then ``SM_NUM_GPUS``, then every visible GPU."""
    if accelerator == "gpu":
        visible = torch.cuda.device_count()
        if requested == "auto" and sagemaker_gpus == 0:
            raise ConfigError(
                "accelerator=gpu but SM_NUM_GPUS=0 gives the job no GPU; set accelerator to auto or cpu, "
                "or devices to the number of GPUs to use."
            )
        if requested == "auto" and sagemaker_gpus is not None:
            if sagemaker_gpus > visible:
                raise ConfigError(
                    f"devices=auto and SM_NUM_GPUS={sagemaker_gpus}, but only {visible} GPU(s) are visible; "
                    "make the GPUs visible to the container (docker run --gpus all), or set devices to a number "
                    f"from 1 to {visible}."
                )
            return sagemaker_gpus
        if requested == "auto":
            return visible
        if requested > visible:
            raise ConfigError(
                f"devices={requested} but only {visible} GPU(s) are visible; lower devices or set it to auto."
            )
        return requested
    return 1 if requested == "auto" else requested


def _cluster_rendezvous(cluster: Cluster | None) -> tuple[int, int, dict[str, str]]:
    """(nodes, this node's rank, rendezvous variables) of a SageMaker cluster; one node without one."""
    if cluster is None or len(cluster.hosts) == 1:
        return 1, 0, {}
    rendezvous = {"MASTER_ADDR": cluster.master, "MASTER_PORT": str(MASTER_PORT), "NODE_RANK": str(cluster.node_rank)}
    interface = cluster.network_interface
    if interface and not (Path(NETWORK_INTERFACES) / interface).exists():
        log.warning(
            "%s names the network interface %r, which this host does not have; gloo and NCCL choose one themselves",
            cluster.source, interface,
        )
    elif interface:  # the interface between hosts; NCCL and gloo could pick another one
        rendezvous["NCCL_SOCKET_IFNAME"] = rendezvous["GLOO_SOCKET_IFNAME"] = interface
    return len(cluster.hosts), cluster.node_rank, rendezvous


def _must_agree(name: str, configured: int | str | None, actual: int, source: str) -> None:
    if configured not in (None, "auto") and configured != actual:
        raise ConfigError(f"{name}={configured} but {source} gives {actual}; make them agree or leave {name} unset.")


def local_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank on its node, known before any process group exists (0 for the first process)."""
    env = os.environ if environ is None else environ
    return int(env.get("LOCAL_RANK", 0))


@contextlib.contextmanager
def local_rank_zero_first(folder: Path, key: str, poll_seconds: float = 0.5) -> Iterator[None]:
    """Run the block on local rank 0 first; the node's other ranks wait for it, then run the block themselves.

    For preprocessing: rank 0 fills the on-disk cache, the others find every entry there. The
    process group does not exist yet, so the ranks meet through a marker file named by ``key``.
    If rank 0 dies, its launcher (Lightning or torchrun) stops the waiting ranks.
    """
    marker = folder / f"ready-{key}"
    if local_rank() == 0:
        yield
        folder.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return
    waited = time.monotonic()
    last_note = waited
    while not marker.exists():
        if time.monotonic() - last_note > 60:
            log.info("Waiting %.0fs for local rank 0 to preprocess the data", time.monotonic() - waited)
            last_note = time.monotonic()
        time.sleep(poll_seconds)
    yield


@contextlib.contextmanager
def others_wait_for_global_zero(trainer: pl.Trainer) -> Iterator[bool]:
    """Yields whether this is global rank 0; every rank leaves the block together, also when rank 0's part fails.

    The wait is a barrier in a gloo group of its own with the ``WAIT_FOR_WRITER`` timeout: in the
    training process group it would end after that group's timeout (30 minutes by default), which
    stays short so that a rank hanging during training is noticed.
    """
    distributed = dist.is_available() and dist.is_initialized()
    waiting_room = dist.new_group(backend="gloo", timeout=WAIT_FOR_WRITER) if distributed else None
    try:
        yield trainer.is_global_zero
    finally:
        if waiting_room is not None:
            dist.barrier(group=waiting_room)
