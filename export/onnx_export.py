"""ONNX export with dynamic batch, chunk and token axes, verified against PyTorch.

The graph takes the model's batch inputs by name (see ``processing.dataset``) and returns
``probabilities`` [batch, classes]. The export is checked with onnxruntime on a batch whose
size and chunk count differ from the export sample; a mismatch fails the job.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn
from torch.export import Dim

from contracts.errors import ExportError
from models.classifier import Classifier

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4
OUTPUT_NAME = "probabilities"
# Opset 23 has a standard ``Attention`` op: a BERT's scaled dot-product attention exports as one
# node that onnxruntime runs with its own kernel. On the 2-core benchmark machine that makes the
# demo model faster at batch 32 than opset 20's MatMul/Softmax/Where chain (figures in benchmarks/RESULTS.md,
# onnx_latency). Serving needs an onnxruntime that implements opset 23.
ONNX_OPSET = 23


class ProbabilityGraph(nn.Module):
    """Positional tensors in ``model.input_names`` order -> class probabilities (fp32)."""

    def __init__(self, model: Classifier):
        super().__init__()
        self.model = model
        self.names = model.input_names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors))).float().softmax(dim=-1)


def pad_chunks(batch: Mapping[str, torch.Tensor], chunks: int, tokens: int = 0) -> dict[str, torch.Tensor]:
    """The batch with every text input padded to at least ``chunks`` chunks and ``tokens`` tokens
    (all-padding chunks are ignored by the model, so predictions do not change)."""
    out = dict(batch)
    for key, value in batch.items():
        if value.dim() == 3:
            extra_chunks = max(0, chunks - value.shape[1])
            extra_tokens = max(0, tokens - value.shape[2])
            out[key] = nn.functional.pad(value, (0, extra_tokens, 0, extra_chunks))
    return out


def export_onnx(
    model: Classifier, sample: Mapping[str, torch.Tensor], path: Path, max_tokens: int, opset: int = ONNX_OPSET
) -> None:
    """Write ``path``. ``sample`` needs at least 2 rows, 2 chunks and 2 tokens so that no axis is
    specialised to a constant during tracing.

    Models with a recurrent layer go through the TorchScript exporter: ``torch.export`` fixes an
    LSTM's time axis to the sample's length (pytorch/pytorch#115092), while the TorchScript
    exporter writes an ONNX ``LSTM`` node whose time axis stays dynamic. Everything else is
    written at ``opset`` (benchmarks compare other opsets; the job always uses ``ONNX_OPSET``).
    """
    graph = ProbabilityGraph(model).eval()
    args = tuple(sample[name].cpu() for name in graph.names)
    axes = _dynamic_axes(graph.names)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if any(isinstance(m, nn.RNNBase) for m in model.modules()):
            torch.onnx.export(
                graph,
                args,
                str(path),
                input_names=graph.names,
                output_names=[OUTPUT_NAME],
                dynamic_axes={**dict(zip(graph.names, axes)), OUTPUT_NAME: {0: "batch"}},
                dynamo=False,
            )
        else:
            program = torch.onnx.export(
                graph,
                args,
                input_names=graph.names,
                output_names=[OUTPUT_NAME],
                dynamic_shapes=(_dims(axes, max_tokens),),
                dynamo=True,
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
            program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path))
    log.info("Exported %s in %.1fs", path.name, time.perf_counter() - started)


def check_parity(model: Classifier, path: Path, batch: Mapping[str, torch.Tensor]) -> float:
    """Max absolute difference between onnxruntime and PyTorch probabilities on ``batch``."""
    graph = ProbabilityGraph(model).eval()
    with torch.inference_mode():
        expected = graph(*(batch[name].cpu() for name in graph.names)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {name: batch[name].cpu().numpy() for name in graph.names}
    (actual,) = session.run([OUTPUT_NAME], feeds)
    diff = float(np.max(np.abs(actual - expected)))
    shape = tuple(next(v for v in batch.values() if v.dim() == 3).shape)
    if not np.isfinite(diff) or diff > PARITY_TOLERANCE:
        raise ExportError(
            f"The ONNX model disagrees with PyTorch by {diff:.2e} (limit {PARITY_TOLERANCE:.0e}) on a batch of "
            f"shape {shape}; the export is not trustworthy, so the job stops. Report this with the traceback."
        )
    log.info("ONNX parity on batch %s: max abs diff %.2e", shape, diff)
    return diff


def export_verified_onnx(model: Classifier, collate, rows: int, path: Path, max_tokens: int) -> float:
    """Export from a 2-row sample (padded to 2+ chunks), then check parity on 5 rows with one
    chunk more than the sample. Returns the parity difference."""
    sample = pad_chunks(collate([i % rows for i in range(2)]), chunks=2, tokens=2)
    export_onnx(model, sample, path, max_tokens=max_tokens)
    sample_chunks = max(v.shape[1] for v in sample.values() if v.dim() == 3)
    return check_parity(model, path, pad_chunks(collate([i % rows for i in range(5)]), chunks=sample_chunks + 1))


def _dynamic_axes(names: list[str]) -> list[dict[int, str]]:
    """Axis names per input: one batch axis for all, chunk and token axes per text column."""
    axes = []
    for name in names:
        if name == "tabular":
            axes.append({0: "batch"})
            continue
        role = name.split("_")[0] if name.startswith(("primary_", "secondary_")) else "text"
        axes.append({0: "batch", 1: f"{role}_chunks", 2: f"{role}_tokens"})
    return axes


def _dims(axes: list[dict[int, str]], max_tokens: int) -> tuple:
    """``torch.export`` dimensions for the named axes (token axes end at the position limit)."""
    dims: dict[str, Dim] = {}
    for axis_names in axes:
        for name in axis_names.values():
            if name not in dims:
                dims[name] = Dim(name, min=1, max=max_tokens) if name.endswith("_tokens") else Dim(name, min=1)
    return tuple({axis: dims[name] for axis, name in axis_names.items()} for axis_names in axes)
