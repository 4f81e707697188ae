"""Length grouping: the demo job in length-grouped batches vs random batches, side by side.

Both sides run the whole job (``pytorch_training.py``, as `make demo` does) on the same demo data,
with the demo's hyperparameters and seed; only ``group_by_length`` differs. Each side runs in a
fresh process, with a callback added to the job's own Trainer, and reports:

- padded tokens per sample: token positions the model is given (chunks x padded length), beside
  the real tokens per sample;
- training samples/s: rows trained / seconds inside the training steps (forward, backward,
  optimizer step; validation excluded);
- the wall time of the training phase: the job's train step, from building the loaders to the
  end of the last validation and checkpoint;
- test AUROC and F1 from the job's own ``metrics.json``.

Targets: grouped / random training samples/s >= 1.6; test AUROC and F1 within 0.005 of random.

The default is the demo's own size (6,000 training rows, 1,500 each for val and test, one epoch),
which makes this the longest benchmark of the suite (about 13 minutes on 2 CPU cores): the speed
alone would show on a sample, but the quality target compares two trainings to 0.005, and on a
sample any two trainings differ by more than that (with 1,500 training rows test AUROC moves by
about 0.02 between samples; RESULTS.md). ``--train-rows``/``--eval-rows`` run it smaller, and
``--split benchmark`` on the published clothing split (hours on a CPU).

    python benchmarks/length_grouping.py [--train-rows 6000] [--eval-rows 1500] [--split stratified]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
from common import arguments, report
from job_runs import demo_inputs, job_folder, run_job

SIDES = {"random": False, "grouped": True}  # name -> group_by_length


def run(
    model: str | None = None,
    train_rows: int = 6000,
    eval_rows: int = 1500,
    split: str = "stratified",
    repeats: int = 1,
) -> dict:
    """Each side ``repeats`` times (alternating which goes first) on one copy of the data."""
    with tempfile.TemporaryDirectory(prefix="length-grouping-") as folder:
        inputs = demo_inputs(Path(folder) / "inputs", train_rows, eval_rows, split)
        runs: dict[str, list[dict]] = {name: [] for name in SIDES}
        for repeat in range(repeats):
            for name in list(SIDES) if repeat % 2 == 0 else list(SIDES)[::-1]:
                base = job_folder(inputs, Path(folder) / f"{name}-{repeat}", model, group_by_length=SIDES[name])
                runs[name].append(in_fresh_process(base))
    sides = {name: median_side(measured) for name, measured in runs.items()}
    grouped, plain = sides["grouped"], sides["random"]
    return {
        "train_rows": train_rows,
        "eval_rows": eval_rows,
        "split": split,
        "runs_per_side": repeats,
        **sides,
        "test_auroc_difference": grouped["test_auroc"] - plain["test_auroc"],
        "test_f1_difference": grouped["test_f1"] - plain["test_f1"],
        "padded_tokens_ratio": plain["padded_tokens_per_sample"] / grouped["padded_tokens_per_sample"],
        "speedup": grouped["samples_per_s"] / plain["samples_per_s"],
    }


def in_fresh_process(base: Path) -> dict:
    out = base / "side.json"
    result = subprocess.run(
        [sys.executable, __file__, "--side", str(base), "--json", str(out)], capture_output=True, text=True
    )
    if result.returncode != 0 or not out.exists():
        raise RuntimeError(f"the job in {base} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return json.loads(out.read_text())


def median_side(measured: list[dict]) -> dict:
    """The run of median speed (quality is the same in every run: same seed, same CPU)."""
    return sorted(measured, key=lambda m: m["samples_per_s"])[len(measured) // 2]


class TrainingMeter(pl.Callback):
    """Rows, token positions and seconds inside the training steps of one run."""

    def __init__(self):
        self.rows = self.padded = self.real = 0
        self.step_seconds = 0.0
        self._started = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        from hyperparams.rules import LABELS_KEY
        from processing.dataset import TextKeys

        keys = TextKeys.of(pl_module.config)
        for ids, mask in (keys.for_role(role) for role in pl_module.config.text_fields):
            self.padded += batch[ids].numel()
            self.real += int(batch[mask].sum())
        self.rows += len(batch[LABELS_KEY])
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.step_seconds += time.perf_counter() - self._started


def one_side(base: Path) -> dict:
    """In a fresh process: the job on ``base``, measured by a TrainingMeter on its Trainer."""
    meter = TrainingMeter()
    started = time.perf_counter()
    training_phase = run_job(base, meter)
    test = json.loads((base / "output" / "data" / "metrics.json").read_text())["test"]
    return {
        "padded_tokens_per_sample": meter.padded / meter.rows,
        "real_tokens_per_sample": meter.real / meter.rows,
        "samples_per_s": meter.rows / meter.step_seconds,
        "training_phase_s": training_phase,
        "job_s": time.perf_counter() - started,
        "test_auroc": test["auroc"],
        "test_f1": test["f1_score"],
    }


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], train_rows=6000, eval_rows=1500, split="stratified", repeats=1)
    parser.add_argument("--side", type=Path, default=None, help=argparse.SUPPRESS)  # one side's job, in-process
    args = parser.parse_args()
    if args.side is not None:
        args.json.write_text(json.dumps(one_side(args.side)))
        return
    figures = run(args.model, args.train_rows, args.eval_rows, args.split, args.repeats)
    report(figures, headline(figures), args.json)


def headline(f: dict) -> str:
    grouped, plain = f["grouped"], f["random"]
    return (
        f"length grouping: grouped / random training samples/s = {f['speedup']:.2f}x (target >= 1.6x); "
        f"padded tokens per sample {grouped['padded_tokens_per_sample']:.0f} vs "
        f"{plain['padded_tokens_per_sample']:.0f}; test AUROC {grouped['test_auroc']:.4f} vs "
        f"{plain['test_auroc']:.4f}, F1 {grouped['test_f1']:.4f} vs {plain['test_f1']:.4f} (target: within 0.005)"
    )


if __name__ == "__main__":
    main()
