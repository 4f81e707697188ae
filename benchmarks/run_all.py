"""Run every benchmark side by side and write benchmarks/RESULTS.md (`make bench`).

Each benchmark runs in its own process (so memory and thread pools start clean) and saves its
figures as JSON; this script collects them with the machine, library versions and date, and keeps
the raw figures in benchmarks/results.json beside RESULTS.md. ``--only`` re-runs some benchmarks
and keeps the other results from results.json, so one figure disturbed by a busy machine can be
measured again without the whole suite (each row shows the load average its run started at).
Commit both files together: RESULTS.md is what people read, results.json what the next ``--only``
starts from.

The GPU plan (benchmarks/gpu_mfu.py) is written into RESULTS.md, not run: there is no GPU here.
benchmarks/dry_run.py is not part of the suite: it times the dry run for RESULTS.md.
Everything in RESULTS.md from the ``HAND_WRITTEN`` line on (figures measured by hand, with their
dates) is kept as it is when the file is written again.

    python benchmarks/run_all.py [--only padding,onnx_latency]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (script, what it shows, target)
BENCHMARKS = {
    "text_chain": (
        "text_chain.py",
        "Text chain throughput vs the bare tokenizer and a per-row script",
        ">= 0.7 and >= 3x",
    ),
    "training_overhead": ("training_overhead.py", "Lightning training step vs a minimal PyTorch loop", ">= 0.95"),
    "padding": ("padding.py", "Dynamic per-batch padding vs padding to 512", ">= 3x"),
    "data_loading": ("data_loading.py", "Time waiting for data vs step time", "<= 5%"),
    "evaluation_speed": ("evaluation_speed.py", "Validation seconds per 1,000 rows", "report"),
    "onnx_latency": ("onnx_latency.py", "ONNX Runtime vs PyTorch eager latency", "ONNX faster where possible"),
    "scaling": ("scaling.py", "Preprocessing + one epoch at 1k/10k/100k rows", "exponent <= 1"),
    "bf16_speed": ("bf16_speed.py", "bf16-mixed vs fp32 training step on CPU", "report"),
    "length_grouping": (
        "length_grouping.py",
        "Length-grouped vs random training batches, on the demo job",
        ">= 1.6x, test AUROC and F1 within 0.005",
    ),
    "serving": (
        "serving_speed.py",
        "Endpoint req/s, rows/s and latency at batch 1 and 64, ONNX vs torch; batch scoring's peak memory",
        "report; peak at 1M rows ~ at 100k",
    ),
}
# the text chain's peak-memory figure (100,000 dialogues) is part of the suite
EXTRA_ARGS = {"text_chain": ["--memory-rows", "100000"]}
VERSIONS = ("torch", "lightning", "transformers", "tokenizers", "onnxruntime", "numpy", "pandas", "emoji")


def machine() -> dict:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


def run_one(name: str, script: str, folder: Path) -> dict:
    out = folder / f"{name}.json"
    load = os.getloadavg()[0]
    started = time.perf_counter()
    command = [sys.executable, str(HERE / script), "--json", str(out), *EXTRA_ARGS.get(name, [])]
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or not out.exists():
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        return {"error": " / ".join(tail), "seconds": elapsed, "load_average": load}
    data = json.loads(out.read_text())
    data.update(seconds=elapsed, load_average=load)
    return data


def results_markdown(results: dict, info: dict) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {info['date']} by `make bench` (`benchmarks/run_all.py`); every ratio is measured side by side in",
        "one run on the same data, medians of several repetitions. Re-run with `make bench`.",
        "",
        f"- Machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, {info['machine']['memory_gib']} GiB,"
        f" Python {info['machine']['python']}, {info['machine']['os']}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "| Benchmark | Headline | Target | Run time (load average at start) |",
        "|---|---|---|---|",
    ]
    for name, (_, _, target) in BENCHMARKS.items():
        r = results.get(name)
        if r is None:
            continue
        headline = r.get("headline") or f"failed: {r.get('error', '')[:200]}"
        load = f" ({r['load_average']:.1f})" if "load_average" in r else ""
        lines.append(f"| {name} | {headline} | {target} | {r['seconds']:.0f} s{load} |")
    for name, (script, title, _) in BENCHMARKS.items():
        r = results.get(name)
        if r is None or "figures" not in r:
            continue
        lines += ["", f"## {name}: {title}", "", f"`python benchmarks/{script}`", ""]
        for key, value in flatten(r["figures"]).items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            lines.append(f"- {key}: {shown}")
    lines += ["", GPU_PLAN]
    return "\n".join(lines) + "\n"


def flatten(figures: dict, prefix: str = "") -> dict:
    """Nested figure groups become ``group.name`` entries."""
    flat = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


GPU_PLAN = """## GPU plan (not measured here: this machine has no GPU)

On a GPU machine, after `make setup`, run:

```bash
python benchmarks/gpu_mfu.py                      # peak bf16 FLOP/s looked up from the GPU name
python benchmarks/gpu_mfu.py --peak-tflops 989    # or stated (H100 SXM dense bf16)
python benchmarks/gpu_mfu.py --device cuda:1      # another GPU of the machine
```

It trains `multimodal_bert` with a bert-base-sized encoder (12 layers, 768 wide, random weights:
FLOPs do not depend on the values) in bf16 at batch 32/64 and length 128/512 and prints samples/s,
achieved TFLOP/s and model FLOPs utilisation per shape (FLOPs per step = 6 x non-embedding
parameters x tokens + 12 x layers x hidden x length x tokens). The peak is the dense (not sparse)
bf16 figure of the GPU's name (H100 SXM/H200 989, H100 NVL 835, H100 PCIe 756, A100 312, L4 121,
A10G 70, B200 2250 TFLOP/s); another GPU needs `--peak-tflops`. A shape that does not fit in
memory prints OOM and the others still run. Expect MFU to rise with batch and length; below ~30%
at batch 64 / length 512 on an H100 points at input or launch overhead worth profiling (e.g.
`torch.compile`, fused AdamW)."""


HAND_WRITTEN = "<!-- Measured by hand: benchmarks/run_all.py keeps everything from this line on. -->"


def kept_hand_written(previous: str) -> str:
    """The hand-written part of an earlier RESULTS.md ("" when it has none)."""
    _, marker, rest = previous.partition(HAND_WRITTEN)
    return f"\n{marker}{rest}" if marker else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    only = [n for n in args.only.split(",") if n]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    chosen = [n for n in BENCHMARKS if not only or n in only]
    raw = args.out.with_name("results.json")
    results = json.loads(raw.read_text()) if only and raw.exists() else {}
    if only and not results:
        print(f"no earlier {raw.name}: {args.out.name} will hold only {', '.join(chosen)}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in chosen:
            print(f"== {name}", flush=True)
            results[name] = run_one(name, BENCHMARKS[name][0], Path(folder))
            print(results[name].get("headline") or results[name].get("error"), flush=True)
    info = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": {pkg: metadata.version(pkg) for pkg in VERSIONS},
    }
    previous = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(results_markdown(results, info) + kept_hand_written(previous))
    raw.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out} and {raw.name}")


if __name__ == "__main__":
    main()
