"""Loading the fast tokenizer named by the ``tokenizer`` hyperparameter."""

from __future__ import annotations

from transformers import AutoTokenizer

from contracts.errors import ConfigError
from hyperparams.config import Config


def load_tokenizer(name_or_path: str):
    """The fast tokenizer at a local folder or hub id; a clear ConfigError when it cannot load."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, use_fast=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"tokenizer {name_or_path!r} could not be loaded ({str(exc).splitlines()[0]}); "
            "set tokenizer to a local folder with the tokenizer files, or a hub id reachable from the job."
        ) from None
    if not tokenizer.is_fast:
        raise ConfigError(
            f"tokenizer {name_or_path!r} has no fast (Rust) version; use a model that ships tokenizer.json."
        )
    return tokenizer


def check_sequence_limit(config: Config, tokenizer, max_positions: int) -> None:
    """max_sen_len must fit both the tokenizer's limit and the model's position embeddings."""
    limit = int(min(getattr(tokenizer, "model_max_length", None) or max_positions, max_positions))
    if config.max_sen_len > limit:
        raise ConfigError(
            f"max_sen_len is {config.max_sen_len} but {config.tokenizer!r} takes at most {limit} tokens per chunk; "
            f"set max_sen_len to {limit} or less."
        )
