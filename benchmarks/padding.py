"""Padding: per-batch dynamic padding ÷ padding every chunk to max_sen_len=512, on the clothing reviews.

Reports the tokens actually computed per sample and the training samples/s of the job's Lightning
step for both, in fp32, from the same seed on the same batches. The headline is timed as the job
trains, dropout included. Equal results are shown by one more run per side with dropout off (its
masks depend on tensor shapes, so with it on the two sides draw different ones): their loss curves
must agree to floating-point noise, padding being masked. Those runs are timed too: without
dropout, PyTorch's fused CPU attention replaces the one that materialises the [length x length]
probabilities, which makes a padded step ~3.7x cheaper, so ``speedup_without_dropout`` is reported
beside the headline. Target: >= 3x faster.

A padded step with dropout costs ~15 s here, so by default each side runs once for 5 steps; the
median is over its 3 steady iterations (the first iteration builds kernels for new shapes and is
dropped; the dynamic side, whose batches each have their own shape, also gets an untimed pass
first). ``--repeats N`` times each side N times, alternating which goes first.

    python benchmarks/padding.py [--steps 5] [--repeats 1]
"""

from __future__ import annotations

import statistics

import numpy as np
from common import arguments, demo_config, demo_frames, prepare, report
from loops import lightning_run, steady, train_loader


def tokens_per_sample(config, split, pad_id: int, batches: int) -> float:
    """Tokens per sample the collate hands to the model (chunks x padded length) over the first batches."""
    loader = train_loader(config, split, pad_id)
    tokens = samples = 0
    for rows, _ in zip(loader.batch_sampler, range(batches)):
        ids = next(v for v in loader.collate_fn(rows).values() if v.dim() == 3)
        tokens += ids.numel()
        samples += ids.shape[0]
    return tokens / samples


def samples_per_s(iteration_times: list[float], batch_size: int) -> float:
    return batch_size / statistics.median(iteration_times)


def run(model: str | None = None, steps: int = 5, repeats: int = 1, rows: int = 1000, batch_size: int = 16) -> dict:
    # random batches: padding alone is measured here, batches grouped by length in length_grouping.py
    dynamic = demo_config(
        model, batch_size=batch_size, max_sen_len=512, fp16=False, warmup_steps=2, group_by_length=False
    )
    sides = {"dynamic": dynamic, "fixed_512": dynamic.model_copy(update={"fixed_tokenizer_length": True})}
    tokenizer, backbone, splits = prepare(dynamic, demo_frames(rows))
    pad = tokenizer.pad_token_id or 0

    def train(name: str, dropout: bool = True):
        return lightning_run(sides[name], backbone, splits["train"], steps, pad, dropout=dropout)

    train("dynamic")  # untimed: oneDNN builds its kernels once per batch shape
    times: dict[str, list[float]] = {name: [] for name in sides}
    for rep in range(repeats):
        for name in list(sides) if rep % 2 == 0 else list(sides)[::-1]:
            times[name] += steady(train(name).iteration_times(), warmup=1)
    rate = {name: samples_per_s(t, batch_size) for name, t in times.items()}
    plain = {name: train(name, dropout=False) for name in sides}
    plain_rate = {name: samples_per_s(steady(t.iteration_times(), warmup=1), batch_size) for name, t in plain.items()}
    curves = {name: t.losses for name, t in plain.items()}
    return {
        "steps": steps,
        "runs_per_side": repeats,
        "timed_iterations_per_side": len(times["dynamic"]),
        "tokens_per_sample_dynamic": tokens_per_sample(sides["dynamic"], splits["train"], pad, steps),
        "tokens_per_sample_fixed_512": tokens_per_sample(sides["fixed_512"], splits["train"], pad, steps),
        "samples_per_s_dynamic": rate["dynamic"],
        "samples_per_s_fixed_512": rate["fixed_512"],
        "samples_per_s_dynamic_without_dropout": plain_rate["dynamic"],
        "samples_per_s_fixed_512_without_dropout": plain_rate["fixed_512"],
        "speedup_without_dropout": plain_rate["dynamic"] / plain_rate["fixed_512"],
        "max_loss_difference": float(np.max(np.abs(np.array(curves["dynamic"]) - np.array(curves["fixed_512"])))),
        "loss_curve_dynamic": [round(x, 5) for x in curves["dynamic"]],
        "loss_curve_fixed_512": [round(x, 5) for x in curves["fixed_512"]],
        "speedup": rate["dynamic"] / rate["fixed_512"],
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=5, rows=1000, batch_size=16, repeats=1).parse_args()
    figures = run(args.model, args.steps, args.repeats, args.rows, args.batch_size)
    report(
        figures,
        f"padding: dynamic / fixed-512 training samples per second = {figures['speedup']:.2f}x (target >= 3x)",
        args.json,
    )


if __name__ == "__main__":
    main()
