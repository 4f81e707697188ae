"""Scaling: preprocessing + one training epoch at 1k, 10k and 100k rows; time must grow no worse
than linearly (the exponent of a log-log fit of time against rows, target <= 1), with the peak
memory of each size (each size runs in its own process so peaks do not carry over).

Rows are synthetic but shaped like the demo data (a review of 20-120 words, three numeric and three
categorical fields, a binary label). The model is a small random BERT (2 layers, 64 wide) over
MiniLM's tokenizer, because the quantity measured is how the job's own work grows, not BERT's.

    python benchmarks/scaling.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import arguments, peak_rss_mb, report

WORDS = ("dress fit size small large fabric soft color love return perfect cute cheap quality waist length "
         "comfortable flattering material runs true ordered petite beautiful disappointed tight loose").split()


def synthetic_frame(rows: int, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 120, rows)
    vocab = np.array(WORDS)
    text = [" ".join(vocab[rng.integers(0, len(vocab), n)]) for n in lengths]
    rating = rng.integers(1, 6, rows)
    return pd.DataFrame({
        "review_id": np.arange(rows),
        "Review Text": text,
        "Age": rng.integers(18, 90, rows),
        "Rating": rating,
        "Positive Feedback Count": rng.poisson(2, rows),
        "Division Name": rng.choice(["General", "General Petite", "Initmates"], rows),
        "Department Name": rng.choice(["Tops", "Dresses", "Bottoms", "Intimate", "Jackets"], rows),
        "Class Name": rng.choice(["Knits", "Blouses", "Dresses", "Pants", "Jeans", "Sweaters"], rows),
        "Recommended IND": (rating + rng.normal(0, 1, rows) > 3).astype(int),
    })


def small_bert(folder: Path, tokenizer_path: str | None) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from demo.prepare_clothing import minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or str(minilm_dir()))
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=512)
    BertModel(config).save_pretrained(str(folder))
    return folder


def one_size(rows: int, model_dir: str) -> dict:
    """Runs in a child process: preprocessing + one epoch at ``rows`` rows."""
    from common import demo_config, prepare
    from loops import lightning_run

    config = demo_config(model_dir, batch_size=64, max_sen_len=256, fp16=False, warmup_steps=10)
    frames = {"train": synthetic_frame(rows)}
    started = time.perf_counter()
    tokenizer, backbone, splits = prepare(config, frames)
    prepared = time.perf_counter()
    steps = -(-rows // config.batch_size)
    lightning_run(config, backbone, splits["train"], steps, tokenizer.pad_token_id or 0)
    done = time.perf_counter()
    return {"rows": rows, "preprocess_s": prepared - started, "epoch_s": done - prepared,
            "total_s": done - started, "peak_rss_mb": peak_rss_mb()}


def run(model: str | None = None, sizes: str = "1000,10000,100000", repeats: int = 1) -> dict:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        model_dir = str(small_bert(Path(folder), model))
        for rows in (int(s) for s in sizes.split(",")):
            child = subprocess.run([sys.executable, __file__, "--child", str(rows), "--model", model_dir],
                                   capture_output=True, text=True, check=True)
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    rows = np.array([r["rows"] for r in results], dtype=float)
    total = np.array([r["total_s"] for r in results])
    exponent = float(np.polyfit(np.log(rows), np.log(total), 1)[0]) if len(rows) > 1 else float("nan")
    figures = {}
    for r in results:
        n = r["rows"]
        figures[f"rows_{n}_preprocess_s"] = r["preprocess_s"]
        figures[f"rows_{n}_epoch_s"] = r["epoch_s"]
        figures[f"rows_{n}_total_s"] = r["total_s"]
        figures[f"rows_{n}_peak_rss_mb"] = r["peak_rss_mb"]
    figures["loglog_exponent"] = exponent
    return figures


def main() -> None:
    if "--child" in sys.argv:
        args = sys.argv
        print(json.dumps(one_size(int(args[args.index("--child") + 1]), args[args.index("--model") + 1])))
        return
    args = arguments(__doc__.splitlines()[0], sizes="1000,10000,100000", repeats=1).parse_args()
    figures = run(args.model, args.sizes, args.repeats)
    report(figures, f"scaling: time grows as rows^{figures['loglog_exponent']:.2f} (target <= 1.0)", args.json)


if __name__ == "__main__":
    main()
