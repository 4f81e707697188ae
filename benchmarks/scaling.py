"""Scaling: preprocessing + one training epoch at 1k, 10k and 100k rows; time must grow no worse
than linearly (the exponent of a log-log fit of time against rows, target <= 1), with the peak
memory of each size.

Every run is a fresh process (its imports are not timed), so neither memory peaks nor warm caches
carry over. Its peak resident memory is reported, and how far that peak rose above the memory
held once torch, Lightning and transformers are imported (most of the peak at small sizes): what
the data and the run itself add.

Rows are synthetic but shaped like the demo data (a review of 20-120 words, three numeric and three
categorical fields, a binary label). The model is the smallest BERT that is still one (1 layer, 32
wide, no dropout inside it) over MiniLM's tokenizer, trained at batch 128: what is measured is how
the job's own work grows (text chain, encoders, collate, training loop), and a bigger model or a
smaller batch would only add a constant cost per row, which slows every size alike (a 2-layer,
64-wide BERT at batch 64 took 3 minutes for the 100k epoch alone).

Sizes below the largest run ``--repeats`` times and report medians (memory: the highest peak);
the largest runs ``--largest-repeats`` times, by default once: one 100k run takes more than twice
as long as the six smaller runs together, and a run that long is little moved by a short busy
spell. Fixed costs (loading the tokenizer and model, starting the Trainer) dominate at 1k and
flatter the fit over all sizes, so the exponent between the two largest sizes is reported beside it.

    python benchmarks/scaling.py [--sizes 1000,10000,100000] [--repeats 3] [--largest-repeats 1]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import arguments, report, reset_peak_rss, rss_mb

BATCH_SIZE = 128
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
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(str(folder))
    return folder


def one_size(rows: int, model_dir: str) -> dict:
    """Runs in a fresh process: preprocessing + one epoch at ``rows`` rows."""
    from common import demo_config, prepare
    from loops import lightning_run

    config = demo_config(model_dir, batch_size=BATCH_SIZE, max_sen_len=256, fp16=False, warmup_steps=10)
    baseline = reset_peak_rss()
    frames = {"train": synthetic_frame(rows)}
    started = time.perf_counter()
    tokenizer, backbone, splits = prepare(config, frames)
    prepared = time.perf_counter()
    lightning_run(config, backbone, splits["train"], -(-rows // config.batch_size), tokenizer.pad_token_id or 0)
    done = time.perf_counter()
    peak = rss_mb("VmHWM")
    return {"preprocess_s": prepared - started, "epoch_s": done - prepared, "total_s": done - started,
            "peak_rss_mb": peak, "peak_increase_mb": peak - baseline}


def in_fresh_process(rows: int, model_dir: str) -> dict:
    child = subprocess.run([sys.executable, __file__, "--child", str(rows), "--model", model_dir],
                           capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def run(model: str | None = None, sizes: str = "1000,10000,100000", repeats: int = 3, largest_repeats: int = 1) -> dict:
    counts = sorted(int(s) for s in sizes.split(","))
    if len(counts) < 2:
        raise SystemExit("--sizes needs at least two sizes to fit an exponent")
    runs_of = {n: largest_repeats if n == max(counts) else repeats for n in counts}
    results: dict[int, list[dict]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory() as folder:
        model_dir = str(small_bert(Path(folder), model))
        for rep in range(max(runs_of.values())):  # sizes interleaved, so a busy spell hits them alike
            for n in counts:
                if rep < runs_of[n]:
                    results[n].append(in_fresh_process(n, model_dir))
    figures: dict = {"batch_size": BATCH_SIZE}
    for n, runs in results.items():
        figures[f"rows_{n}_runs"] = len(runs)
        for key in ("preprocess_s", "epoch_s", "total_s"):
            figures[f"rows_{n}_{key}"] = statistics.median(r[key] for r in runs)
        for key in ("peak_rss_mb", "peak_increase_mb"):
            figures[f"rows_{n}_{key}"] = max(r[key] for r in runs)
    total = [figures[f"rows_{n}_total_s"] for n in counts]
    figures["loglog_exponent"] = float(np.polyfit(np.log(counts), np.log(total), 1)[0])
    (small, large), (t_small, t_large) = counts[-2:], total[-2:]
    figures["exponent_between_largest_two"] = float(np.log(t_large / t_small) / np.log(large / small))
    return figures


def main() -> None:
    if "--child" in sys.argv:
        args = sys.argv
        print(json.dumps(one_size(int(args[args.index("--child") + 1]), args[args.index("--model") + 1])))
        return
    args = arguments(__doc__.splitlines()[0], sizes="1000,10000,100000", repeats=3, largest_repeats=1).parse_args()
    figures = run(args.model, args.sizes, args.repeats, args.largest_repeats)
    report(figures, f"scaling: time grows as rows^{figures['loglog_exponent']:.2f} over {args.sizes} rows "
           f"(rows^{figures['exponent_between_largest_two']:.2f} between the largest two; target <= 1.0)", args.json)


if __name__ == "__main__":
    main()
