"""Fusion: the modalities' encodings -> one vector for the classification head.

Every fusion takes the text encodings (one per text column, in order) and the tabular encoding
(None for text-only models) and exposes ``out_dim``. Every parameter takes part in every forward
pass, so each receives a gradient (DDP needs no unused-parameter search).
"""

from __future__ import annotations

import torch
from torch import nn

from models.text_encoders import TextEncoding

ATTENTION_HEADS = (4, 2, 1)  # the first that divides the attention width is used


def modality_vectors(texts: list[TextEncoding], tabular: torch.Tensor | None) -> list[torch.Tensor]:
    return [t.pooled for t in texts] + ([tabular] if tabular is not None else [])


class ConcatFusion(nn.Module):
    """Concatenate every modality's vector (text encoders in order, then tabular)."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.out_dim = sum(dims)

    def forward(self, texts: list[TextEncoding], tabular: torch.Tensor | None) -> torch.Tensor:
        return torch.cat(modality_vectors(texts, tabular), dim=-1)


class GateFusion(nn.Module):
    """Each modality projected to ``dim`` (linear + tanh); a gate computed from all modalities
    gives every output dimension its own weights over the modalities (softmax across them, so
    with two modalities it is ``g * a + (1 - g) * b`` with a sigmoid ``g`` per dimension)."""

    def __init__(self, dims: list[int], dim: int):
        super().__init__()
        self.projections = nn.ModuleList(nn.Sequential(nn.Linear(d, dim), nn.Tanh()) for d in dims)
        self.gate = nn.Linear(sum(dims), len(dims) * dim)
        self.out_dim = dim

    def gate_weights(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        """[batch, modalities, dim], summing to 1 over the modalities."""
        return self.gate(torch.cat(vectors, dim=-1)).unflatten(-1, (len(vectors), -1)).softmax(dim=1)

    def forward(self, texts: list[TextEncoding], tabular: torch.Tensor | None) -> torch.Tensor:
        vectors = modality_vectors(texts, tabular)
        projected = torch.stack([p(v) for p, v in zip(self.projections, vectors)], dim=1)
        return (self.gate_weights(vectors) * projected).sum(dim=1)


class MixtureOfExpertsFusion(nn.Module):
    """Several expert MLPs over the concatenated modalities, mixed per sample by a learned
    softmax router (dense routing: every expert runs, so every expert learns)."""

    def __init__(self, dims: list[int], dim: int, num_experts: int, dropout: float):
        super().__init__()
        in_dim = sum(dims)
        self.router = nn.Linear(in_dim, num_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
            for _ in range(num_experts)
        )
        self.out_dim = dim

    def routing(self, fused: torch.Tensor) -> torch.Tensor:
        """[batch, experts] weights, summing to 1 per sample."""
        return self.router(fused).softmax(dim=-1)

    def forward(self, texts: list[TextEncoding], tabular: torch.Tensor | None) -> torch.Tensor:
        fused = torch.cat(modality_vectors(texts, tabular), dim=-1)
        outputs = torch.stack([expert(fused) for expert in self.experts], dim=1)
        return (self.routing(fused).unsqueeze(-1) * outputs).sum(dim=1)


class CrossAttentionFusion(nn.Module):
    """Tabular feature tokens attend over the real token states of every text, then a
    transformer-style block (residual + LayerNorm, feed-forward) and a projection of the attended
    feature tokens; the result is concatenated with each text's pooled vector.

    Keys and values are every real token of every chunk of every text column, each column
    through its own projection; padded tokens and padded chunks are masked out.
    """

    def __init__(self, text_dims: list[int], token_dims: list[int], num_features: int, dim: int, dropout: float):
        super().__init__()
        self.keys = nn.ModuleList(nn.Linear(d, dim) for d in token_dims)
        heads = next(h for h in ATTENTION_HEADS if dim % h == 0)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attention_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.summary = nn.Sequential(nn.Linear(num_features * dim, dim), nn.ReLU())
        self.out_dim = sum(text_dims) + dim

    def attend(
        self, texts: list[TextEncoding], feature_tokens: torch.Tensor, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention output [batch, features, dim] and, if asked, the weights [batch, features,
        tokens of all texts] averaged over heads."""
        keys = torch.cat([project(t.tokens) for project, t in zip(self.keys, texts)], dim=1)
        real = torch.cat([t.token_mask for t in texts], dim=1) > 0
        # A sample without any real token (not produced by the text chain) attends to its first
        # position instead of to nothing, which would give NaN.
        real = torch.cat([real[:, :1] | ~real.any(dim=1, keepdim=True), real[:, 1:]], dim=1)
        # The mask is spelt out per head and per feature token: a key padding mask exports as an
        # ONNX Attention mask of shape [batch, 1, 1, keys], which onnxruntime refuses (it wants the
        # query axis in full).
        batch, features, heads = feature_tokens.shape[0], feature_tokens.shape[1], self.attention.num_heads
        blocked = (~real)[:, None, None, :].expand(batch, heads, features, real.shape[1])
        return self.attention(
            feature_tokens,
            keys,
            keys,
            attn_mask=blocked.reshape(batch * heads, features, -1),
            need_weights=need_weights,
        )

    def forward(self, texts: list[TextEncoding], tabular: torch.Tensor | None) -> torch.Tensor:
        attended, _ = self.attend(texts, tabular)
        h = self.attention_norm(tabular + attended)
        h = self.feed_forward_norm(h + self.feed_forward(h))
        return torch.cat([*(t.pooled for t in texts), self.summary(h.flatten(1))], dim=-1)
