"""``DRY_RUN=true``: the job's own steps on a small sample of every split, in a scratch folder, then a report.

The job configures, loads the tokenizer and the transformer, and reads and checks the whole of
every split (so a bad value in any row fails it, as it would fail the real job). Then
:meth:`DryRun.on_a_sample` hands the remaining steps a seeded sample of each split, a scratch folder
for everything they write, and a config for one short epoch: preprocessing (without the text
cache), ``DRY_RUN_STEPS`` training steps, one validation, the export with its ONNX parity check,
and evaluation of the val and test samples. The real ``model/``, ``output/data/`` and checkpoint
folder are never opened for writing, so a later real run neither resumes from a dry-run
checkpoint nor reuses text tokenized from a sample; the scratch folder is deleted at the end.

The printed report gives rows and class balance of the full splits, token lengths and chunking of
a larger text sample (``TEXT_SAMPLE_ROWS`` per split, tokenized with the job's text chain), the
tabular feature count, the parameter count, and an estimate of the time per epoch from the
measured step and validation times. The sample trains in random batches, so the timed step is a
typical one; with ``group_by_length`` it is scaled by the padding of length-grouped batches,
measured on the sampled train rows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd

from contracts.paths import ContractPaths
from hyperparams.config import Config
from job.steps import InputData, JobOutcome, Pretrained, Setup
from models.registry import trainable_parameters
from processing.dataset import EncodedSplit
from processing.numeric import parse_numeric
from processing.preparation import encode_labels, encode_texts
from processing.quality import quality_warnings
from processing.text.chunking import ChunkStats
from processing.text.pipeline import token_length_summary
from processing.text.ragged import RaggedChunks
from processing.upstream_inputs import revalidated
from training.data import padded_tokens_per_row, training_loader
from training.timing import step_timer
from training.trainer import validation_interval

log = logging.getLogger(__name__)

DRY_RUN_STEPS = 2  # training steps; the first pays for set-up, the second is timed for the estimate
TEXT_SAMPLE_ROWS = 1000  # rows per split whose text is tokenized for the report (cheap next to a training step)
# One epoch, validated once at its end, in random batches: the timed step is then a typical one,
# which the estimate scales to length-grouped batches by their padding (``grouped_padding``).
SCRATCH_OVERRIDES = {"max_epochs": 1, "val_check_interval": 1.0, "group_by_length": False}


@dataclass
class FullData:
    """What the report says about the whole of the splits, gathered before sampling."""

    config: Config
    labels: dict[str, np.ndarray]
    text: dict[str, tuple[RaggedChunks, ChunkStats]]
    grouped_padding: float | None = None  # padded tokens of length-grouped batches / those of random batches
    quality: list[str] = field(default_factory=list)  # processing.quality's warnings about the whole training split


class DryRun:
    def __init__(self, folder: Path):
        self.folder = folder
        self.started = time.perf_counter()
        self.full: FullData | None = None

    @classmethod
    @contextlib.contextmanager
    def in_scratch_folder(cls) -> Iterator[DryRun]:
        with tempfile.TemporaryDirectory(prefix="dry-run-", ignore_cleanup_errors=True) as folder:
            yield cls(Path(folder))

    def on_a_sample(
        self, paths: ContractPaths, setup: Setup, pretrained: Pretrained, data: InputData
    ) -> tuple[ContractPaths, Setup, InputData]:
        """The job's locations moved into the scratch folder, a one-epoch config, and a sample of every split."""
        config = setup.config
        _, labels = encode_labels(config, data.frames)
        text_samples = {s: sample_split(config, f, labels[s], TEXT_SAMPLE_ROWS) for s, f in data.frames.items()}
        encoded, stats = encode_texts(config, pretrained.tokenizer, text_samples, files={})
        padding = grouped_padding(config, encoded["train"], pretrained.pad_id)
        self.full = FullData(config, labels, text_statistics(config, encoded, stats), padding)
        stats = {role: role_stats for role, (_, role_stats) in self.full.text.items()}
        self.full.quality = quality_warnings(config, data.frames["train"], labels["train"], stats)
        for warning in self.full.quality:
            log.warning(warning)
        frames = {s: sample_split(config, f, labels[s], sample_rows(config, s)) for s, f in data.frames.items()}
        log.info("Dry run: the job runs on %s in %s", _rows(frames), self.folder)
        scratch_config = revalidated(config, SCRATCH_OVERRIDES, "the dry run's one-epoch settings")
        # no tuning lines, no MLflow run; no quality warnings about the sample (the whole data's are above)
        sample_setup = replace(setup, config=scratch_config, reports=False, checks_quality=False)
        return paths.with_outputs_in(self.folder), sample_setup, replace(data, frames=frames)

    def report(self, outcome: JobOutcome) -> str:
        """Print and return the report (on global rank 0 only: the other ranks return it unprinted)."""
        if self.full is None:
            raise RuntimeError("the dry run never reached its sample; the job failed before reading the data")
        text = render_report(self.full, outcome.model, outcome.trainer, time.perf_counter() - self.started)
        if outcome.trainer.is_global_zero:
            print(text, flush=True)
        return text


def sample_rows(config: Config, split: str) -> int:
    """Enough train rows for DRY_RUN_STEPS batches; one batch's worth of val and test."""
    return config.batch_size * (DRY_RUN_STEPS if split == "train" else 1)


def text_statistics(
    config: Config, encoded: Mapping[str, Mapping[str, RaggedChunks]], stats: Mapping[str, ChunkStats]
) -> dict[str, tuple[RaggedChunks, ChunkStats]]:
    """Per text column: the sampled rows of every split, as the job's text chain encoded them (never the cache)."""
    return {
        role: (RaggedChunks.concatenate([encoded[split][role] for split in encoded]), stats[role])
        for role in config.text_fields
    }


def grouped_padding(config: Config, texts: Mapping[str, RaggedChunks], pad_id: int) -> float | None:
    """With ``group_by_length``: padded tokens per row of an epoch of length-grouped batches over those
    of random batches, on the sampled train rows (None without it)."""
    if not config.group_by_length:
        return None
    rows = len(next(iter(texts.values())))
    sample = EncodedSplit(texts, np.zeros((rows, 0), np.float32), np.zeros(rows, np.int64))
    grouped, plain = (
        padded_tokens_per_row(training_loader(sample, c, pad_id=pad_id))
        for c in (config, config.model_copy(update={"group_by_length": False}))
    )
    return grouped / plain


def sample_split(config: Config, frame: pd.DataFrame, labels: np.ndarray, rows: int) -> pd.DataFrame:
    """A seeded sample in file order that keeps one row of every class present and, for every
    numeric field, a row where it has a value (so fitting the encoders on the sample cannot fail
    where the full split would not)."""
    if len(frame) <= rows:
        return frame
    _, first_of_class = np.unique(labels, return_index=True)
    required = set(first_of_class.tolist())
    if config.uses_tabular:
        numbers = parse_numeric(frame, config.numeric_fields, "sample", config.passthrough_categorical_fields)
        required.update(int(np.argmax(column)) for column in numbers.notna().to_numpy().T if column.any())
    rest = np.setdiff1d(np.arange(len(frame)), sorted(required))
    rng = np.random.default_rng(config.seed)
    chosen = rng.choice(rest, size=max(0, rows - len(required)), replace=False)
    return frame.iloc[np.sort(np.concatenate([sorted(required), chosen]).astype(np.int64))]


def render_report(full: FullData, model, trainer: pl.Trainer, seconds: float) -> str:
    config, labels = full.config, full.labels
    lines = [
        f"Dry run passed in {seconds:.1f} s: validation of every row, then preprocessing, "
        f"{DRY_RUN_STEPS} training steps, validation, export with the ONNX check and evaluation on a sample, "
        "in a scratch folder (deleted). Nothing was written to model/, output/data/ or the checkpoint folder.",
        "Rows: " + ", ".join(f"{split} {len(ids):,}" for split, ids in labels.items()),
    ]
    for split, ids in labels.items():
        counts = np.bincount(ids, minlength=config.num_classes)
        shares = ", ".join(f"{label!r} {n:,} ({n / len(ids):.1%})" for label, n in zip(config.class_labels, counts))
        lines.append(f"Classes in {split}: {shares}")
    for role, column in config.text_fields.items():
        lines.append(f"Text {column!r}: " + _text_summary(config, *full.text[role]))
    features = config.tabular_feature_names
    lines.append(
        f"Tabular features: {len(features)}" + (f" ({', '.join(features)})" if features else " (text-only model)")
    )
    lines.append(f"Quality warnings: {len(full.quality) or 'none'}")
    lines.extend(f"- {warning}" for warning in full.quality)
    total = sum(p.numel() for p in model.parameters())
    lines.append(f"Model {config.model_class}: {total:,} parameters, {trainable_parameters(model):,} trainable")
    lines.extend(_time_estimate(config, labels, trainer, full.grouped_padding))
    return "\n".join(["", "=== Dry run report ===", *lines, ""])


def _text_summary(config: Config, chunks: RaggedChunks, stats: ChunkStats) -> str:
    lengths = token_length_summary(chunks)
    share = 1 / max(stats.samples, 1)
    percentiles = ", ".join(f"{name} {lengths[name]:.0f}" for name in ("p50", "p90", "p99", "max"))
    if config.chunk_trancate:
        kept = f"{stats.truncated_samples * share:.1%} lost text to max_total_chunks={config.max_total_chunks}"
    else:
        kept = (
            f"{stats.over_limit_samples * share:.1%} kept more than max_total_chunks={config.max_total_chunks} chunks"
        )
    return (
        f"{stats.samples:,} sampled rows, tokens per row {percentiles}; "
        f"{stats.multi_chunk_samples * share:.1%} in more than one chunk of max_sen_len={config.max_sen_len}; {kept}"
    )


def _time_estimate(
    config: Config, labels: Mapping[str, np.ndarray], trainer: pl.Trainer, grouped_padding: float | None = None
) -> list[str]:
    """Full-data epoch time from the measured step and validation times, on this machine with the
    configured devices (each process takes its share of the rows). The timed step is a random
    batch; with ``grouped_padding`` a step of length-grouped batches costs in proportion to its padding."""
    timer = step_timer(trainer)
    processes = max(1, trainer.world_size)
    steps = math.ceil(len(labels["train"]) / (config.batch_size * processes))
    interval = validation_interval(config, steps)
    validations = int(1 / interval) if isinstance(interval, float) else steps // interval
    measured, row = timer.step_seconds, timer.validation_row_seconds / processes
    step = measured * (grouped_padding or 1.0)
    validation = len(labels["val"]) * row
    epoch = steps * step + validations * validation
    speed = [
        f"Speed here: {measured:.2f} s per training step of {config.batch_size} rows; "
        f"validation {1000 * row:.1f} s per 1,000 rows"
    ]
    if grouped_padding is not None:
        speed.append(
            f"Length-grouped batches (group_by_length) pad to {grouped_padding:.2f} x the tokens of random ones "
            f"on the sampled train rows: about {step:.2f} s per step"
        )
    return [
        *speed,
        f"Estimated time per epoch: {steps:,} steps x {step:.2f} s + {validations} validation(s) x "
        f"{_duration(validation)} = {_duration(epoch)}; max_epochs={config.max_epochs}: "
        f"at most {_duration(epoch * config.max_epochs)}, "
        f"then about {_duration((len(labels['val']) + len(labels['test'])) * row)} to evaluate val and test",
    ]


def _rows(frames: Mapping[str, pd.DataFrame]) -> str:
    return ", ".join(f"{len(frame)} {split}" for split, frame in frames.items()) + " rows"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
