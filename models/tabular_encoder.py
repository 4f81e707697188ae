"""Tabular encoders: numeric features and risk rates -> a vector, or one token per feature.

Features arrive on their own scales (ages, counts, rates); both encoders standardise them with
the training split's mean and spread, stored as buffers so they travel in ``model.pth`` and in
the ONNX graph. Call ``fit_scale`` with the training features before training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Standardizer(nn.Module):
    def __init__(self, num_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def fit(self, features: np.ndarray) -> None:
        """Take mean and spread from the training features (constant columns keep a spread of 1)."""
        mean = features.mean(axis=0) if len(features) else np.zeros(features.shape[1])
        std = features.std(axis=0) if len(features) else np.ones(features.shape[1])
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean) / self.std


class TabularEncoder(nn.Module):
    """Standardised features into a one-hidden-layer MLP: [batch, features] -> [batch, out_dim]."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float):
        super().__init__()
        self.out_dim = out_dim
        self.scale = Standardizer(in_dim)
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.ReLU(), nn.Dropout(dropout))

    def fit_scale(self, features: np.ndarray) -> None:
        self.scale.fit(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.scale(features))


class FeatureTokenizer(nn.Module):
    """Each standardised feature becomes a token: value * its own vector + its own bias.

    [batch, features] -> [batch, features, dim]. The per-feature vectors tell attention which
    feature a token is, so a token can look for the text that bears on that feature.
    """

    def __init__(self, num_features: int, dim: int):
        super().__init__()
        self.num_features = num_features
        self.out_dim = dim
        self.scale = Standardizer(num_features)
        self.weight = nn.Parameter(torch.empty(num_features, dim))
        self.bias = nn.Parameter(torch.empty(num_features, dim))
        bound = dim**-0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def fit_scale(self, features: np.ndarray) -> None:
        self.scale.fit(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale(features).unsqueeze(-1) * self.weight + self.bias
