"""Tabular encoder: numeric features and risk rates -> one vector per sample."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TabularEncoder(nn.Module):
    """Standardised inputs into a one-hidden-layer MLP.

    Features arrive on their own scales (ages, counts, rates); the training split's mean and
    spread are stored as buffers, so they travel in ``model.pth`` and in the ONNX graph.
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float):
        super().__init__()
        self.out_dim = out_dim
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Dropout(dropout))

    def fit_scale(self, features: np.ndarray) -> None:
        """Take mean and spread from the training features (constant columns keep a spread of 1)."""
        mean = features.mean(axis=0) if len(features) else np.zeros(features.shape[1])
        std = features.std(axis=0) if len(features) else np.ones(features.shape[1])
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.feature_mean) / self.feature_std)
