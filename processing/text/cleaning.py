"""Text steps that work on messages: split a dialogue, strip HTML, drop emoji, normalise.

Every step takes and returns a batch: one list of messages per sample. They are composable with
``>>`` into a :class:`~processing.text.pipeline.TextPipeline`. Each step has a fast path for text
it cannot change (no markers, no ``<`` or ``&``, pure ASCII), which is most real text.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable

import emoji

Messages = list[str]
Batch = list[Messages]


class TextStep:
    """A named transformation of a batch of samples, each a list of messages."""

    name: str = ""

    def __call__(self, batch: Batch) -> Batch:
        raise NotImplementedError

    def __rshift__(self, other: TextStep):
        from processing.text.pipeline import TextPipeline

        return TextPipeline([self]) >> other

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MessageStep(TextStep):
    """A step that rewrites every message on its own."""

    def clean(self, message: str) -> str:
        raise NotImplementedError

    def __call__(self, batch: Batch) -> Batch:
        clean = self.clean
        return [[clean(m) for m in messages] for messages in batch]


class DialogueSplitter(TextStep):
    """``[bom] ... [eom]`` marked messages become separate messages.

    Markers match in any letter case, with spaces inside the brackets. Text outside markers is a
    message of its own, text without markers is one message, and empty messages are dropped; a
    sample that ends up with no message keeps one empty message.
    """

    name = "dialogue_splitter"
    _marker = re.compile(r"\[\s*(bom|eom)\s*\]", re.IGNORECASE)

    def __call__(self, batch: Batch) -> Batch:
        return [self._split_sample(messages) for messages in batch]

    def _split_sample(self, messages: Messages) -> Messages:
        out = [part for message in messages for part in self.split(message)]
        return out or [""]

    def split(self, text: str) -> Messages:
        if "[" not in text:
            stripped = text.strip()
            return [stripped] if stripped else []
        pieces = self._marker.split(text)
        # re.split with one group alternates text and marker names: [text, marker, text, ...]
        parts = [pieces[0], *pieces[2::2]]
        return [p.strip() for p in parts if p.strip()]


_BLOCK_TAGS = (
    "address|article|aside|blockquote|br|dd|div|dl|dt|fieldset|figcaption|figure|footer|form|h[1-6]|header|hr|"
    "li|main|nav|ol|p|pre|section|table|tbody|td|tfoot|th|thead|tr|ul"
)


class HtmlNormalizer(MessageStep):
    """Tags removed (block tags leave a space so words don't merge), script/style dropped,
    entities unescaped after the tags are gone so ``&lt;b&gt;`` stays visible text."""

    name = "html_normalizer"
    _hidden = re.compile(r"<(script|style)\b[^>]*>.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
    _comment = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
    _block = re.compile(rf"</?(?:{_BLOCK_TAGS})\b[^<>]*>", re.IGNORECASE)
    _tag = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>")

    def clean(self, message: str) -> str:
        if "<" in message:
            message = self._hidden.sub(" ", message)
            message = self._comment.sub(" ", message)
            message = self._block.sub(" ", message)
            message = self._tag.sub("", message)
        if "&" in message:
            message = html.unescape(message)
        return message


def _emoji_code_point_class() -> str:
    """A character class of every non-ASCII code point that occurs in an emoji sequence."""
    code_points = sorted({ord(ch) for seq in emoji.EMOJI_DATA for ch in seq if not ch.isascii()})
    ranges: list[list[int]] = []
    for cp in code_points:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(
        re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges
    )


class EmojiRemover(MessageStep):
    """Emoji, pictographs, skin tones, ZWJ sequences and flags removed; all other scripts kept.

    The ``emoji`` package decides what an emoji is. A character class built from its data finds
    candidate runs quickly, and only those runs are handed to ``emoji.replace_emoji`` — so a
    zero-width joiner inside Sinhala text, or a digit, survives unless it is part of an emoji.
    """

    name = "emoji_remover"
    _candidates = re.compile(f"[#*0-9]?[{_emoji_code_point_class()}]+")

    def clean(self, message: str) -> str:
        if message.isascii():
            return message
        return self._candidates.sub(_replace_emoji_run, message)


def _replace_emoji_run(match: re.Match) -> str:
    return emoji.replace_emoji(match.group(), "")


class TextNormalizer(MessageStep):
    """Unicode NFKC, control characters removed, whitespace collapsed; lower-cased only for an
    uncased tokenizer (a cased model must see the case it was trained on)."""

    name = "text_normalizer"
    _space = re.compile(r"\s+")
    _control = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def clean(self, message: str) -> str:
        if not message.isascii():
            message = unicodedata.normalize("NFKC", message)
        message = self._control.sub(" ", message)
        message = self._space.sub(" ", message).strip()
        return message.lower() if self.lowercase else message

    def __repr__(self) -> str:
        return f"TextNormalizer(lowercase={self.lowercase})"


CLEANING_STEPS: dict[str, Callable[..., TextStep]] = {
    DialogueSplitter.name: DialogueSplitter,
    HtmlNormalizer.name: HtmlNormalizer,
    EmojiRemover.name: EmojiRemover,
    TextNormalizer.name: TextNormalizer,
}
