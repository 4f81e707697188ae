"""Training batches grouped by length (``group_by_length``): rows of similar padded size share a
batch, the batches come in a seeded random order, every rank runs the same number of batches and
each epoch covers every row once across ranks, and a resumed loader continues the same order.
(The job-level checks are in test_resume.py, exact weights after two interruptions, and in
test_distributed.py, the 2-process DDP and FSDP jobs; both run with grouping on, the default.)"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers.data import hyperparameters
from hyperparams.inactive import inactive_settings
from hyperparams.loading import validate_config
from job.dry_run import _time_estimate
from processing.dataset import EncodedSplit
from processing.loaders import padded_sizes
from processing.text.ragged import RaggedChunks
from training import sampling
from training.data import fit_loaders, padded_tokens_per_row, training_loader
from training.timing import StepTimer

ROWS = 203  # not a multiple of any batch, window or world size below


def config(**overrides):
    return validate_config(hyperparameters("/tiny", **{"batch_size": 4, "length_group_window": 5, **overrides}))


def split_of(chunk_lengths: list[list[int]]) -> EncodedSplit:
    """Rows whose chunks have these token counts."""
    lengths = np.array([n for row in chunk_lengths for n in row], dtype=np.int64)
    chunks = RaggedChunks(
        np.full(lengths.sum(), 7, dtype=np.uint16),
        np.concatenate([[0], np.cumsum(lengths)]),
        np.concatenate([[0], np.cumsum([len(row) for row in chunk_lengths])]),
    )
    rows = len(chunk_lengths)
    return EncodedSplit({"text": chunks}, np.zeros((rows, 2), dtype=np.float32), np.arange(rows) % 2)


@pytest.fixture(scope="module")
def train() -> EncodedSplit:
    """Rows of 2 to 200 tokens, a tenth of them in two chunks."""
    rng = np.random.default_rng(5)
    return split_of([[int(n)] * (2 if i % 10 == 0 else 1) for i, n in enumerate(rng.integers(2, 200, ROWS))])


def on_rank(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(sampling, "world_position", lambda: (rank, world))


def epoch_batches(train: EncodedSplit, cfg, epoch: int = 0) -> list[list[int]]:
    loader = training_loader(train, cfg, pad_id=0)
    loader.batch_sampler.sampler.set_epoch(epoch)
    return list(loader.batch_sampler)


def test_padded_size_is_chunks_times_the_longest_chunk_summed_over_texts():
    split = split_of([[3], [5, 2], [4, 4, 1]])
    assert padded_sizes(split).tolist() == [3, 10, 12]
    texts = {"primary": split.texts["text"], "secondary": split.texts["text"]}
    two_texts = EncodedSplit(texts, split.tabular, split.labels)
    assert padded_sizes(two_texts).tolist() == [6, 20, 24]


def test_the_same_seed_gives_the_same_batches_another_epoch_or_seed_others(train):
    cfg = config()
    first = epoch_batches(train, cfg)
    assert first == epoch_batches(train, cfg)
    assert first != epoch_batches(train, cfg, epoch=1)
    assert first != epoch_batches(train, config(seed=7))
    assert sorted(i for b in first for i in b) == list(range(ROWS))


def test_grouped_batches_hold_similar_lengths_in_a_random_order_of_batches(train):
    sizes = padded_sizes(train)
    grouped = epoch_batches(train, config())
    plain = epoch_batches(train, config(group_by_length=False))

    def mean_spread(batches):
        return np.mean([sizes[b].max() - sizes[b].min() for b in batches])

    assert mean_spread(grouped) < 0.5 * mean_spread(plain)
    tokens = {
        name: padded_tokens_per_row(training_loader(train, config(group_by_length=on), pad_id=0))
        for name, on in (("grouped", True), ("plain", False))
    }
    real = train.texts["text"].chunk_lengths.sum() / ROWS
    assert real <= tokens["grouped"] < 0.8 * tokens["plain"], tokens
    means = [sizes[b].mean() for b in grouped[:-1]]  # the last, short batch stays last
    assert means != sorted(means) and means != sorted(means, reverse=True), "batches come in a random order"
    assert abs(np.corrcoef(np.arange(len(means)), means)[0, 1]) < 0.5


def test_a_larger_window_pads_less(train):
    tokens = [
        padded_tokens_per_row(training_loader(train, config(length_group_window=w), pad_id=0)) for w in (1, 5, 60)
    ]
    assert tokens[0] > tokens[1] > tokens[2]


def test_grouping_off_gives_the_plain_shuffled_order(train, monkeypatch):
    """group_by_length=false is exactly the order before grouping existed: every world-th row of the
    (seed, epoch) permutation, wrapped around to equal shares."""
    for world in (1, 3):
        for rank in range(world):
            on_rank(monkeypatch, rank, world)
            batches = epoch_batches(train, config(group_by_length=False), epoch=2)
            order = torch.randperm(ROWS, generator=torch.Generator().manual_seed(42 + 2)).tolist()
            total = math.ceil(ROWS / world) * world
            expected = (order + order)[:total][rank::world]
            assert [i for b in batches for i in b] == expected


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_run_equal_batches_that_cover_every_row_once(train, monkeypatch, world):
    """Grouping is done on the global order before it is split, so rank r's batch i is its share of
    the same global batch: equal counts, similar lengths across ranks, every row once (plus the
    wrap-around that makes the shares equal)."""
    sizes = padded_sizes(train)

    def ranks_batches(cfg, epoch):
        per_rank = []
        for rank in range(world):
            on_rank(monkeypatch, rank, world)
            loader, _ = fit_loaders({"train": train, "val": train}, cfg, pad_id=0)
            loader.batch_sampler.sampler.set_epoch(epoch)
            per_rank.append([b["index"].tolist() for b in loader])
        return per_rank

    def global_spread(per_rank):
        together = [[i for b in batch_i for i in b] for batch_i in zip(*per_rank, strict=True)]
        return np.mean([sizes[rows].max() - sizes[rows].min() for rows in together])

    for epoch in (0, 1):
        per_rank = ranks_batches(config(), epoch)
        assert len({len(batches) for batches in per_rank}) == 1, "every rank runs the same number of batches"
        assert len(per_rank[0]) == math.ceil(math.ceil(ROWS / world) / 4)
        seen = [i for batches in per_rank for b in batches for i in b]
        assert sorted(set(seen)) == list(range(ROWS))
        assert len(seen) == math.ceil(ROWS / world) * world
        plain = ranks_batches(config(group_by_length=False), epoch)
        assert global_spread(per_rank) < 0.5 * global_spread(plain), "the ranks' batches i hold similar lengths"


def test_a_resumed_grouped_loader_continues_with_the_next_batch(train, monkeypatch):
    on_rank(monkeypatch, 1, 2)
    cfg = config()
    reference = training_loader(train, cfg, pad_id=0)
    reference.batch_sampler.sampler.set_epoch(3)
    expected = [b["index"].tolist() for b in reference]

    first = training_loader(train, cfg, pad_id=0)
    first.batch_sampler.sampler.set_epoch(3)
    batches = iter(first)
    done = [next(batches)["index"].tolist() for _ in range(7)]
    position = first.position()
    assert position == {"epoch": 3, "rows_done": 28}

    resumed = training_loader(train, cfg, pad_id=0)
    resumed.resume(position)
    assert done + [b["index"].tolist() for b in resumed] == expected
    resumed.batch_sampler.sampler.set_epoch(4)
    assert sum(len(b["index"]) for b in resumed) == math.ceil(ROWS / 2), "the next epoch is whole again"


def test_the_dry_run_scales_its_random_step_by_the_padding_of_grouped_batches():
    cfg = validate_config(hyperparameters("/tiny", batch_size=10, val_check_interval=0.5, max_epochs=3))
    timer = StepTimer()
    timer.train_seconds = [5.0, 2.0, 2.0]
    timer.validation_seconds, timer.validation_rows = [1.0], [100]
    labels = {"train": np.zeros(100), "val": np.zeros(200), "test": np.zeros(100)}
    lines = _time_estimate(cfg, labels, SimpleNamespace(callbacks=[timer], world_size=1), grouped_padding=0.6)
    assert lines[0] == "Speed here: 2.00 s per training step of 10 rows; validation 10.0 s per 1,000 rows"
    assert lines[1] == (
        "Length-grouped batches (group_by_length) pad to 0.60 x the tokens of random ones on the sampled train rows: "
        "about 1.20 s per step"
    )
    assert lines[2].startswith("Estimated time per epoch: 10 steps x 1.20 s + 2 validation(s) x 0m02s = 0m16s;")


def test_the_window_is_noted_as_idle_without_grouping():
    def window_notes(cfg):
        return [note for note in inactive_settings(cfg) if "length_group_window" in note]

    assert window_notes(config(group_by_length=False)) == [
        "Hyperparameter length_group_window = 5 has no effect: group_by_length is false, so training batches are "
        "random draws of rows."
    ]
    assert window_notes(config()) == []
