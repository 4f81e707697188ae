"""Every benchmark runs end to end at a tiny size, so none of them rots (their speed is not checked here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers.data import build_tiny_bert

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture(scope="module")
def bert_512(tmp_path_factory) -> str:
    """The tiny BERT with room for 512 positions (the padding benchmark pads to 512)."""
    return str(build_tiny_bert(tmp_path_factory.mktemp("bert512"), max_positions=512))


@pytest.mark.benchmark
def test_training_overhead(bert_512):
    import training_overhead

    figures = training_overhead.run(bert_512, steps=4, repeats=1, rows=80, batch_size=8)
    assert figures["ratio"] > 0 and figures["raw_loop_samples_per_s"] > 0


@pytest.mark.benchmark
def test_padding(bert_512):
    import padding

    figures = padding.run(bert_512, steps=3, repeats=1, rows=60, batch_size=8)
    assert figures["tokens_per_sample_fixed_512"] == 512
    assert figures["tokens_per_sample_dynamic"] < 512
    assert len(figures["loss_curve_dynamic"]) == len(figures["loss_curve_fixed_512"]) == 3
    assert figures["speedup"] > 0 and figures["speedup_without_dropout"] > 0
    assert figures["max_loss_difference"] < 1e-4


@pytest.mark.benchmark
def test_data_loading(bert_512):
    import data_loading

    figures = data_loading.run(bert_512, steps=4, repeats=1, rows=80, batch_size=8)
    assert 0 <= figures["wait_fraction"] < 1


@pytest.mark.benchmark
def test_evaluation_speed(bert_512):
    import evaluation_speed

    assert evaluation_speed.run(bert_512, rows=24, repeats=1)["seconds_per_1000_rows_eval_batch_length_sorted"] > 0


@pytest.mark.benchmark
def test_onnx_latency(bert_512):
    import onnx_latency

    figures = onnx_latency.run(bert_512, repeats=2, rows=40)
    assert figures["ort_tuned_ms_batch32"] > 0


@pytest.mark.benchmark
def test_scaling(bert_512):
    import scaling

    figures = scaling.run(bert_512, sizes="40,80", repeats=1)
    assert figures["rows_80_peak_rss_mb"] > figures["rows_80_peak_increase_mb"] > 0
    assert figures["rows_40_runs"] == figures["rows_80_runs"] == 1


def test_scaling_repeats_the_smaller_sizes_and_takes_medians(monkeypatch):
    import scaling

    calls = []
    factors = iter([1, 1, 1, 5, 1, 2, 1])  # the three runs of 100 rows take 10, 50 and 20 s

    def fake_run(rows, model_dir):
        calls.append(rows)
        seconds = rows / 10 * next(factors)
        return {
            "preprocess_s": 0.0,
            "epoch_s": seconds,
            "total_s": seconds,
            "peak_rss_mb": 900.0 + len(calls),
            "peak_increase_mb": float(len(calls)),
        }

    monkeypatch.setattr(scaling, "small_bert", lambda folder, tokenizer_path: folder)
    monkeypatch.setattr(scaling, "in_fresh_process", fake_run)
    figures = scaling.run(None, sizes="1000,100,10000", repeats=3, largest_repeats=1)
    assert calls == [100, 1000, 10000, 100, 1000, 100, 1000]
    assert (figures["rows_100_runs"], figures["rows_1000_runs"], figures["rows_10000_runs"]) == (3, 3, 1)
    assert figures["rows_100_total_s"] == 20.0
    assert figures["rows_100_peak_increase_mb"] == 6.0  # the highest of its runs
    assert figures["exponent_between_largest_two"] == pytest.approx(1.0)
    assert 0.8 < figures["loglog_exponent"] < 1.0


@pytest.mark.benchmark
def test_bf16_speed(bert_512):
    import bf16_speed

    assert bf16_speed.run(bert_512, steps=3, repeats=1, rows=60, batch_size=8)["fp32_step_s"] > 0


@pytest.mark.benchmark
def test_length_grouping(bert_512):
    import length_grouping

    figures = length_grouping.run(bert_512, train_rows=96, eval_rows=40)
    grouped, plain = figures["grouped"], figures["random"]
    assert plain["padded_tokens_per_sample"] > grouped["padded_tokens_per_sample"] >= grouped["real_tokens_per_sample"]
    assert plain["real_tokens_per_sample"] == grouped["real_tokens_per_sample"], "both sides train on the same rows"
    assert figures["speedup"] > 0 and 0 <= grouped["test_auroc"] <= 1 and grouped["training_phase_s"] > 0


@pytest.mark.benchmark
def test_serving_speed(bert_512):
    import serving_speed

    figures = serving_speed.run(bert_512, requests=16, clients=4, train_rows=48, eval_rows=32, memory_rows=1000)
    for engine in ("onnx", "torch"):
        for batch in (1, 64):
            load = figures[f"{engine}_batch{batch}"]
            assert load["errors"] == 0 and load["p99_ms"] >= load["p50_ms"] > 0, load
            assert load["rows_per_s"] == pytest.approx(load["requests_per_s"] * batch)
    assert figures["batch_scoring_1000_rows"]["peak_rss_mb"] > 100 and figures["peak_memory_ratio"] > 0
    assert "batch scoring 1000 rows peak" in serving_speed.headline(figures)


@pytest.mark.benchmark
def test_published_split_runs_a_model_class_and_a_variant_with_the_title(bert_512, tmp_path):
    import subprocess

    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "published_split.py"), "--model", bert_512, "--train-rows", "60",
         "--eval-rows", "30", "--variant", "bert:model_class=bert,max_sen_len=32",
         "--variant", "mb_title:model_class=multimodal_bert,title=true,max_sen_len=32,class_weights=[2.0,1.0]",
         "--parallel", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    rows = {row["variant"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"bert", "mb_title"} and not any("error" in row for row in rows.values()), rows
    assert all(0 <= row["pr_auc"] <= 1 and 0 <= row["f1"] <= 1 for row in rows.values())
    assert "| mb_title |" in result.stdout and "Published:" in result.stdout


def test_a_published_split_variant_keeps_commas_inside_a_list_and_title_makes_it_trimodal(tmp_path):
    from published_split import hyperparameters, parse_variant

    name, overrides = parse_variant("w:model_class=multimodal_bert,class_weights=[2.0,1.0],title=true,optimizer=SGD")
    assert (name, overrides) == ("w", {"model_class": "multimodal_bert", "class_weights": [2.0, 1.0], "title": True,
                                       "optimizer": "SGD"})
    assert parse_variant("lstm") == ("lstm", {"model_class": "lstm"})
    (tmp_path / "code" / "hyperparams").mkdir(parents=True)
    (tmp_path / "code" / "hyperparams" / "hyperparameters.json").write_text(
        json.dumps({"text_name": "Review Text", "full_field_list": ["Review Text", "y"], "lr": 5e-5}))
    settings = hyperparameters(tmp_path, "/models/minilm", {"title": True, "lr": 3e-5})
    assert settings == {"primary_text_name": "Review Text", "secondary_text_name": "Title",
                        "full_field_list": ["Review Text", "y", "Title"], "lr": 3e-5, "tokenizer": "/models/minilm"}


@pytest.mark.benchmark
def test_gpu_plan_runs_tiny_on_cpu():
    import subprocess

    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_mfu.py"), "--device", "cpu", "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "samples/s" in result.stdout


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA H200 NVL", 835.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L40", 181.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10G", 70.0),
        ("NVIDIA B200", 2250.0),
        ("NVIDIA A10", None),
        ("Tesla T4", None),
    ],
)
def test_gpu_plan_takes_the_peak_of_the_longest_matching_name(name, peak):
    import gpu_mfu

    assert gpu_mfu.peak_tflops_for(name) == peak


def test_gpu_plan_records_a_shape_out_of_memory_and_runs_the_next(monkeypatch, capsys):
    import gpu_mfu
    import torch

    def measure(batch, length, device, tiny, steps):
        if (batch, length) == (64, 512):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return {
            "batch": batch,
            "length": length,
            "step_s": 1.0,
            "samples_per_s": float(batch),
            "achieved_tflops": 100.0 * batch / 32,
        }

    monkeypatch.setattr(gpu_mfu, "measure", measure)
    rows = gpu_mfu.measure_shapes([(32, 512), (64, 512), (64, 128)], torch.device("cpu"), False, 1, peak=1000.0)
    assert [r.get("error") for r in rows] == [None, "OOM", None]
    assert rows[2]["mfu"] == pytest.approx(0.2)
    assert "OOM" in capsys.readouterr().out
    assert gpu_mfu.headline(rows) == "gpu: best MFU 20.0% at batch 64, length 128"


def test_run_all_writes_results(tmp_path, monkeypatch):
    import run_all

    fake = {"figures": {"ratio": 1.0}, "headline": "x: ratio = 1.00", "seconds": 1.0, "load_average": 0.5}
    markdown = run_all.results_markdown(
        {"training_overhead": fake},
        {"date": "2026-01-01", "machine": run_all.machine(), "versions": {"torch": "2.13.0"}},
    )
    assert "| training_overhead | x: ratio = 1.00 | >= 0.95 | 1 s (0.5) |" in markdown
    assert "GPU plan" in markdown


def test_run_all_only_reruns_the_named_benchmarks_and_keeps_the_rest(tmp_path, monkeypatch):
    import run_all

    earlier = {
        name: {"figures": {"ratio": 0.5}, "headline": f"{name}: earlier", "seconds": 2.0} for name in run_all.BENCHMARKS
    }
    (tmp_path / "results.json").write_text(json.dumps(earlier))
    hand_written = f"{run_all.HAND_WRITTEN}\n## Figures measured by hand\n\nmake demo took 7 min.\n"
    (tmp_path / "RESULTS.md").write_text("# old generated part\n\n" + hand_written)
    rerun = []
    monkeypatch.setattr(
        run_all,
        "run_one",
        lambda name, script, folder: (
            rerun.append(name) or {"figures": {"ratio": 1.0}, "headline": f"{name}: again", "seconds": 1.0}
        ),
    )
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--only", "padding", "--out", str(tmp_path / "RESULTS.md")])
    run_all.main()
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert rerun == ["padding"]
    assert "| padding | padding: again |" in markdown and "| text_chain | text_chain: earlier |" in markdown
    assert markdown.endswith(hand_written) and "# old generated part" not in markdown
    assert json.loads((tmp_path / "results.json").read_text())["padding"]["headline"] == "padding: again"

    monkeypatch.setattr(sys, "argv", ["run_all.py", "--only", "padidng", "--out", str(tmp_path / "RESULTS.md")])
    with pytest.raises(SystemExit):
        run_all.main()
