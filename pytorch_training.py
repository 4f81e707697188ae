"""Train, export and evaluate a text + tabular classifier under the SageMaker training contract.

Reads the train/val/test splits and ``hyperparameters.json`` from the contract's locations (base
``/opt/ml``, or ``SAGEMAKER_BASE_DIR``), then:

1. validates the configuration (unknown keys, wrong types, contradicting fields);
2. loads the tokenizer and the pretrained transformer named by ``tokenizer``;
3. reads the splits and checks their columns;
4. preprocesses once: strict labels, mean imputation and risk tables fitted on train, the text
   chain (dialogue splitting, HTML/emoji cleaning, normalisation, chunked tokenization);
5. builds the ``model_class`` model and trains it with Lightning (early stopping and checkpoints
   on ``early_stop_metric``);
6. writes ``model/`` (state dict, artifacts, tokenizer, encoders) and ``model.onnx``, checked
   against PyTorch with onnxruntime;
7. evaluates on val and test: ``output/data/metrics.json``, predictions, ROC/PR curves,
   TensorBoard events; prints each metric as ``<split>/<metric>=<value>``.

Any error writes ``output/failure`` (first line: what to change) and exits with status 1;
``model/`` is only filled when every step succeeded. Command-line arguments (``train``, or the
``--name value`` pairs the SageMaker toolkit passes) are ignored: hyperparameters.json is the
only configuration.
"""

from __future__ import annotations

import logging
import sys
import time

import lightning.pytorch as pl

from contracts import ContractPaths, RunSwitches, resolve_paths
from contracts.failure import write_failure
from evaluation.inference import predict_probabilities
from evaluation.report import SplitResult, write_evaluation
from export.model_files import artifacts_bundle, staged_directory, write_model_files
from export.onnx_export import export_verified_onnx
from hyperparams import Config, load_config
from models.backbone import Backbone
from models.lightning_module import ClassifierModule
from models.registry import build_model, initial_word_embeddings, trainable_parameters
from processing.cache import TextCache
from processing.files import load_splits
from processing.preparation import prepare_data
from processing.text.loading import check_sequence_limit, load_tokenizer
from processing.validation import check_columns
from training.data import make_loader
from training.logs import configure_logging
from training.trainer import build_trainer, load_best_weights

log = logging.getLogger("pytorch_training")


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    paths = resolve_paths()
    paths.failure_file.unlink(missing_ok=True)
    try:
        train_and_export(paths, sys.argv[1:] if argv is None else argv)
    except (Exception, KeyboardInterrupt) as exc:
        reason = write_failure(paths.failure_file, exc)
        log.error("Job failed: %s", reason, exc_info=exc)
        return 1
    return 0


def train_and_export(paths: ContractPaths, argv: list[str]) -> None:
    started = time.time()
    if argv:
        log.info("Ignoring command-line arguments %s; the job is configured by hyperparameters.json", argv)
    RunSwitches.from_env()
    config = load_config(paths)
    pl.seed_everything(config.seed, workers=True, verbose=False)

    tokenizer = load_tokenizer(config.tokenizer)
    backbone = Backbone.pretrained(config.tokenizer)
    check_sequence_limit(config, tokenizer, backbone.max_positions)

    files, frames = load_splits(
        paths.channels,
        {"train": config.train_filename, "val": config.val_filename, "test": config.test_filename},
        string_columns=[config.id_name, *config.text_fields.values()],
    )
    check_columns(config, frames, files)
    data = prepare_data(config, frames, tokenizer, files, TextCache(paths.checkpoints_dir / "preprocessed"))

    embeddings = initial_word_embeddings(config, backbone)  # CNN/LSTM start from it; saved with the model
    model = build_model(config, backbone, embeddings)
    if model.tabular is not None:
        model.tabular.fit_scale(data.splits["train"].tabular)
    log.info("Model %s: %s trainable parameters", config.model_class, f"{trainable_parameters(model):,}")
    loaders = {
        split: make_loader(data.splits[split], config, train=split == "train", pad_id=tokenizer.pad_token_id or 0)
        for split in data.splits
    }
    module = ClassifierModule(model, config)
    trainer = build_trainer(
        config, paths.checkpoints_dir, paths.output_data_dir / "tensorboard_train", len(loaders["train"])
    )
    trainer.fit(module, loaders["train"], loaders["val"])
    if config.load_ckpt:
        load_best_weights(module, trainer)

    with staged_directory(paths.model_dir) as staging:
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
        export_verified_onnx(model, loaders["val"].collate_fn, len(frames["val"]), staging / "model.onnx", backbone.max_positions)
        results = {
            split: SplitResult(data.splits[split].labels, predict_probabilities(model, loaders[split]), frames[split], files[split])
            for split in ("val", "test")
        }
        metrics = write_evaluation(paths.output_data_dir, config, results, step=trainer.global_step)
    print_metric_lines(metrics)
    log.info("Done in %.0fs; model in %s, evaluation in %s", time.time() - started, paths.model_dir, paths.output_data_dir)


def print_metric_lines(metrics: dict) -> None:
    """One stable line per final metric, e.g. ``test/auroc=0.9412``: a tuning job's regex reads these."""
    for split in ("val", "test"):
        for name, value in metrics.get(split, {}).items():
            if isinstance(value, float) and name != "threshold":
                print(f"{split}/{name}={value:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
