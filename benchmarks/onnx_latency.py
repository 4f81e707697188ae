"""Inference artifacts: ONNX Runtime latency ÷ PyTorch eager, at batch 1 and batch 32, on the demo model.

The demo model (multimodal_bert on MiniLM) is exported exactly as the job exports it (opset 23,
where a BERT's attention is one ``Attention`` node), then timed on real review batches: PyTorch
eager in fp32 under ``inference_mode``; ONNX Runtime with its default session, as
``inference.predict`` runs ``model.onnx``; ONNX Runtime with full graph optimisation, the
transformer fusions of ``onnxruntime.transformers`` and one intra-op thread per core; and, for
comparison, the default session on an opset-20 export (torch's default opset, where attention is a
chain of MatMul, Softmax and Where nodes). Ratios below 1 mean ONNX is faster.

    python benchmarks/onnx_latency.py [--repeats 20]
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch
from common import arguments, demo_config, demo_frames, median_seconds, prepare, report

COMPARED_OPSET = 20


def sessions(path: Path, older: Path, num_heads: int, hidden: int) -> dict[str, ort.InferenceSession]:
    out = {"ort_default": ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])}
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = os.cpu_count() or 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    fused = _transformer_fused(path, num_heads, hidden)
    out["ort_tuned"] = ort.InferenceSession(str(fused), options, providers=["CPUExecutionProvider"])
    out[f"ort_opset{COMPARED_OPSET}"] = ort.InferenceSession(str(older), providers=["CPUExecutionProvider"])
    return out


def _transformer_fused(path: Path, num_heads: int, hidden: int) -> Path:
    """ORT's BERT fusions (attention, layer norm, GELU); the plain graph where they do not apply."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(path), model_type="bert", num_heads=num_heads, hidden_size=hidden)
        target = path.with_name("model.fused.onnx")
        optimized.save_model_to_file(str(target))
        return target
    except Exception as exc:  # the fusions are an optional speed-up, never a requirement
        print(f"transformer fusions not applied: {exc}")
        return path


def run(model: str | None = None, repeats: int = 20, rows: int = 64) -> dict:
    from loops import fresh_model

    from export.onnx_export import ProbabilityGraph, export_onnx, pad_chunks
    from processing.dataset import BatchCollator

    config = demo_config(model)
    tokenizer, backbone, splits = prepare(config, demo_frames(rows, eval_rows=rows))
    net = fresh_model(config, backbone, splits["train"]).eval()
    collate = BatchCollator.of(splits["val"], config, tokenizer.pad_token_id or 0)
    graph = ProbabilityGraph(net).eval()
    figures: dict = {"threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as folder:
        path, older = Path(folder) / "model.onnx", Path(folder) / f"model.opset{COMPARED_OPSET}.onnx"
        sample = pad_chunks(collate([0, 1]), chunks=2, tokens=2)
        export_onnx(net, sample, path, max_tokens=backbone.max_positions)
        export_onnx(net, sample, older, max_tokens=backbone.max_positions, opset=COMPARED_OPSET)
        runners = sessions(path, older, backbone.hf_config.num_attention_heads, backbone.hidden_size)
        for size in (1, 32):
            batch = collate(list(range(min(size, rows))))
            feeds = {name: batch[name].numpy() for name in graph.names}
            args = [batch[name] for name in graph.names]
            with torch.inference_mode():
                eager = median_seconds(lambda args=args: graph(*args), repeats)
            figures[f"pytorch_eager_ms_batch{size}"] = 1000 * eager
            for name, session in runners.items():
                seconds = median_seconds(lambda s=session, feeds=feeds: s.run(None, feeds), repeats)
                figures[f"{name}_ms_batch{size}"] = 1000 * seconds
                figures[f"{name}_over_eager_batch{size}"] = seconds / eager
    return figures


def main() -> None:
    args = arguments(__doc__.splitlines()[0], repeats=20, rows=64).parse_args()
    figures = run(args.model, args.repeats, args.rows)
    best = {
        size: min(figures[f"{name}_over_eager_batch{size}"] for name in ("ort_default", "ort_tuned"))
        for size in (1, 32)
    }
    older = f"ort_opset{COMPARED_OPSET}_over_eager_batch"
    report(
        figures,
        f"onnx: best ORT session / PyTorch eager latency = {best[1]:.2f} (batch 1), {best[32]:.2f} (batch 32); "
        f"model.onnx at opset {COMPARED_OPSET}: {figures[older + '1']:.2f}, {figures[older + '32']:.2f}",
        args.json,
    )


if __name__ == "__main__":
    main()
