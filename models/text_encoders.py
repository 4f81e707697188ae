"""Text encoders: chunked token ids -> one vector per sample (plus token states for attention).

Input is int64 ``input_ids`` and ``attention_mask`` shaped [batch, chunks, tokens]. Tokens are
padded at the end of their chunk. A padded token never changes a real token's state or a chunk's
vector, and a chunk whose mask is all zero is padding: it never counts in the sample's vector.
So a sample's output does not depend on how much padding its batch needed.

Here: the shared pooling and ``BertChunkEncoder`` (the transformer behind the BERT classes);
``models.embedding_encoders`` holds the CNN and LSTM encoders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from models.backbone import Backbone


@dataclass
class TextEncoding:
    pooled: torch.Tensor  # [batch, dim]
    tokens: torch.Tensor  # [batch, chunks * tokens, token_dim]
    token_mask: torch.Tensor  # [batch, chunks * tokens], 1 for real tokens


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean of ``values`` over ``dim`` counting only positions where ``mask`` is 1."""
    weights = mask.to(values.dtype).unsqueeze(-1)
    return (values * weights).sum(dim) / weights.sum(dim).clamp(min=1.0)


def pool_chunks(chunk_vectors: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, chunks, dim] -> [batch, dim], averaging only chunks that hold tokens."""
    chunk_mask = attention_mask.amax(dim=-1)
    return masked_mean(chunk_vectors, chunk_mask, dim=1)


ChunkFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def encode_chunks(encode: ChunkFn, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
    """Run ``encode`` over every chunk as one flat batch [batch * chunks, tokens] and pool.

    ``encode(ids, mask)`` returns token states [n, tokens, d] and chunk vectors [n, d'].
    """
    batch, chunks, length = input_ids.shape
    flat_mask = attention_mask.reshape(batch * chunks, length)
    states, chunk_vectors = encode(input_ids.reshape(batch * chunks, length), flat_mask)
    return TextEncoding(
        pooled=pool_chunks(chunk_vectors.reshape(batch, chunks, -1), attention_mask),
        tokens=states.reshape(batch, chunks * length, -1),
        token_mask=flat_mask.reshape(batch, chunks * length),
    )


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
        bert, loaded = backbone.transformer_and_loaded_names()
        # The pooler moves here: BertModel would apply it to [CLS] only, and an unused pooler
        # leaves parameters without gradients, which DDP rejects.
        loaded_pooler = getattr(bert, "pooler", None)
        self.pooler = (
            nn.Sequential(loaded_pooler.dense, nn.Tanh()) if loaded_pooler else _new_pooler(backbone.hidden_size)
        )
        self.pooler_is_pretrained = not reinit_pooler and {"pooler.dense.weight", "pooler.dense.bias"} <= loaded
        bert.pooler = None
        self.bert = bert
        self.out_dim = backbone.hidden_size
        self.token_dim = backbone.hidden_size
        if reinit_pooler:
            reinitialise(bert, self.pooler[0])
        layers = bert.encoder.layer
        for layer in list(layers)[len(layers) - min(reinit_layers, len(layers)) :]:
            reinitialise(bert, layer)
        if not embeddings_trainable:
            bert.embeddings.requires_grad_(False)
        if gradient_checkpointing:
            bert.activation_checkpointing_enable()

    def pretrained_parameters(self) -> list[nn.Parameter]:
        """The weights loaded from the checkpoint (they train at ``lr``; everything else at ``head_lr``)."""
        pooler = list(self.pooler.parameters()) if self.pooler_is_pretrained else []
        return [*self.bert.parameters(), *pooler]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        return encode_chunks(self._encode, input_ids, attention_mask)

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # An all-padding chunk would have nothing to attend to; let it see its first position so
        # its (ignored) output stays finite.
        attend = torch.cat([torch.ones_like(mask[:, :1]), mask[:, 1:]], dim=1)
        hidden = self.bert(input_ids=ids, attention_mask=attend).last_hidden_state
        return hidden, self.pooler(masked_mean(hidden, mask, dim=1))


def _new_pooler(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh())


def reinitialise(transformer: PreTrainedModel, module: nn.Module) -> None:
    """Draw ``module``'s weights afresh with the transformer's own initialiser.

    transformers 5 marks loaded tensors ``_is_hf_initialized`` and its initialiser then skips
    them, so the flag is cleared first (without that, re-initialising silently does nothing).
    """
    for param in module.parameters():
        param._is_hf_initialized = False
    module.apply(transformer._init_weights)
