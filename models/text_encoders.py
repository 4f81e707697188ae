"""Text encoders: chunked token ids -> one vector per sample (plus token states for attention).

Input is int64 ``input_ids`` and ``attention_mask`` shaped [batch, chunks, tokens]. A chunk whose
mask is all zero is padding: it never counts in the sample's vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.backbone import Backbone


@dataclass
class TextEncoding:
    pooled: torch.Tensor  # [batch, dim]
    tokens: torch.Tensor  # [batch, chunks * tokens, dim]
    token_mask: torch.Tensor  # [batch, chunks * tokens], 1 for real tokens


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``values`` over ``dim`` counting only positions where ``mask`` is 1."""
    weights = mask.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


def pool_chunks(chunk_vectors: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, chunks, dim] -> [batch, dim], averaging only chunks that hold tokens."""
    chunk_mask = attention_mask.amax(dim=-1)
    return masked_mean(chunk_vectors, chunk_mask, dim=1)


class BertChunkEncoder(nn.Module):
    """A BERT over every chunk; a chunk is the masked mean of its token states through the pooler
    (dense + tanh), and a sample is the mean of its real chunks."""

    def __init__(
        self,
        backbone: Backbone,
        *,
        reinit_pooler: bool,
        reinit_layers: int,
        embeddings_trainable: bool,
        gradient_checkpointing: bool,
    ):
        super().__init__()
        bert = backbone.transformer()
        # The pooler moves here: BertModel would apply it to [CLS] only, and an unused pooler
        # leaves parameters without gradients, which DDP rejects.
        self.pooler = nn.Sequential(bert.pooler.dense, nn.Tanh()) if getattr(bert, "pooler", None) else _new_pooler(backbone.hidden_size)
        bert.pooler = None
        self.bert = bert
        self.out_dim = backbone.hidden_size
        if reinit_pooler:
            self.pooler[0].reset_parameters()
        layers = bert.encoder.layer
        for layer in list(layers)[len(layers) - min(reinit_layers, len(layers)) :]:
            layer.apply(bert._init_weights)
        if not embeddings_trainable:
            bert.embeddings.requires_grad_(False)
        if gradient_checkpointing:
            bert.gradient_checkpointing_enable()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        batch, chunks, length = input_ids.shape
        flat_ids = input_ids.reshape(batch * chunks, length)
        flat_mask = attention_mask.reshape(batch * chunks, length)
        # An all-padding chunk would have nothing to attend to; let it see its first position so
        # its (ignored) output stays finite.
        attend = torch.cat([torch.ones_like(flat_mask[:, :1]), flat_mask[:, 1:]], dim=1)
        hidden = self.bert(input_ids=flat_ids, attention_mask=attend).last_hidden_state
        chunk_vectors = self.pooler(masked_mean(hidden, flat_mask, dim=1)).reshape(batch, chunks, -1)
        return TextEncoding(
            pooled=pool_chunks(chunk_vectors, attention_mask),
            tokens=hidden.reshape(batch, chunks * length, -1),
            token_mask=attention_mask.reshape(batch, chunks * length),
        )


def _new_pooler(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
