"""Training-loop overhead: samples/s of our Lightning training step ÷ a minimal PyTorch loop.

Same model (the demo's multimodal_bert on MiniLM), same initial weights, same batches in the same
order, same precision (the demo's: bf16-mixed where the CPU supports it) and thread count; the
median iteration time after warm-up is compared. Target: >= 0.95.

    python benchmarks/training_overhead.py [--steps 14] [--repeats 3]
"""

from __future__ import annotations

import statistics

import torch
from common import arguments, demo_config, demo_frames, prepare, report
from loops import lightning_run, raw_run, steady


def run(model: str | None = None, steps: int = 14, repeats: int = 3, rows: int = 2000, batch_size: int = 16) -> dict:
    config = demo_config(model, batch_size=batch_size, warmup_steps=2)
    tokenizer, backbone, splits = prepare(config, demo_frames(rows))
    pad = tokenizer.pad_token_id or 0
    # oneDNN builds a kernel the first time it meets a tensor shape; with per-batch padding every
    # batch has its own shape, so an untimed pass over the same batches comes first, and the order
    # of the two sides alternates so neither always runs on a colder process.
    raw_run(config, backbone, splits["train"], steps, pad)
    ours, raw = [], []
    for rep in range(repeats):
        sides = [
            ("ours", lambda: lightning_run(config, backbone, splits["train"], steps, pad).iteration_times()),
            ("raw", lambda: raw_run(config, backbone, splits["train"], steps, pad)[0]),
        ]
        for name, side in sides if rep % 2 == 0 else sides[::-1]:
            (ours if name == "ours" else raw).extend(steady(side()))
    ours_rate = batch_size / statistics.median(ours)
    raw_rate = batch_size / statistics.median(raw)
    return {
        "threads": torch.get_num_threads(),
        "precision": "bf16-mixed" if config.fp16 else "32-true",
        "batch_size": batch_size,
        "lightning_samples_per_s": ours_rate,
        "raw_loop_samples_per_s": raw_rate,
        "ratio": ours_rate / raw_rate,
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=14, rows=2000, batch_size=16).parse_args()
    figures = run(args.model, args.steps, args.repeats, args.rows, args.batch_size)
    report(
        figures,
        f"training loop overhead: lightning / raw samples per second = {figures['ratio']:.3f} (target >= 0.95)",
        args.json,
    )


if __name__ == "__main__":
    main()
