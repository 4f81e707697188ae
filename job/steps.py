"""The steps of the job, in order; ``pytorch_training.py`` and the dry run call the same functions.

configure -> check the output folders -> load the pretrained model -> load an earlier job's model
to start from, if given -> read and check the data -> find the checkpoint to resume -> preprocess ->
build the model -> train -> (global rank 0, staged) export, evaluate, record.

Each step takes the small named objects earlier steps returned and returns its own; nothing else
passes between steps. A step does its work through the library packages (``processing``,
``models``, ``training``, ``export``, ``evaluation``) and logs what it did.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.loggers import MLFlowLogger
from transformers import PreTrainedTokenizerBase

from contracts.environment import RunSwitches
from contracts.paths import ContractPaths
from contracts.platform import read_cluster
from contracts.storage import check_writable, writing_into
from evaluation.report import SplitResult, metric_scalars, write_evaluation
from export.manifest import RunRecord
from export.model_files import artifacts_bundle, write_model_files
from export.onnx_export import export_verified_onnx
from export.staging import staged_directories
from hyperparams.config import Config
from hyperparams.inactive import inactive_settings
from hyperparams.loading import load_config
from inference.engines import TorchEngine
from models.backbone import Backbone
from models.classifier import Classifier
from models.registry import build_model, initial_word_embeddings, trainable_parameters
from models.warm_start import ParentModel
from processing.cache import TextCache
from processing.dataset import BatchCollator
from processing.files import SplitFiles, read_splits
from processing.loaders import scoring_loader
from processing.preparation import PreparedData, prepare_data
from processing.text.loading import check_sequence_limit, load_tokenizer
from processing.upstream_inputs import apply_upstream_inputs
from processing.validation import validate_splits
from training.checkpoints import checkpoint_to_resume, data_digests, run_fingerprint
from training.data import fit_loaders
from training.distributed import ProcessPlan, local_rank_zero_first, others_wait_for_global_zero, plan_processes
from training.rank_failures import rank_failures
from training.resume_decision import agreed_checkpoint
from training.stop_request import StopRequest
from training.tracking import training_loggers
from training.trainer import build_trainer, fit, trained_model, training_module

log = logging.getLogger(__name__)

EVALUATED_SPLITS = ("val", "test")


@dataclass(frozen=True)
class Setup:
    """Configure: the validated config (upstream inputs applied), how processes and devices are laid
    out, and whether the run reports to tuning jobs and trackers (a dry run does not)."""

    config: Config
    plan: ProcessPlan
    on_sagemaker: bool = False  # the platform's resourceconfig.json (or the toolkit's SM_HOSTS) is there
    reports: bool = True
    checks_quality: bool = True  # preprocessing warns about the data (a dry run warns from the whole data instead)


@dataclass(frozen=True)
class Pretrained:
    """Load the model: the tokenizer and the transformer named by ``tokenizer``."""

    tokenizer: PreTrainedTokenizerBase
    backbone: Backbone

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0


@dataclass(frozen=True)
class InputData:
    """Read and check the data: each split's file (or shards), its rows, and their SHA-256."""

    files: dict[str, SplitFiles]
    frames: dict[str, pd.DataFrame]
    digests: dict[str, str]


@dataclass(frozen=True)
class ResumePoint:
    """Find the checkpoint: the one of this same run to continue from (None: start fresh), and the
    input files' digests that identify the run in every checkpoint it writes."""

    checkpoint: Path | None
    data_digests: dict[str, str]


@dataclass(frozen=True)
class BuiltModel:
    """Build: the classifier, and the word-embedding matrix CNN/LSTM encoders start from (saved with it)."""

    model: Classifier
    embeddings: torch.Tensor | None


@dataclass(frozen=True)
class Trained:
    """Train: the trainer, and the classifier to export with full weights (on global rank 0; None elsewhere)."""

    model: Classifier | None
    trainer: pl.Trainer


@dataclass(frozen=True)
class JobOutcome:
    """What a finished job leaves to its caller: the final metrics (global rank 0; empty elsewhere),
    the model as built and the trainer (the dry-run report reads their sizes and timings)."""

    metrics: dict
    model: Classifier
    trainer: pl.Trainer


@dataclass(frozen=True)
class Staging:
    """Where global rank 0 writes ``model/`` and the evaluation files until they move into place together."""

    model_dir: Path
    data_dir: Path
    final_model_dir: Path
    final_data_dir: Path


def configure(paths: ContractPaths, switches: RunSwitches, run: RunRecord) -> Setup:
    config = load_config(paths)
    upstream = apply_upstream_inputs(config, paths.artifacts_input_dir, switches)
    run.record_pipeline_inputs(upstream.files)
    for note in inactive_settings(upstream.config):
        log.warning(note)
    cluster = read_cluster(os.environ, paths.resource_config)
    if cluster is not None:
        log.info("SageMaker hosts %s from %s; this is %s", list(cluster.hosts), cluster.source, cluster.current_host)
    plan = plan_processes(upstream.config, cluster=cluster)
    pl.seed_everything(upstream.config.seed, workers=True, verbose=False)
    return Setup(upstream.config, plan, on_sagemaker=cluster is not None)


def check_folders(paths: ContractPaths, create: bool = True) -> None:
    """Before any slow work: each folder the job writes to takes a file (the check leaves no trace).
    A read-only mount, a folder of another user or an ``output/`` that cannot be created fails here,
    not after training. A dry run (``create`` False) writes in a scratch folder: it only tries the
    folders that exist."""
    check_writable(paths.written_folders(), create=create)


def load_pretrained(config: Config) -> Pretrained:
    tokenizer = load_tokenizer(config.tokenizer)
    backbone = Backbone.pretrained(config.tokenizer)
    check_sequence_limit(config, tokenizer, backbone.max_positions)
    return Pretrained(tokenizer, backbone)


def load_parent_model(paths: ContractPaths, setup: Setup, pretrained: Pretrained, run: RunRecord) -> ParentModel | None:
    """The ``pretrained_model`` channel's model to start the weights from (None: the channel is empty
    or absent), checked against this job's architecture before any slow work."""
    parent = ParentModel.find(paths.pretrained_model_dir)
    if parent is None:
        return None
    parent.check(setup.config, pretrained.tokenizer.get_vocab(), pretrained.backbone.to_dict())
    run.record_parent_model(parent.lineage())
    log.info("Warm start: the weights start from %s (SHA-256 %s); preprocessing is fitted on this job's data",
             parent.source, parent.sha256)
    return parent


def read_data(paths: ContractPaths, config: Config) -> InputData:
    files, frames = read_splits(paths.channels, config)
    validate_splits(config, frames, files)
    return InputData(files, frames, data_digests(files))


def find_checkpoint(paths: ContractPaths, setup: Setup, data: InputData) -> ResumePoint:
    """Before any slow work, on global rank 0 for every rank (``training.resume_decision``): a checkpoint
    of another run (other config, data or process count) is an error."""
    folder, plan = paths.checkpoints_dir, setup.plan
    checkpoint = agreed_checkpoint(
        folder, plan, lambda: checkpoint_to_resume(folder, setup.config, data.digests, plan.world_size)
    )
    return ResumePoint(checkpoint, data.digests)


def preprocess(setup: Setup, pretrained: Pretrained, data: InputData, cache_dir: Path | None) -> PreparedData:
    """Labels, tabular encoders and the text chain, once per node: local rank 0 fills the text cache
    in ``cache_dir`` and the node's other ranks read it. ``cache_dir`` None: no cache."""
    quality = setup.checks_quality
    if cache_dir is None:
        return prepare_data(setup.config, data.frames, pretrained.tokenizer, data.files, check_quality=quality)
    ready = local_rank_zero_first(cache_dir, run_fingerprint(setup.config, data.digests))
    with writing_into(cache_dir, "the text cache"), ready:
        return prepare_data(
            setup.config, data.frames, pretrained.tokenizer, data.files, TextCache(cache_dir), check_quality=quality
        )


def build(config: Config, pretrained: Pretrained, prepared: PreparedData, parent: ParentModel | None) -> BuiltModel:
    """The model with the pretrained transformer's weights, or the parent model's (warm start); the
    tabular feature scaling from this job's training rows either way."""
    embeddings = initial_word_embeddings(config, pretrained.backbone)
    model = build_model(config, pretrained.backbone, embeddings)
    if parent is not None:
        parent.initialise(model)
    if model.tabular is not None:
        model.tabular.fit_scale(prepared.splits["train"].tabular)
    log.info("Model %s: %s trainable parameters", config.model_class, f"{trainable_parameters(model):,}")
    return BuiltModel(model, embeddings)


def train(
    paths: ContractPaths,
    setup: Setup,
    pretrained: Pretrained,
    prepared: PreparedData,
    built: BuiltModel,
    resume: ResumePoint,
    stop: StopRequest,
) -> Trained:
    config, plan = setup.config, setup.plan
    train_loader, val_loader = fit_loaders(prepared.splits, config, pad_id=pretrained.pad_id, on_gpu=plan.on_gpu)
    module = training_module(built.model, config, plan)
    loggers = training_loggers(config, paths.training_log_dir, paths.tensorboard_dir, mlflow=setup.reports)
    trainer = build_trainer(
        config, plan, len(prepared.splits["train"]), paths.checkpoints_dir, loggers, resume.data_digests, stop,
        metric_lines=setup.reports, interactive=not setup.on_sagemaker,
    )
    with (
        rank_failures(trainer, paths.failure_file, paths.checkpoints_dir),
        writing_into(paths.checkpoints_dir, "checkpoints"),
    ):
        fit(trainer, module, train_loader, val_loader, resume.checkpoint)
    return Trained(trained_model(trainer, module, config, pretrained.backbone), trainer)


@contextlib.contextmanager
def global_rank_zero_outputs(paths: ContractPaths, trained: Trained, stop: StopRequest) -> Iterator[Staging | None]:
    """Staging folders on global rank 0 (None on the other ranks, which wait here for it).

    ``model/`` and the evaluation files in ``output/data`` move into place together when the block
    succeeds, so a failure anywhere in it leaves the previous run's outputs untouched. The training
    curves, written during training beside the evaluation files, are left where they are. From the
    start of the move on, a stop no longer ends the job (``StopRequest.let_finish``): a stop during
    the renames would leave a mix of old and new files, and one after them would fail a finished job.
    """
    with others_wait_for_global_zero(trained.trainer) as writer:
        if not writer:
            yield None
            return
        keep = frozenset({paths.training_log_dir.name})
        with staged_directories(paths.model_dir, paths.output_data_dir, keep=keep) as (model_dir, data_dir):
            yield Staging(model_dir, data_dir, paths.model_dir, paths.output_data_dir)
            stop.let_finish()
            log.info("Moving the outputs into place")
        log.info("Model in %s, evaluation in %s", paths.model_dir, paths.output_data_dir)


def export(
    staging: Staging,
    config: Config,
    pretrained: Pretrained,
    prepared: PreparedData,
    built: BuiltModel,
    trained: Trained,
) -> float:
    """``model.pth``, ``model_artifacts.pth``, the encoders, the tokenizer and ``model.onnx`` checked
    against PyTorch; returns the ONNX parity difference."""
    model, tokenizer = trained.model, pretrained.tokenizer
    bundle = artifacts_bundle(
        config,
        model.input_names,
        pretrained.backbone.to_dict(),
        tokenizer.get_vocab(),
        prepared.tabular.imputer.to_artifact(),
        prepared.tabular.risk_tables.to_artifact(),
        embedding_matrix=built.embeddings,
    )
    val = prepared.splits["val"]
    collate = BatchCollator.of(val, config, pretrained.pad_id)
    with writing_into(staging.final_model_dir, "the model"):
        write_model_files(staging.model_dir, model, bundle, tokenizer, config)
        return export_verified_onnx(
            model, collate, len(val), staging.model_dir / "model.onnx", pretrained.backbone.max_positions
        )


def evaluate(
    staging: Staging, config: Config, pretrained: Pretrained, data: InputData, prepared: PreparedData, trained: Trained
) -> dict:
    """Every val and test row scored once: metrics, prediction files, figures, TensorBoard events."""
    device = trained.trainer.strategy.root_device
    engine = TorchEngine(trained.model, device)
    results = {}
    for split in EVALUATED_SPLITS:
        encoded = prepared.splits[split]
        loader = scoring_loader(encoded, config, pad_id=pretrained.pad_id, on_gpu=device.type == "cuda")
        results[split] = SplitResult(
            encoded.labels, engine.probabilities(loader), data.frames[split], data.files[split]
        )
    with writing_into(staging.final_data_dir, "the evaluation files"):
        return write_evaluation(staging.data_dir, config, results, step=trained.trainer.global_step)


def record(
    staging: Staging,
    run: RunRecord,
    config: Config,
    data: InputData,
    trained: Trained,
    onnx_parity: float,
    metrics: dict,
) -> None:
    """``manifest.json``, written last: where the model came from and how it went."""
    with writing_into(staging.final_model_dir, "the manifest"):
        run.write_manifest(
            staging.model_dir,
            config=config,
            files=data.files,
            frames=data.frames,
            model=trained.model,
            trainer=trained.trainer,
            onnx_parity=onnx_parity,
            metrics=metrics,
        )


def track(paths: ContractPaths, trained: Trained, metrics: dict) -> None:
    """Once the outputs are in place (global rank 0): the final metrics and the files of ``model/`` to
    MLflow, when it tracks the run (``training.tracking``)."""
    for logger in trained.trainer.loggers:
        if isinstance(logger, MLFlowLogger) and metrics:
            client, run_id = logger.experiment, logger.run_id
            for tag, value in metric_scalars(metrics):
                client.log_metric(run_id, f"final/{tag}", value)
            client.log_artifacts(run_id, str(paths.model_dir), artifact_path="model")
            log.info("Final metrics and the model files logged to MLflow run %s", run_id)
