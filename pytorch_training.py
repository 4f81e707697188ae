"""Train, export and evaluate a text + tabular classifier under the SageMaker training contract.

Reads the train/val/test splits and ``hyperparameters.json`` from the contract's locations (base
``/opt/ml``, or ``SAGEMAKER_BASE_DIR``), then:

1. validates the configuration (unknown keys, wrong types, contradicting fields);
2. loads the tokenizer and the pretrained transformer named by ``tokenizer``;
3. reads the splits and checks every row: columns, labels, numeric values;
4. preprocesses once: strict labels, mean imputation and risk tables fitted on train (or taken
   from an upstream step's ``model_artifacts_input``, with its ``selected_features.json``), the
   text chain (dialogue splitting, HTML/emoji cleaning, normalisation, chunked tokenization);
5. builds the ``model_class`` model and trains it with Lightning (early stopping and checkpoints
   on ``early_stop_metric``);
6. writes ``model/`` (state dict, artifacts, tokenizer, encoders) and ``model.onnx``, checked
   against PyTorch with onnxruntime;
7. evaluates on val and test: ``output/data/metrics.json``, predictions, ROC/PR/confusion/
   calibration figures, TensorBoard events; prints each metric as ``<split>/<metric>=<value>``;
8. writes ``model/manifest.json`` (inputs and their hashes, config hash, versions, timings, metrics).

Devices and processes: one device by default, every visible GPU (``SM_NUM_GPUS`` of them when
SageMaker sets it) with DDP when there are several, FSDP with ``strategy=fsdp``; several SageMaker
hosts (``SM_HOSTS``) or ``torchrun`` add nodes.
Each node preprocesses once (local rank 0; the other ranks reuse its cache); global rank 0 alone
exports, evaluates every val/test row once and writes files, while the other ranks wait for it.

Checkpoints go to the checkpoint folder (``/opt/ml/checkpoints``) atomically. A run restarted with
the same config and data resumes from the newest one; a checkpoint of a different run, or of
another number of processes, is an error. SIGTERM (job stop, spot interruption) ends the current
step, saves ``last.ckpt`` and exits; outside training it stops the job at once.

Any error writes ``output/failure`` (first line: what to change) and exits with status 1;
``model/`` is only filled when every step succeeded. ``DRY_RUN=true`` runs the same steps on a
sample of each split in a scratch folder and prints a report instead (``training/dry_run.py``).
Command-line arguments (``train``, or the ``--name value`` pairs the SageMaker toolkit passes) are
ignored: hyperparameters.json is the only configuration.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from contracts import ContractPaths, RunSwitches, resolve_paths
from contracts.failure import failure_reason, write_failure
from evaluation.inference import predict_probabilities
from evaluation.report import SplitResult, write_evaluation
from export.manifest import RunRecord
from export.model_files import artifacts_bundle, write_model_files
from export.onnx_export import export_verified_onnx
from export.staging import staged_directories
from hyperparams import Config, load_config
from models.backbone import Backbone
from models.classifier import Classifier
from models.registry import build_model, initial_word_embeddings, trainable_parameters
from processing.cache import TextCache
from processing.files import read_splits
from processing.precomputed import apply_pipeline_inputs, pipeline_input_files
from processing.preparation import PreparedData, prepare_data
from processing.text.loading import check_sequence_limit, load_tokenizer
from processing.validation import validate_splits
from training.checkpoints import checkpoint_to_resume, data_digests, run_fingerprint
from training.data import evaluation_loader, fit_loaders
from training.distributed import local_rank, local_rank_zero_first, others_wait_for_global_zero, plan_processes
from training.dry_run import JobRecord, dry_run
from training.interruption import StopRequest
from training.logs import configure_logging
from training.trainer import build_trainer, fit, trained_model, training_module

log = logging.getLogger("pytorch_training")
TRAINING_LOG_FOLDER = "tensorboard_train"  # written during training; the evaluation's staging keeps it


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    paths = resolve_paths()
    first_on_node = local_rank() == 0  # the other ranks of a node only report a failure nobody else did
    if first_on_node:
        paths.failure_file.unlink(missing_ok=True)
    args = sys.argv[1:] if argv is None else argv
    stop = StopRequest()
    try:
        with stop.installed():
            if RunSwitches.from_env().dry_run:
                dry_run(paths, partial(train_and_export, argv=args, stop=stop))
            else:
                print_metric_lines(train_and_export(paths, args, stop).metrics)
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # an exit raised inside the job is a failure too
        if first_on_node or not paths.failure_file.exists():
            write_failure(paths.failure_file, exc)
        log.error("Job failed: %s", failure_reason(exc), exc_info=exc)
        return 1
    return 0


def train_and_export(paths: ContractPaths, argv: list[str], stop: StopRequest) -> JobRecord:
    run = RunRecord()
    if argv:
        log.info("Ignoring command-line arguments %s; the job is configured by hyperparameters.json", argv)
    switches = RunSwitches.from_env()
    config = apply_pipeline_inputs(load_config(paths), paths.artifacts_input_dir, switches)
    run.record_pipeline_inputs(pipeline_input_files(paths.artifacts_input_dir, switches))
    plan = plan_processes(config)
    pl.seed_everything(config.seed, workers=True, verbose=False)

    tokenizer = load_tokenizer(config.tokenizer)
    backbone = Backbone.pretrained(config.tokenizer)
    check_sequence_limit(config, tokenizer, backbone.max_positions)

    files, frames = read_splits(paths.channels, config)
    validate_splits(config, frames, files)
    digests = data_digests(files)
    resume = checkpoint_to_resume(paths.checkpoints_dir, config, digests, plan.world_size)
    cache_dir = paths.checkpoints_dir / "preprocessed"
    with local_rank_zero_first(cache_dir, run_fingerprint(config, digests)):
        data = prepare_data(config, frames, tokenizer, files, TextCache(cache_dir))

    embeddings = initial_word_embeddings(config, backbone)  # CNN/LSTM start from it; saved with the model
    model = build_model(config, backbone, embeddings)
    if model.tabular is not None:
        model.tabular.fit_scale(data.splits["train"].tabular)
    log.info("Model %s: %s trainable parameters", config.model_class, f"{trainable_parameters(model):,}")
    train_loader, val_loader = fit_loaders(data.splits, config, pad_id=tokenizer.pad_token_id or 0, on_gpu=plan.on_gpu)
    module = training_module(model, config, plan)
    trainer = build_trainer(
        config, plan, len(frames["train"]), paths.checkpoints_dir, paths.output_data_dir / TRAINING_LOG_FOLDER,
        digests, stop,
    )
    fit(trainer, module, train_loader, val_loader, resume)
    model = trained_model(trainer, module, config, backbone)

    metrics = {}
    with others_wait_for_global_zero(trainer) as writer:
        if writer:
            metrics = export_and_evaluate(
                paths, run, config, model, backbone, embeddings, tokenizer, data, frames, files, trainer
            )
    log.info("Done in %.0fs", run.elapsed)
    return JobRecord(model, trainer, metrics)


def export_and_evaluate(
    paths: ContractPaths,
    run: RunRecord,
    config: Config,
    model: Classifier,
    backbone: Backbone,
    embeddings: torch.Tensor | None,
    tokenizer: PreTrainedTokenizerBase,
    data: PreparedData,
    frames: dict[str, pd.DataFrame],
    files: dict[str, Path],
    trainer: pl.Trainer,
) -> dict:
    """Global rank 0 only: model files, ONNX, and evaluation of every val and test row.

    Both ``model/`` and the evaluation files in ``output/data`` are staged and move into place
    together at the end, so a failure anywhere here leaves the previous run's outputs untouched.
    """
    device = trainer.strategy.root_device
    pad_id, on_gpu = tokenizer.pad_token_id or 0, device.type == "cuda"
    loaders = {
        split: evaluation_loader(data.splits[split], config, pad_id=pad_id, on_gpu=on_gpu) for split in ("val", "test")
    }
    training_curves = frozenset({TRAINING_LOG_FOLDER})
    with staged_directories(paths.model_dir, paths.output_data_dir, keep=training_curves) as (staging, data_staging):
        bundle = artifacts_bundle(
            config,
            model.input_names,
            backbone.to_dict(),
            tokenizer.get_vocab(),
            data.tabular.imputer.to_artifact(),
            data.tabular.risk_tables.to_artifact(),
            embedding_matrix=embeddings,
        )
        write_model_files(staging, model, bundle, tokenizer, config)
        onnx_parity = export_verified_onnx(
            model, loaders["val"].collate_fn, len(frames["val"]), staging / "model.onnx", backbone.max_positions
        )
        results = {
            split: SplitResult(
                data.splits[split].labels,
                predict_probabilities(model, loaders[split], device),
                frames[split],
                files[split],
            )
            for split in ("val", "test")
        }
        metrics = write_evaluation(data_staging, config, results, step=trainer.global_step)
        run.write_manifest(staging, config=config, files=files, frames=frames, model=model, trainer=trainer,
                           onnx_parity=onnx_parity, metrics=metrics)
    log.info("Model in %s, evaluation in %s", paths.model_dir, paths.output_data_dir)
    return metrics


def print_metric_lines(metrics: dict) -> None:
    """One stable line per final metric, e.g. ``test/auroc=0.9412``: a tuning job's regex reads these."""
    for split in ("val", "test"):
        for name, value in metrics.get(split, {}).items():
            if isinstance(value, float) and name != "threshold":
                print(f"{split}/{name}={value:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
