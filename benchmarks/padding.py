"""Padding: per-batch dynamic padding ÷ padding every chunk to max_sen_len=512, on the clothing reviews.

Reports the tokens actually computed per sample and training samples/s for both, and checks that
the two learn the same thing: with the same seed and dropout off, the loss curves agree to
floating-point noise (padding is masked). Target: >= 3x faster.

    python benchmarks/padding.py [--steps 6] [--repeats 2]
"""

from __future__ import annotations

import statistics

import numpy as np
from common import arguments, demo_config, demo_frames, prepare, report
from loops import lightning_run, raw_run, steady


class TokenCounter:
    """Tokens per sample a collate hands to the model (chunks x padded length, per row)."""

    def __init__(self, collate):
        self.collate = collate
        self.tokens = 0
        self.samples = 0

    def __call__(self, rows):
        batch = self.collate(rows)
        ids = next(v for k, v in batch.items() if v.dim() == 3)
        self.tokens += ids.numel()
        self.samples += ids.shape[0]
        return batch


def tokens_per_sample(config, split, pad_id: int, batches: int) -> float:
    from loops import train_loader

    loader = train_loader(config, split, pad_id)
    counter = TokenCounter(loader.collate_fn)
    for i, rows in enumerate(loader.batch_sampler):
        if i == batches:
            break
        counter(rows)
    return counter.tokens / counter.samples


def run(model: str | None = None, steps: int = 6, repeats: int = 2, rows: int = 1000, batch_size: int = 16) -> dict:
    # fp32 on both sides, so the loss curves can be compared closely
    dynamic = demo_config(model, batch_size=batch_size, max_sen_len=512, fp16=False, warmup_steps=2)
    fixed = dynamic.model_copy(update={"fixed_tokenizer_length": True})
    tokenizer, backbone, splits = prepare(dynamic, demo_frames(rows))
    pad = tokenizer.pad_token_id or 0
    times = {"dynamic": [], "fixed": []}
    for _ in range(repeats):
        for name, config in (("dynamic", dynamic), ("fixed", fixed)):
            times[name] += steady(lightning_run(config, backbone, splits["train"], steps, pad).iteration_times(), warmup=1)
    rate = {name: batch_size / statistics.median(t) for name, t in times.items()}
    # Equal results: without dropout (whose masks depend on tensor shapes) the same seed must give
    # the same loss curve whichever way the batch is padded.
    losses = {name: raw_run(config, backbone, splits["train"], steps, pad, dropout=False)[1]
              for name, config in (("dynamic", dynamic), ("fixed", fixed))}
    gap = float(np.max(np.abs(np.array(losses["dynamic"]) - np.array(losses["fixed"]))))
    return {
        "tokens_per_sample_dynamic": tokens_per_sample(dynamic, splits["train"], pad, steps),
        "tokens_per_sample_fixed_512": tokens_per_sample(fixed, splits["train"], pad, steps),
        "samples_per_s_dynamic": rate["dynamic"],
        "samples_per_s_fixed_512": rate["fixed"],
        "max_loss_difference": gap,
        "loss_curve_dynamic": [round(x, 5) for x in losses["dynamic"]],
        "loss_curve_fixed_512": [round(x, 5) for x in losses["fixed"]],
        "speedup": rate["dynamic"] / rate["fixed"],
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=6, rows=1000, batch_size=16, repeats=2).parse_args()
    figures = run(args.model, args.steps, args.repeats, args.rows, args.batch_size)
    report(figures, f"padding: dynamic / fixed-512 training samples per second = {figures['speedup']:.2f}x (target >= 3x)", args.json)


if __name__ == "__main__":
    main()
