"""The text-chain benchmark runs end to end on a few rows (speed itself is measured by the script, not here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.benchmark
def test_text_chain_benchmark_prints_its_figures_and_ratio_last():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "text_chain.py"), "--rows", "40", "--repeats", "1",
         "--per-row-rows", "5", "--memory-rows", "60"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio full_chain / tokenizer_call = ")
    assert float(lines[-1].split("= ")[1].split()[0]) > 0
    for name in ("tokenizer_call", "hf_tokenizer_call", "full_chain", "per_row"):
        assert any(line.strip().startswith(name) and "rows/s" in line for line in lines), name
    assert any(line.startswith("storage: ") for line in lines)
    assert any(line.startswith("memory: encoding 60 dialogues peaked at") for line in lines)


def test_dialogues_have_the_mess_the_benchmark_promises():
    from benchmarks.dialogues import dialogues

    texts = dialogues(200, seed=1)
    assert texts == dialogues(200, seed=1)
    words = [len(text.split()) for text in texts]
    assert min(words) >= 150
    for needle in ("[bom]", "<", "&", "😀", "[BOM]"):
        assert sum(needle in t for t in texts) > 20, needle
