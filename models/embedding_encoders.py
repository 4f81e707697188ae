"""Text encoders on word embeddings that start from the transformer's embedding matrix:
``CnnChunkEncoder`` (``multimodal_cnn``) and ``LstmChunkEncoder`` (``lstm``).

Same contract as ``models.text_encoders``: chunked ids and masks in, a ``TextEncoding`` out, and
padded tokens or chunks never change a sample's output.
"""

from __future__ import annotations

import torch
from torch import nn

from models.text_encoders import TextEncoding, encode_chunks, masked_mean


def word_embedding(matrix: torch.Tensor, trainable: bool) -> nn.Embedding:
    """An embedding table initialised from ``matrix`` (copied: encoders never share storage)."""
    return nn.Embedding.from_pretrained(matrix.detach().clone().float(), freeze=not trainable)


class CnnChunkEncoder(nn.Module):
    """Word embeddings -> one branch of ``len(channels)`` stacked 1-D convolutions per kernel
    width -> max over each chunk's real tokens -> the branches concatenated.

    Padded positions are zeroed before every convolution, so they act exactly like the
    convolution's own zero padding; after ReLU every value is >= 0, so zeroed padding never wins
    the max over a chunk's tokens.
    """

    def __init__(
        self,
        embeddings: torch.Tensor,
        *,
        kernel_sizes: list[int],
        channels: list[int],
        dropout: float,
        embeddings_trainable: bool,
    ):
        super().__init__()
        self.embedding = word_embedding(embeddings, embeddings_trainable)
        widths = [embeddings.shape[1], *channels]
        self.branches = nn.ModuleList(
            nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], k, padding="same") for i in range(len(channels)))
            for k in kernel_sizes
        )
        self.dropout = nn.Dropout(dropout)
        self.out_dim = len(kernel_sizes) * channels[-1]
        self.token_dim = self.out_dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        return encode_chunks(self._encode, input_ids, attention_mask)

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = mask.to(self.embedding.weight.dtype).unsqueeze(1)  # [n, 1, tokens]
        embedded = self.dropout(self.embedding(ids)).transpose(1, 2)  # [n, dim, tokens]
        outputs = []
        for convs in self.branches:
            x = embedded
            for conv in convs:
                x = torch.relu(conv(x * keep)) * keep
            outputs.append(x)
        states = torch.cat(outputs, dim=1)  # [n, out_dim, tokens]
        return states.transpose(1, 2), states.amax(dim=2)


def reverse_real_tokens(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse each row's real tokens in place, leaving its trailing padding where it is.

    [a, b, c, pad] -> [c, b, a, pad]. Applying it twice restores the input.
    """
    length = mask.sum(dim=1, keepdim=True)
    position = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
    source = torch.where(position < length, length - 1 - position, position)
    return values.gather(1, source.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


class BiLstmLayer(nn.Module):
    """One bidirectional LSTM layer whose backward direction starts at each row's last real token.

    ``nn.LSTM(bidirectional=True)`` would run the backward pass from the end of the padding, so
    the padding would change every state; packing sequences avoids that but does not export to
    ONNX. Reversing the real tokens, running a forward LSTM and reversing back is exact.
    """

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.forward_lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.backward_lstm = nn.LSTM(in_dim, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ahead, _ = self.forward_lstm(x)
        behind, _ = self.backward_lstm(reverse_real_tokens(x, mask))
        return torch.cat([ahead, reverse_real_tokens(behind, mask)], dim=-1)


class LstmChunkEncoder(nn.Module):
    """Word embeddings -> ``num_layers`` bidirectional LSTM layers of ``hidden`` units per
    direction -> masked mean over each chunk's real tokens."""

    def __init__(
        self, embeddings: torch.Tensor, *, hidden: int, num_layers: int, dropout: float, embeddings_trainable: bool
    ):
        super().__init__()
        self.embedding = word_embedding(embeddings, embeddings_trainable)
        dims = [embeddings.shape[1]] + [2 * hidden] * num_layers
        self.layers = nn.ModuleList(BiLstmLayer(dims[i], hidden) for i in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden
        self.token_dim = self.out_dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoding:
        return encode_chunks(self._encode, input_ids, attention_mask)

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding(ids)
        for layer in self.layers:
            x = layer(self.dropout(x), mask)
        return x, masked_mean(x, mask, dim=1)
