"""Padding: per-batch dynamic padding ÷ padding every chunk to max_sen_len=512, on the clothing reviews.

Reports the tokens actually computed per sample and the training samples/s of the job's Lightning
step for both, at equal results: both sides train the same model from the same seed on the same
batches, in fp32 and with dropout off, and the loss curves reported are those of the timed runs,
which agree to floating-point noise because padding is masked. Dropout is off because its masks
depend on tensor shapes; with it on, the padded side would also draw 4x the hidden-state masks
and ~15x the attention masks per sample (random masks cost a quarter of a padded step on this
CPU), so the speedup measured this way is, if anything, an understatement. Target: >= 3x faster.

A padded step costs over 10 s here, so by default each side runs once, for 7 steps: the median is
over its 5 steady iterations (the first iteration builds kernels for new shapes and is dropped;
the dynamic side, whose batches each have their own shape, also gets one untimed pass first).
``--repeats N`` runs each side N times, alternating which goes first.

    python benchmarks/padding.py [--steps 7] [--repeats 1]
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


def run(model: str | None = None, steps: int = 7, repeats: int = 1, rows: int = 1000, batch_size: int = 16) -> dict:
    dynamic = demo_config(model, batch_size=batch_size, max_sen_len=512, fp16=False, warmup_steps=2)
    sides = {"dynamic": dynamic, "fixed_512": dynamic.model_copy(update={"fixed_tokenizer_length": True})}
    tokenizer, backbone, splits = prepare(dynamic, demo_frames(rows))
    pad = tokenizer.pad_token_id or 0

    def train(name: str):
        return lightning_run(sides[name], backbone, splits["train"], steps, pad, dropout=False)

    train("dynamic")  # untimed: oneDNN builds its kernels once per batch shape
    times: dict[str, list[float]] = {name: [] for name in sides}
    losses: dict[str, list[list[float]]] = {name: [] for name in sides}
    for rep in range(repeats):
        for name in list(sides) if rep % 2 == 0 else list(sides)[::-1]:
            timer = train(name)
            times[name] += steady(timer.iteration_times(), warmup=1)
            losses[name].append(timer.losses)
    rate = {name: batch_size / statistics.median(t) for name, t in times.items()}
    curves = np.array([curve for name in sides for curve in losses[name]])
    return {
        "steps": steps,
        "runs_per_side": repeats,
        "timed_iterations_per_side": len(times["dynamic"]),
        "tokens_per_sample_dynamic": tokens_per_sample(sides["dynamic"], splits["train"], pad, steps),
        "tokens_per_sample_fixed_512": tokens_per_sample(sides["fixed_512"], splits["train"], pad, steps),
        "samples_per_s_dynamic": rate["dynamic"],
        "samples_per_s_fixed_512": rate["fixed_512"],
        "max_loss_difference": float(np.max(np.abs(curves - curves[0]))),
        "loss_curve_dynamic": [round(x, 5) for x in losses["dynamic"][0]],
        "loss_curve_fixed_512": [round(x, 5) for x in losses["fixed_512"][0]],
        "speedup": rate["dynamic"] / rate["fixed_512"],
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=7, rows=1000, batch_size=16, repeats=1).parse_args()
    figures = run(args.model, args.steps, args.repeats, args.rows, args.batch_size)
    report(figures, f"padding: dynamic / fixed-512 training samples per second = {figures['speedup']:.2f}x (target >= 3x)", args.json)


if __name__ == "__main__":
    main()
