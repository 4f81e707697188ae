"""A channel that holds the shards an upstream step wrote (part-00000.parquet, ...): every shard is read."""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from helpers.data import hyperparameters, make_rows, write_job


def test_a_job_reads_every_shard_in_order_and_records_each_in_the_manifest(tmp_path, tiny_bert, run_main):
    frames = {split: make_rows(n, seed=i) for i, (split, n) in enumerate((("train", 48), ("val", 16), ("test", 16)))}
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), fmt="parquet", frames=frames)
    test_dir = base / "input" / "data" / "test"
    (test_dir / "test.parquet").unlink()
    shards = {"part-00000-c000.snappy.parquet": frames["test"].iloc[:6], "part-00001-c000.snappy.parquet":
              frames["test"].iloc[6:6], "part-00002-c000.snappy.parquet": frames["test"].iloc[6:]}
    for name, part in shards.items():  # the middle shard has a schema and no rows, as Spark writes them
        part.to_parquet(test_dir / name, index=False)
    (test_dir / "_SUCCESS").write_text("")
    (test_dir / ".part-00000-c000.snappy.parquet.crc").write_bytes(b"crc")
    assert run_main(base) == 0, (base / "output" / "failure").read_text()

    predictions = pd.read_parquet(base / "output" / "data" / "test_predictions.parquet")
    assert predictions["uid"].tolist() == frames["test"]["uid"].tolist()  # every row, in shard order
    entry = json.loads((base / "model" / "manifest.json").read_text())["inputs"]["test"]
    assert entry["rows"] == 16
    assert [(f["path"].rsplit("/", 1)[1], f["rows"]) for f in entry["files"]] == [
        (name, len(part)) for name, part in shards.items()
    ]
    for file in entry["files"]:
        content = (test_dir / file["path"].rsplit("/", 1)[1]).read_bytes()
        assert file["sha256"] == hashlib.sha256(content).hexdigest() and file["bytes"] == len(content)
    assert entry["sha256"] not in {f["sha256"] for f in entry["files"]}  # the split's hash covers all three
