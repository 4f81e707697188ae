"""Fusion: modality vectors -> one vector for the classification head."""

from __future__ import annotations

import torch
from torch import nn

from models.text_encoders import TextEncoding


class ConcatFusion(nn.Module):
    """Concatenate every modality's vector (text encoders in order, then tabular)."""

    def __init__(self, text_dims: list[int], tabular_dim: int):
        super().__init__()
        self.out_dim = sum(text_dims) + tabular_dim

    def forward(self, texts: list[TextEncoding], tabular: torch.Tensor | None) -> torch.Tensor:
        parts = [t.pooled for t in texts]
        if tabular is not None:
            parts.append(tabular)
        return torch.cat(parts, dim=-1)
