"""Every ``model_class`` end to end through the entry script on the demo data: a dry run, or a short real training.

Issue 5 is done when all seven classes pass the dry run. Each class runs as a user would run it: a fresh
process of ``pytorch_training.py`` on a scratch copy of the demo's inputs, whose
``input/config/hyperparameters.json`` sets ``model_class`` (and keeps whatever else that file
held, plus any ``--set`` overrides), so the classes' runs differ in that one key. Prints one line
per class (pass/fail, wall seconds, the dry-run report's parameter count, and with ``--train`` the
test AUROC the job printed); the last line counts the classes that passed. Exits non-zero if any
failed, after running them all.

    python benchmarks/model_classes.py [--base demo/opt_ml] [--classes lstm,bert] [--json out.json]
    # the AUROC column of the model table: a short training of every class on a small stratified sample
    python demo/prepare_clothing.py --out /tmp/auroc_demo --train-rows 1500 --eval-rows 500
    python benchmarks/model_classes.py --base /tmp/auroc_demo --train --set max_sen_len=128
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

from hyperparams.model_classes import MODEL_CLASSES  # noqa: E402

PARAMETERS = re.compile(r"^Model (\w+): ([\d,]+) parameters", re.MULTILINE)  # the dry-run report's line
TRAINED = re.compile(r"Model (\w+): ([\d,]+) trainable parameters")  # the log line of a real run
TEST_AUROC = re.compile(r"^test/auroc=([0-9.]+)$", re.MULTILINE)


def run_class(demo: Path, model_class: str, scratch: Path, train: bool = False, overrides: dict | None = None) -> dict:
    """One run of ``model_class`` on a copy of ``demo``'s inputs (a dry run unless ``train``):
    passed, seconds, parameters and, after training, the test AUROC."""
    base = scratch / model_class
    for part in ("input", "code"):
        shutil.copytree(demo / part, base / part)
    job_file = base / "input" / "config" / "hyperparameters.json"
    job = json.loads(job_file.read_text()) if job_file.is_file() else {}
    job_file.parent.mkdir(parents=True, exist_ok=True)
    job_file.write_text(json.dumps({**job, **(overrides or {}), "model_class": model_class}))
    dry_run = "false" if train else "true"
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "DRY_RUN": dry_run, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "pytorch_training.py")], env=env, capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - started
    match = (TRAINED.search(result.stderr + result.stdout) if train else PARAMETERS.search(result.stdout))
    auroc = TEST_AUROC.search(result.stdout) if train else None
    passed = result.returncode == 0 and match is not None and match.group(1) == model_class
    passed = passed and (auroc is not None or not train)
    failure = base / "output" / "failure"
    return {
        "model_class": model_class,
        "passed": passed,
        "seconds": seconds,
        "parameters": int(match.group(2).replace(",", "")) if match else None,
        "test_auroc": float(auroc.group(1)) if auroc else None,
        "error": None if passed else (failure.read_text() if failure.is_file() else result.stderr)[-2000:],
    }


def run(demo: Path, classes: list[str], train: bool = False, overrides: dict | None = None) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="model-classes-") as folder:
        return [run_class(demo, model_class, Path(folder), train, overrides) for model_class in classes]


def render(rows: list[dict]) -> str:
    trained = any(row.get("test_auroc") is not None for row in rows)
    lines = [f"| `model_class` | {'Run' if trained else 'Dry run'} | Seconds | Parameters |{' Test AUROC |' * trained}"]
    lines.append("|---|---|---|---|" + "---|" * trained)
    for row in rows:
        parameters = f"{row['parameters']:,}" if row["parameters"] is not None else "—"
        verdict = "pass" if row["passed"] else "FAIL"
        auroc = (f" {row['test_auroc']:.3f} |" if row.get("test_auroc") is not None else " — |") if trained else ""
        lines.append(f"| `{row['model_class']}` | {verdict} | {row['seconds']:.1f} | {parameters} |{auroc}")
    failures = [f"{row['model_class']} failed:\n{row['error']}" for row in rows if not row["passed"]]
    passed = sum(row["passed"] for row in rows)
    load = f"(load average {os.getloadavg()[0]:.1f}; wall seconds grow with it)"
    kind = "runs" if trained else "dry runs"
    return "\n".join([*lines, *failures, f"{kind} passed: {passed} of {len(rows)} model classes {load}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base", type=Path, default=ROOT / "demo" / "opt_ml", help="an /opt/ml-shaped folder (make demo builds one)"
    )
    parser.add_argument("--classes", default=",".join(MODEL_CLASSES), help="comma-separated model classes (all)")
    parser.add_argument("--train", action="store_true", help="train for real (the job's test AUROC), not a dry run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a hyperparameter for every run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    overrides = dict(_override(item, parser) for item in args.set)
    unknown = set(args.classes.split(",")) - set(MODEL_CLASSES)
    if unknown:
        parser.error(f"unknown model classes {sorted(unknown)}; use some of {list(MODEL_CLASSES)}")
    rows = run(args.base, args.classes.split(","), args.train, overrides)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(render(rows), flush=True)
    sys.exit(0 if all(row["passed"] for row in rows) else 1)


def _override(item: str, parser: argparse.ArgumentParser) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep:
        parser.error(f"--set {item!r}: write KEY=VALUE, e.g. max_sen_len=128")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string, e.g. optimizer=SGD


if __name__ == "__main__":
    main()
