"""How long ``DRY_RUN=true`` takes on the demo data, against its 60-second budget.

Runs the entry script as a user would (a fresh process each time, imports included) on a copy of
the demo's inputs, ``--repeat`` times, and prints the median wall time and CPU time. The last line
is the headline: median seconds and their ratio to the budget (below 1 is within budget). Wall
time on a shared machine depends on its load, so the CPU time is printed beside it.

A helper for the dry-run figure in benchmarks/RESULTS.md (the 60-second budget of the dry run), not one of
the `make bench` benchmarks: it needs the inputs `make demo` prepares and takes ~3 minutes, and
the dry run itself is tested by tests/test_dry_run.py.

    python benchmarks/dry_run.py [--base demo/opt_ml] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 60.0


def time_dry_run(base: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one dry run of pytorch_training.py on ``base``."""
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "DRY_RUN": "true", "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "pytorch_training.py")], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"the dry run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(demo: Path, repeat: int) -> dict:
    if not (demo / "input").is_dir():
        raise SystemExit(f"{demo} holds no input/ folder; run `make demo` first, or give --base")
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        for part in ("input", "code"):
            shutil.copytree(demo / part, base / part)
        times = [time_dry_run(base) for _ in range(repeat)]
    walls, cpus = [w for w, _ in times], [c for _, c in times]
    return {
        "wall_seconds": walls,
        "cpu_seconds": cpus,
        "median_wall_seconds": statistics.median(walls),
        "median_cpu_seconds": statistics.median(cpus),
        "budget_seconds": BUDGET_SECONDS,
        "ratio_to_budget": statistics.median(walls) / BUDGET_SECONDS,
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", type=Path, default=ROOT / "demo" / "opt_ml", help="an /opt/ml-shaped folder (make demo builds one)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = run(args.base, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    print("wall seconds:", ", ".join(f"{w:.1f}" for w in figures["wall_seconds"]))
    print(
        "CPU seconds: ",
        ", ".join(f"{c:.1f}" for c in figures["cpu_seconds"]),
        f"(load average {figures['load_average']:.1f})",
    )
    print(
        f"dry run on the demo data: median {figures['median_wall_seconds']:.1f} s = "
        f"{figures['ratio_to_budget']:.2f} x the {BUDGET_SECONDS:.0f} s budget"
    )


if __name__ == "__main__":
    main()
