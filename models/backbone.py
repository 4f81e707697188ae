"""The pretrained transformer behind the text encoders, loaded once per run or rebuilt from its config.

Training loads weights from the ``tokenizer`` location (hub id or local folder). An inference
process rebuilds the same architecture from the saved Hugging Face config and then loads
``model.pth``; it never needs the original checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from contracts.errors import ConfigError

log = logging.getLogger(__name__)

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


@dataclass
class Backbone:
    """Where the transformer comes from: pretrained weights, or an architecture to fill later."""

    hf_config: PretrainedConfig
    weights: str | None  # load pretrained weights from here; None: random init, a state dict follows

    @classmethod
    def pretrained(cls, name_or_path: str) -> Backbone:
        try:
            hf_config = AutoConfig.from_pretrained(name_or_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"tokenizer {name_or_path!r} names no loadable model ({str(exc).splitlines()[0]}); "
                "set tokenizer to a local folder with config.json and weights, or a reachable hub id."
            ) from None
        return cls(hf_config, name_or_path)

    @classmethod
    def from_dict(cls, hf_config: dict[str, Any]) -> Backbone:
        return cls(AutoConfig.for_model(**hf_config), None)

    def to_dict(self) -> dict[str, Any]:
        return self.hf_config.to_dict()

    @property
    def hidden_size(self) -> int:
        return self.hf_config.hidden_size

    @property
    def max_positions(self) -> int:
        return int(getattr(self.hf_config, "max_position_embeddings", 512))

    def transformer(self) -> PreTrainedModel:
        """A fresh transformer in train mode (``from_pretrained`` returns eval mode)."""
        return self.transformer_and_loaded_names()[0]

    def transformer_and_loaded_names(self) -> tuple[PreTrainedModel, set[str]]:
        """A fresh transformer in train mode, and the names of the parameters whose values came from
        the checkpoint (none for an architecture to fill later; a checkpoint may lack some, e.g. the pooler)."""
        if self.weights is None:
            return AutoModel.from_config(self.hf_config).train(), set()
        model, info = AutoModel.from_pretrained(self.weights, output_loading_info=True)
        missing = set(info["missing_keys"])
        return model.train(), {name for name, _ in model.named_parameters() if name not in missing}

    def word_embeddings(self) -> torch.Tensor:
        """The input embedding matrix [vocab, dim], to start CNN and LSTM encoders from."""
        return self.transformer().get_input_embeddings().weight.detach().clone()
