"""Where a demo training step's time goes: the job's own Trainer, profiled over a few steps at batch 32.

The job runs in this process on a sample of the demo data with the demo's hyperparameters (batch
32, bf16 where the CPU has it), validating only at the end of the epoch. A callback added to its
Trainer profiles ``--steps`` whole iterations after ``--warmup`` ones, from the start of a batch to
the start of the batch after the last: fetching and collating the next batch, forward, loss,
backward, gradient clipping, the optimizer step, the schedule, Lightning's logging and every
callback's per-step hooks. Two views, each over its own ``--steps`` iterations:

- parts (cProfile; the cumulative time of the function that does each part, per step);
- operators (``torch.profiler``; self CPU time per step), the most expensive first, and the share
  of the matrix products (``mm``/``addmm``/``bmm``/``linear`` and attention kernels).

A helper for the profile in benchmarks/RESULTS.md, run by hand (about two minutes), not one of
the `make bench` benchmarks.

    python benchmarks/step_profile.py [--steps 8] [--warmup 3] [--group-by-length true|false]
"""

from __future__ import annotations

import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from common import arguments, report
from job_runs import demo_inputs, job_folder, run_job

# part -> (file the function is in, function name); every part's time is its function's cumulative
# time, and none of these functions runs inside another of them
PARTS = {
    "next batch (fetch and collate)": ("torch/utils/data/dataloader.py", "__next__"),
    "forward and loss (training_step)": ("training/module.py", "training_step"),
    "backward": ("torch/autograd/__init__.py", "backward"),
    "gradient clipping": ("torch/nn/utils/clip_grad.py", "clip_grad_norm_"),
    "AdamW update": ("torch/optim/adam.py", "adam"),
    "zero_grad": ("torch/optim/optimizer.py", "zero_grad"),
    "lr schedule": ("torch/optim/lr_scheduler.py", "step"),
    "callbacks' per-step hooks": ("lightning/pytorch/trainer/call.py", "_call_callback_hooks"),
    "Lightning's metric logging": ("logger_connector/logger_connector.py", "update_train_step_metrics"),
}
INSIDE = {  # parts of the parts above, shown for their share
    "collate (BatchCollator)": ("processing/dataset.py", "__call__"),
    "self.log in training_step": ("lightning/pytorch/core/module.py", "log"),
}
MATMUL = ("mm", "linear", "matmul", "scaled_dot_product", "mkldnn_convolution")


class ProfileSteps(pl.Callback):
    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps = warmup, steps
        self.cprofile = cProfile.Profile()
        self.torch_profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self.seconds: dict[str, float] = {}
        self.tokens: dict[str, int] = {"cprofile": 0, "torch": 0}
        self._window_started = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        first, second, end = self.warmup, self.warmup + self.steps, self.warmup + 2 * self.steps
        if batch_idx == first:
            self._window_started = time.perf_counter()
            self.cprofile.enable()
        elif batch_idx == second:
            self.cprofile.disable()
            self.seconds["cprofile"] = time.perf_counter() - self._window_started
            self._window_started = time.perf_counter()
            self.torch_profile.start()
        elif batch_idx == end:
            self.torch_profile.stop()
            self.seconds["torch"] = time.perf_counter() - self._window_started
            trainer.should_stop = True
        if first <= batch_idx < end:
            window = "cprofile" if batch_idx < second else "torch"
            self.tokens[window] += sum(v.numel() for k, v in batch.items() if k.endswith("input_ids"))


def run(model: str | None = None, steps: int = 8, warmup: int = 3, group_by_length: str = "true") -> dict:
    profiler = ProfileSteps(warmup, steps)
    with tempfile.TemporaryDirectory(prefix="step-profile-") as folder:
        inputs = demo_inputs(Path(folder) / "inputs", train_rows=32 * (warmup + 2 * steps + 2), eval_rows=64)
        base = job_folder(
            inputs, Path(folder) / "job", model, val_check_interval=1.0, group_by_length=group_by_length == "true"
        )
        run_job(base, profiler)
    step = profiler.seconds["cprofile"] / steps
    stats = pstats.Stats(profiler.cprofile).stats
    parts = {name: cumulative(stats, *where) / steps for name, where in PARTS.items()}
    parts["rest of the loop"] = step - sum(parts.values())
    inside = {name: cumulative(stats, *where) / steps for name, where in INSIDE.items()}
    operators = profiler.torch_profile.key_averages()
    op_step = profiler.seconds["torch"] / steps
    by_self = sorted(operators, key=lambda e: e.self_cpu_time_total, reverse=True)
    matmul = sum(e.self_cpu_time_total for e in operators if any(m in e.key for m in MATMUL)) / 1e6 / steps
    return {
        "steps": steps,
        "group_by_length": group_by_length,
        "padded_tokens_per_step": profiler.tokens["cprofile"] / steps,
        "step_s_under_cprofile": step,
        "parts_share": {name: seconds / step for name, seconds in parts.items()},
        "inside_share": {name: seconds / step for name, seconds in inside.items()},
        "step_s_under_torch_profiler": op_step,
        "matmul_share": matmul / op_step,
        "top_operators_share": {e.key: e.self_cpu_time_total / 1e6 / steps / op_step for e in by_self[:10]},
    }


def cumulative(stats: dict, path: str, name: str) -> float:
    """Cumulative seconds of every function ``name`` in a file ending with ``path``."""
    return sum(row[3] for (file, _, function), row in stats.items() if function == name and file.endswith(path))


def main() -> None:
    args = arguments(__doc__.splitlines()[0], steps=8, warmup=3, group_by_length="true").parse_args()
    figures = run(args.model, args.steps, args.warmup, args.group_by_length)
    top = max(
        ((name, share) for name, share in figures["parts_share"].items() if name != "forward and loss (training_step)"),
        key=lambda item: item[1],
    )
    report(
        figures,
        f"step profile: {figures['step_s_under_cprofile']:.2f} s per step; matrix products "
        f"{figures['matmul_share']:.0%} of the operators' time; largest part outside the forward pass: "
        f"{top[0]} {top[1]:.0%}",
        args.json,
    )


if __name__ == "__main__":
    main()
