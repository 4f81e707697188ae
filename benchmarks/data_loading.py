"""Data loading never starves the model: time spent between steps (fetching the next batch plus the
loop's own bookkeeping) ÷ time spent in the steps, during our real training loop on the demo model.

Also reports the bare cost of building one batch (the collate) and the same fraction with one
background worker, to show whether workers would help on this machine. Target: <= 5%.

    python benchmarks/data_loading.py [--steps 14] [--repeats 2]
"""

from __future__ import annotations

import statistics
import time

from common import arguments, demo_config, demo_frames, prepare, report
from loops import lightning_run, steady


def wait_fraction(timer) -> float:
    return sum(steady(timer.waits())) / sum(steady(timer.step_times()))


def collate_ms(config, split, pad_id: int, batches: int = 50) -> float:
    from loops import train_loader

    loader = train_loader(config, split, pad_id)
    rows = [r for r, _ in zip(loader.batch_sampler, range(batches))]
    started = time.perf_counter()
    for r in rows:
        loader.collate_fn(r)
    return 1000 * (time.perf_counter() - started) / len(rows)


def run(model: str | None = None, steps: int = 14, repeats: int = 2, rows: int = 2000, batch_size: int = 32) -> dict:
    config = demo_config(model, batch_size=batch_size, warmup_steps=2)
    tokenizer, backbone, splits = prepare(config, demo_frames(rows))
    pad = tokenizer.pad_token_id or 0
    # untimed: oneDNN builds a kernel per batch shape on first use, which would pad the steps and
    # so shrink the measured wait fraction
    lightning_run(config, backbone, splits["train"], steps, pad)
    in_process, worker, steps_s = [], [], []
    for _ in range(repeats):
        timer = lightning_run(config, backbone, splits["train"], steps, pad)
        in_process.append(wait_fraction(timer))
        steps_s += steady(timer.step_times())
        worker.append(wait_fraction(lightning_run(config, backbone, splits["train"], steps, pad, workers=1)))
    return {
        "batch_size": batch_size,
        "collate_ms_per_batch": collate_ms(config, splits["train"], pad),
        "step_ms": 1000 * statistics.median(steps_s),
        "wait_fraction_in_process": statistics.median(in_process),
        "wait_fraction_one_worker": statistics.median(worker),
        "wait_fraction": statistics.median(in_process),
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=14, rows=2000, batch_size=32, repeats=2).parse_args()
    figures = run(args.model, args.steps, args.repeats, args.rows, args.batch_size)
    report(figures, f"data loading: wait / step time = {100 * figures['wait_fraction']:.2f}% (target <= 5%)", args.json)


if __name__ == "__main__":
    main()
