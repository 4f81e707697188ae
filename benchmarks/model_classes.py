"""Every ``model_class`` end to end through ``DRY_RUN=true`` of the entry script, on the demo data.

Issue 5 is done when all seven classes pass this. Each class runs as a user would run it: a fresh
process of ``pytorch_training.py`` on a scratch copy of the demo's inputs, whose
``input/config/hyperparameters.json`` sets ``model_class`` (and keeps whatever else that file
held), so the classes' runs differ in that one key. Prints one line per class (pass/fail, wall seconds, the
dry-run report's parameter count); the last line counts the classes that passed. Exits non-zero
if any failed, after running them all.

    python benchmarks/model_classes.py [--base demo/opt_ml] [--classes lstm,bert] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hyperparams import MODEL_CLASSES  # noqa: E402

PARAMETERS = re.compile(r"^Model (\w+): ([\d,]+) parameters", re.MULTILINE)


def dry_run_class(demo: Path, model_class: str, scratch: Path) -> dict:
    """One dry run of ``model_class`` on a copy of ``demo``'s inputs: passed, seconds, parameters."""
    base = scratch / model_class
    for part in ("input", "code"):
        shutil.copytree(demo / part, base / part)
    job_file = base / "input" / "config" / "hyperparameters.json"
    job = json.loads(job_file.read_text()) if job_file.is_file() else {}
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(json.dumps({**job, "model_class": model_class}))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "DRY_RUN": "true", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "pytorch_training.py")], env=env, capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - started
    match = PARAMETERS.search(result.stdout)
    passed = result.returncode == 0 and match is not None and match.group(1) == model_class
    failure = base / "output" / "failure"
    return {
        "model_class": model_class,
        "passed": passed,
        "seconds": seconds,
        "parameters": int(match.group(2).replace(",", "")) if match else None,
        "error": None if passed else (failure.read_text() if failure.is_file() else result.stderr)[-2000:],
    }


def run(demo: Path, classes: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="model-classes-") as folder:
        return [dry_run_class(demo, model_class, Path(folder)) for model_class in classes]


def render(rows: list[dict]) -> str:
    lines = ["| `model_class` | Dry run | Seconds | Parameters |", "|---|---|---|---|"]
    for row in rows:
        parameters = f"{row['parameters']:,}" if row["parameters"] is not None else "—"
        verdict = "pass" if row["passed"] else "FAIL"
        lines.append(f"| `{row['model_class']}` | {verdict} | {row['seconds']:.1f} | {parameters} |")
    failures = [f"{row['model_class']} failed:\n{row['error']}" for row in rows if not row["passed"]]
    passed = sum(row["passed"] for row in rows)
    load = f"(load average {os.getloadavg()[0]:.1f}; wall seconds grow with it)"
    return "\n".join([*lines, *failures, f"dry runs passed: {passed} of {len(rows)} model classes {load}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=ROOT / "demo" / "opt_ml", help="an /opt/ml-shaped folder (make demo builds one)")
    parser.add_argument("--classes", default=",".join(MODEL_CLASSES), help="comma-separated model classes (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    unknown = set(args.classes.split(",")) - set(MODEL_CLASSES)
    if unknown:
        parser.error(f"unknown model classes {sorted(unknown)}; use some of {list(MODEL_CLASSES)}")
    rows = run(args.base, args.classes.split(","))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(render(rows), flush=True)
    sys.exit(0 if all(row["passed"] for row in rows) else 1)


if __name__ == "__main__":
    main()
