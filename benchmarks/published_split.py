"""The published clothing-review split: test F1, PR-AUC, AUROC and wall time per model class and variant.

Every run is the whole job (``pytorch_training.py`` in a fresh process, as `make demo` runs it) on
the published train/val/test split (``demo/clothing_benchmark_split.json``, every training
row), with the demo's hyperparameters (``demo/hyperparameters.json``: pretrained MiniLM, one
epoch, bf16) and the overrides a variant names. Reported beside the published Multimodal-Toolkit
figures on the same split (BERT-base: F1 0.957-0.968, PR-AUC 0.992-0.995).

    python benchmarks/published_split.py                                  # multimodal_bert, gate_fusion, bert
    python benchmarks/published_split.py --variant all-classes            # the seven classes
    python benchmarks/published_split.py --variant "two_epochs:model_class=multimodal_bert,max_epochs=2"
    python benchmarks/published_split.py --variant "title:model_class=multimodal_bert,title=true"

A variant is ``name:key=value,...``; values are JSON (bare strings allowed). ``title=true`` adds
the review's Title as a second text column (a trimodal job: ``primary_text_name`` Review Text,
``secondary_text_name`` Title). ``--parallel N`` runs N jobs at a time (on one large GPU; the wall
times then share it); ``--inputs`` takes an already prepared /opt/ml folder (``demo/prepare_clothing.py
--split benchmark``) instead of preparing one; ``--train-rows``/``--eval-rows`` cap the rows (a smoke run).
F1 is at the job's threshold 0.5 and, as ``f1_val_threshold``, at the F1-optimal threshold chosen on
val (``metrics.json``'s ``best_f1_threshold``). On 2 CPU cores one epoch of ``multimodal_bert``
takes about 15 minutes; RESULTS.md has the figures and the machine.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT

from hyperparams.model_classes import MODEL_CLASSES

PUBLISHED = "Multimodal-Toolkit, BERT-base on this split: F1 0.957-0.968, PR-AUC 0.992-0.995"
DEFAULT_VARIANTS = ["multimodal_bert", "multimodal_gate_fusion", "bert"]
TITLE = "Title"


def parse_variant(text: str) -> tuple[str, dict]:
    """``name:key=value,...`` (or a bare model class) -> (name, overrides)."""
    name, _, settings = text.partition(":")
    overrides: dict = {} if settings else {"model_class": name}
    for item in filter(None, re.split(r",(?![^\[]*\])", settings)):  # commas inside [...] stay
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant {text!r}: write name:key=value,key=value")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


def hyperparameters(inputs: Path, model: str | None, overrides: dict) -> dict:
    settings = json.loads((inputs / "code" / "hyperparams" / "hyperparameters.json").read_text())
    if model:
        settings["tokenizer"] = model
    overrides = dict(overrides)
    if overrides.pop("title", False):
        text = settings.pop("text_name")
        settings.update(primary_text_name=text, secondary_text_name=TITLE)
        settings["full_field_list"] = [*settings["full_field_list"], TITLE]
    return {**settings, **overrides}


def run_variant(inputs: Path, scratch: Path, name: str, settings: dict) -> dict:
    base = scratch / name
    shutil.copytree(inputs / "input", base / "input")
    (base / "code" / "hyperparams").mkdir(parents=True)
    (base / "code" / "hyperparams" / "hyperparameters.json").write_text(json.dumps(settings, indent=2))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "pytorch_training.py")], env=env, cwd=ROOT,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    row = {"variant": name, "model_class": settings.get("model_class"), "wall_s": round(seconds, 1)}
    metrics_file = base / "output" / "data" / "metrics.json"
    if result.returncode != 0 or not metrics_file.is_file():
        failure = base / "output" / "failure"
        row["error"] = (failure.read_text() if failure.is_file() else result.stderr)[-1500:]
        return row
    metrics = json.loads(metrics_file.read_text())
    test, tuned = metrics["test"], metrics.get("best_f1_threshold", {})
    row.update(f1=test["f1_score"], pr_auc=test["average_precision"], auroc=test["auroc"],
               f1_val_threshold=tuned.get("test", {}).get("f1_score"), threshold=tuned.get("threshold"))
    return row


def render(rows: list[dict]) -> str:
    lines = ["| Variant | Test F1 | F1 at val's threshold | PR-AUC | AUROC | Wall s |", "|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['variant']} | FAILED | | | | {row['wall_s']:.0f} |")
            continue
        tuned = f"{row['f1_val_threshold']:.4f} ({row['threshold']:.2f})" if row["f1_val_threshold"] else "—"
        lines.append(f"| {row['variant']} | {row['f1']:.4f} | {tuned} | {row['pr_auc']:.4f} | {row['auroc']:.4f} "
                     f"| {row['wall_s']:.0f} |")
    errors = [f"{row['variant']} failed:\n{row['error']}" for row in rows if "error" in row]
    return "\n".join([*lines, f"Published: {PUBLISHED}", *errors])


def prepared_inputs(folder: Path, train_rows: int | None, eval_rows: int | None) -> Path:
    from demo.prepare_clothing import build

    build(folder, "benchmark", train_rows, eval_rows, seed=42)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", default=[], help="name:key=value,... or a model class; "
                        "'all-classes' for the seven (default: multimodal_bert, multimodal_gate_fusion, bert)")
    parser.add_argument("--model", default=None, help="tokenizer/BERT folder (default: the installed MiniLM)")
    parser.add_argument("--inputs", type=Path, default=None, help="an /opt/ml folder already prepared")
    parser.add_argument("--train-rows", type=int, default=None, help="cap the training rows (smoke runs)")
    parser.add_argument("--eval-rows", type=int, default=None, help="cap the val and test rows (smoke runs)")
    parser.add_argument("--parallel", type=int, default=1, help="jobs at a time")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (after each run)")
    args = parser.parse_args()
    requested = args.variant or DEFAULT_VARIANTS
    requested = [v for item in requested for v in (MODEL_CLASSES if item == "all-classes" else [item])]
    variants = [parse_variant(item) for item in requested]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="published-split-") as folder:
        scratch = Path(folder)
        inputs = args.inputs or prepared_inputs(scratch / "inputs", args.train_rows, args.eval_rows)

        def one(variant: tuple[str, dict]) -> dict:
            name, overrides = variant
            row = run_variant(inputs, scratch, name, hyperparameters(inputs, args.model, overrides))
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.json:
                args.json.write_text(json.dumps({"parallel": args.parallel, "rows": rows}, indent=1))
            return row

        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            list(pool.map(one, variants))
    order = {name: i for i, (name, _) in enumerate(variants)}
    print(render(sorted(rows, key=lambda r: order[r["variant"]])), flush=True)


if __name__ == "__main__":
    main()
