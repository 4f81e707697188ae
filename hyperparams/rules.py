"""Rules that the configuration checks and the code that follows it both apply, stated once.

The text steps and their order are checked when the config is validated and again when a text
chain is built from step names; the width of a risk-encoded field decides both the model's input
names (``Config.tabular_feature_names``) and what the encoder produces.
"""

from __future__ import annotations

from typing import Literal, get_args

TextStepName = Literal[
    "dialogue_splitter", "html_normalizer", "emoji_remover", "text_normalizer", "dialogue_chunker", "tokenizer"
]
TEXT_STEP_NAMES: tuple[str, ...] = get_args(TextStepName)  # in their natural order
DEFAULT_TEXT_STEPS: tuple[str, ...] = TEXT_STEP_NAMES
DEFAULT_SECONDARY_TEXT_STEPS: tuple[str, ...] = (
    "dialogue_splitter",
    "text_normalizer",
    "dialogue_chunker",
    "tokenizer",
)

# Batch keys the collate sets besides the text inputs; a text key with one of these names would overwrite it.
TABULAR_KEY, LABELS_KEY, INDEX_KEY = "tabular", "labels", "index"
RESERVED_BATCH_KEYS = (TABULAR_KEY, LABELS_KEY, INDEX_KEY)


def text_step_order_problem(steps: list[str]) -> str | None:
    """What is wrong with the order of known step names, or None when it is valid."""
    if len(set(steps)) != len(steps):
        return "a step is listed twice"
    if not steps or steps[-1] != "tokenizer":
        return "tokenizer must be the last step"
    if "dialogue_splitter" in steps and steps[0] != "dialogue_splitter":
        return "dialogue_splitter must come first"
    if "dialogue_chunker" in steps and steps[-2] != "dialogue_chunker":
        return "dialogue_chunker must come right before tokenizer"
    return None


def risk_rate_columns(num_classes: int) -> int:
    """Columns a risk-encoded field becomes: the positive rate for two classes (the other rate is its
    complement), one rate per class for more."""
    return 1 if num_classes == 2 else num_classes
