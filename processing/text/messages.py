"""The text chain's base types: a batch of messages, a step that rewrites it, and steps in sequence.

Nothing here imports the rest of the chain: the cleaning steps build on these types, and the
pipeline joins a sequence of steps to the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

Batch = list[list[str]]  # per sample, its messages


@dataclass
class Messages:
    """The messages of many samples, back to back: ``counts[i]`` of them belong to sample ``i``."""

    texts: list[str]
    counts: list[int]

    @classmethod
    def from_batch(cls, batch: Batch) -> Messages:
        return cls([text for messages in batch for text in messages], [len(messages) for messages in batch])

    @classmethod
    def one_per_sample(cls, texts: Sequence[str | None]) -> Messages:
        """Raw cells, each one message; a missing cell (None, NaN, pd.NA) is an empty message."""
        return cls([as_text(t) for t in texts], [1] * len(texts))

    def to_batch(self) -> Batch:
        batch, start = [], 0
        for count in self.counts:
            batch.append(self.texts[start : start + count])
            start += count
        return batch

    def without_empty(self) -> Messages:
        """Empty messages dropped; a sample left with none keeps one empty message."""
        if all(self.counts) and all(self.texts):
            return self
        texts, counts, start = [], [], 0
        for count in self.counts:
            kept = [text for text in self.texts[start : start + count] if text] or [""]
            texts.extend(kept)
            counts.append(len(kept))
            start += count
        return Messages(texts, counts)


class TextStep:
    """A named rewrite of the messages of a batch of samples; steps compose with ``>>``.

    Called on a batch (each sample's messages), a step or a composition returns the rewritten batch.
    """

    name: str = ""

    def apply(self, messages: Messages) -> Messages:
        raise NotImplementedError

    def __call__(self, batch: Batch) -> Batch:
        return self.apply(Messages.from_batch(batch)).to_batch()

    def __rshift__(self, other: TextStep) -> StepSequence:
        return StepSequence([self]) >> other

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class StepSequence(TextStep):
    """Steps applied one after the other."""

    def __init__(self, steps: Sequence[TextStep] = ()):
        self.steps = list(steps)

    def apply(self, messages: Messages) -> Messages:
        for step in self.steps:
            messages = step.apply(messages)
        return messages

    def __rshift__(self, other: TextStep) -> StepSequence:
        more = other.steps if isinstance(other, StepSequence) else [other]
        return StepSequence([*self.steps, *more])

    def __repr__(self) -> str:
        return " >> ".join(repr(s) for s in self.steps)


def as_text(value: object) -> str:
    """A cell as text: missing (None, NaN, pd.NA) is empty, anything else its str()."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)
