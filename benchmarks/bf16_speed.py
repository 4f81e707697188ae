"""bf16 on CPU: training step time in fp32 ÷ with ``fp16=true`` (bf16-mixed where the CPU supports it),
on the demo model and data, through our training loop.

    python benchmarks/bf16_speed.py [--steps 10] [--repeats 2]
"""

from __future__ import annotations

import statistics

from common import arguments, demo_config, demo_frames, prepare, report
from loops import lightning_run, steady

from training.precision import cpu_supports_bf16


def run(model: str | None = None, steps: int = 10, repeats: int = 2, rows: int = 1000, batch_size: int = 16) -> dict:
    fp32 = demo_config(model, batch_size=batch_size, fp16=False, warmup_steps=2)
    bf16 = fp32.model_copy(update={"fp16": True})
    tokenizer, backbone, splits = prepare(fp32, demo_frames(rows))
    pad = tokenizer.pad_token_id or 0
    for config in (fp32, bf16):  # untimed: oneDNN builds its kernels for each batch shape once
        lightning_run(config, backbone, splits["train"], steps, pad)
    times = {"fp32": [], "bf16": []}
    for rep in range(repeats):
        order = (("fp32", fp32), ("bf16", bf16))
        for name, config in order if rep % 2 == 0 else order[::-1]:
            times[name] += steady(lightning_run(config, backbone, splits["train"], steps, pad).step_times())
    fp32_s, bf16_s = statistics.median(times["fp32"]), statistics.median(times["bf16"])
    return {
        "cpu_bf16_support": cpu_supports_bf16(),
        "batch_size": batch_size,
        "fp32_step_s": fp32_s,
        "fp16_flag_step_s": bf16_s,
        "speedup": fp32_s / bf16_s,
    }


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=10, rows=1000, batch_size=16, repeats=2).parse_args()
    figures = run(args.model, args.steps, args.repeats, args.rows, args.batch_size)
    precision = "bf16-mixed" if figures["cpu_bf16_support"] else "fp32 (no bf16 on this CPU)"
    report(figures, f"bf16: fp32 step time / fp16=true ({precision}) step time = {figures['speedup']:.2f}x", args.json)


if __name__ == "__main__":
    main()
