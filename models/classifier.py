"""The one classifier shape behind every model_class:
text encoder(s) -> encodings; tabular encoder -> vector or feature tokens (None for text-only
models); fusion -> one vector; head -> class logits."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from processing.dataset import TextKeys


class Classifier(nn.Module):
    def __init__(
        self,
        text_encoders: Mapping[str, nn.Module],
        tabular: nn.Module | None,
        fusion: nn.Module,
        num_classes: int,
        hidden_dim: int,
        dropout: float,
        keys: TextKeys,
    ):
        super().__init__()
        self.text_encoders = nn.ModuleDict(dict(text_encoders))
        self.tabular = tabular
        self.fusion = fusion
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(fusion.out_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, num_classes),
        )
        self.keys = keys

    @property
    def input_names(self) -> list[str]:
        """The batch keys this model reads, in a fixed order (the ONNX input order)."""
        names = [key for role in self.text_encoders for key in self.keys.for_role(role)]
        return names + (["tabular"] if self.tabular is not None else [])

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        texts = []
        for role, encoder in self.text_encoders.items():
            ids_key, mask_key = self.keys.for_role(role)
            texts.append(encoder(inputs[ids_key], inputs[mask_key]))
        tabular = self.tabular(inputs["tabular"]) if self.tabular is not None else None
        return self.head(self.fusion(texts, tabular))
