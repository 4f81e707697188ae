"""Class probabilities of a trained model over a DataLoader, in row order."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from models.classifier import Classifier


@torch.inference_mode()
def predict_probabilities(model: Classifier, loader: DataLoader, device: torch.device | str = "cpu") -> np.ndarray:
    """Softmax probabilities [rows, classes] in fp32, ordered by the batches' ``index``."""
    was_training = model.training
    model.eval().to(device)
    size = len(loader.dataset)
    out: np.ndarray | None = None
    try:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            probs = model(batch).float().softmax(dim=-1).cpu().numpy()
            if out is None:
                out = np.zeros((size, probs.shape[1]), dtype=np.float32)
            out[batch["index"].cpu().numpy()] = probs
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
