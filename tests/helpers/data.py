"""Small generated data sets and a tiny BERT, built offline for the tests.

The data carries signal in every modality so a model can learn from it: positive rows use
positive words, have a higher ``score`` and a mostly-positive ``region``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from transformers import BertConfig, BertModel, BertTokenizerFast

POSITIVE = ["great", "love", "perfect", "soft", "beautiful", "comfortable", "happy"]
NEGATIVE = ["poor", "broken", "awful", "cheap", "return", "refund", "ugly"]
NEUTRAL = ["the", "dress", "fit", "color", "order", "size", "fabric", "item", "was", "is", "and", "it", "this", "very"]
REGIONS = ["north", "south", "east", "west"]
CLASSES = ["low", "medium", "high"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = (
    SPECIAL
    + sorted(set(POSITIVE + NEGATIVE + NEUTRAL + REGIONS + CLASSES))
    + ["##s", "##ed", "!", ".", ",", "<", ">", "&"]
)
# The smallest valid set of hyperparameters for config-only tests (no files behind it).
MINIMAL_FIELDS = {
    "id_name": "id",
    "text_name": "text",
    "label_name": "y",
    "full_field_list": ["id", "text", "y", "a", "c"],
    "tab_field_list": ["a"],
    "cat_field_list": ["c"],
    "tokenizer": "/models/tiny",
}


def build_tiny_bert(folder: Path, max_positions: int = 64) -> Path:
    """A 2-layer, 32-wide BERT (about 40k parameters) with its own WordPiece vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True, model_max_length=max_positions)
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


def make_rows(n: int, seed: int, multiclass: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    if multiclass:
        labels = rng.integers(0, 3, size=n)
        positive = labels == 2
    else:
        labels = (rng.random(n) < 0.6).astype(int)
        positive = labels == 1
    texts = []
    for i, pos in enumerate(positive):
        words = list(rng.choice(NEUTRAL, size=rng.integers(3, 12)))
        words += list(rng.choice(POSITIVE if pos else NEGATIVE, size=2))
        rng.shuffle(words)
        text = " ".join(words)
        if i % 4 == 1:
            text = f"[bom] {text} [eom] [BOM] {' '.join(rng.choice(NEUTRAL, size=4))} [EOM]"
        elif i % 4 == 2:
            text = f"<p>{text}</p> &amp; 😀"
        texts.append(text)
    frame = pd.DataFrame(
        {
            "uid": [f"id-{seed}-{i:05d}" for i in range(n)],
            "review": texts,
            "score": np.where(positive, rng.normal(4.0, 0.8, n), rng.normal(2.0, 0.8, n)).round(2),
            "count": rng.integers(0, 50, n).astype(float),
            "region": [rng.choice(REGIONS[:2] if pos else REGIONS[1:]) for pos in positive],
            "label": [CLASSES[k] for k in labels] if multiclass else labels,
        }
    )
    frame.loc[frame.index % 7 == 3, "count"] = np.nan
    frame.loc[frame.index % 11 == 5, "region"] = None
    return frame


def hyperparameters(tokenizer_dir: Path, **overrides) -> dict:
    base = {
        "id_name": "uid",
        "text_name": "review",
        "label_name": "label",
        "full_field_list": ["uid", "review", "score", "count", "region", "label"],
        "tab_field_list": ["score", "count"],
        "cat_field_list": ["region"],
        "tokenizer": str(tokenizer_dir),
        "model_class": "multimodal_bert",
        "max_sen_len": 32,
        "max_total_chunks": 3,
        "batch_size": 16,
        "max_epochs": 2,
        "lr": 5e-3,
        "warmup_steps": 2,
        "reinit_layers": 0,
        "hidden_common_dim": 16,
        "val_check_interval": 1.0,
        "early_stop_metric": "val/loss",
    }
    base.update(overrides)
    return base


def write_job(
    base: Path,
    hparams: dict,
    fmt: str = "csv",
    rows: tuple[int, int, int] = (160, 40, 40),
    multiclass: bool = False,
    frames: dict[str, pd.DataFrame] | None = None,
) -> Path:
    """An /opt/ml-shaped folder with three splits in ``fmt`` and the hyperparameters file."""
    frames = frames or {
        split: make_rows(n, seed=i, multiclass=multiclass)
        for i, (split, n) in enumerate(zip(("train", "val", "test"), rows))
    }
    for split, frame in frames.items():
        folder = base / "input" / "data" / split
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{split}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
    config_dir = base / "code" / "hyperparams"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "hyperparameters.json").write_text(json.dumps(hparams))
    return base
