"""Class probabilities over a DataLoader of batches, in row order: PyTorch or ONNX Runtime.

Both engines return float32 [rows, classes] placed by each batch's ``index``, so the loader may
order its batches as it likes (by length, to save padding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.utils.data import DataLoader

from export.onnx_export import OUTPUT_NAME
from hyperparams.rules import INDEX_KEY


class TorchEngine:
    """A classifier in PyTorch, run in fp32 without gradients (left in the mode it was in)."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str = "cpu"):
        self.model = model
        self.device = device

    @torch.inference_mode()
    def probabilities(self, loader: DataLoader) -> np.ndarray:
        model = self.model
        was_training = model.training
        model.eval().to(self.device)
        out: np.ndarray | None = None
        try:
            for batch in loader:
                batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                probs = model(batch).float().softmax(dim=-1).cpu().numpy()
                if out is None:
                    out = np.zeros((len(loader.dataset), probs.shape[1]), dtype=np.float32)
                out[batch[INDEX_KEY].cpu().numpy()] = probs
        finally:
            model.train(was_training)
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


class OnnxEngine:
    """``model.onnx`` in an ONNX Runtime session on the CPU."""

    def __init__(self, path: Path, threads: int | None = None):
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def probabilities(self, loader: DataLoader) -> np.ndarray:
        out: np.ndarray | None = None
        for batch in loader:
            (probs,) = self.session.run([OUTPUT_NAME], {name: batch[name].numpy() for name in self.input_names})
            if out is None:
                out = np.zeros((len(loader.dataset), probs.shape[1]), dtype=np.float32)
            out[batch[INDEX_KEY].numpy()] = probs
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
