"""Text steps that work on messages: split a dialogue, strip HTML, drop emoji, normalise.

Every step rewrites a :class:`~processing.text.messages.Messages` batch (the messages of many
samples, flat); steps compose with ``>>``. Speed comes from never scanning text in Python: a
C-speed ``str`` check (``"<" in text``, ``isascii()``, ``isprintable()``) skips the messages a
step cannot change, and the HTML and emoji steps join the rest with NUL into one string, so one
regex, one ``html.unescape`` or one numpy pass covers the whole batch (:func:`rewrite_joined`).
Their patterns treat NUL as a wall they never match across, which keeps the result identical to
cleaning message by message.
"""

from __future__ import annotations

import html
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable
from itertools import compress, repeat

from processing.text.emoji_filter import remove_emoji
from processing.text.messages import Messages, TextStep

SEPARATOR = "\x00"


def rewrite_joined(texts: list[str], needs: Iterable[bool], rewrite: Callable[[str], str]) -> list[str]:
    """``rewrite`` applied to the texts flagged by ``needs``, all at once on their NUL-joined string.

    ``rewrite`` must leave every NUL in place and never match across one. Texts that hold a NUL
    of their own are rewritten one by one instead.
    """
    picked = list(compress(range(len(texts)), needs))
    if not picked:
        return texts
    joined = SEPARATOR.join([texts[i] for i in picked])
    if joined.count(SEPARATOR) == len(picked) - 1:
        results = rewrite(joined).split(SEPARATOR)
    else:
        results = [rewrite(texts[i]) for i in picked]
    out = list(texts)
    for i, result in zip(picked, results):
        out[i] = result
    return out


def _containing(texts: list[str], needle: str) -> Iterable[bool]:
    return map(operator.contains, texts, repeat(needle))


def _not_ascii(texts: list[str]) -> Iterable[bool]:
    return map(operator.not_, map(str.isascii, texts))


class MessageStep(TextStep):
    """A step that rewrites every message on its own; the sample structure is unchanged."""

    def clean_all(self, texts: list[str]) -> list[str]:
        raise NotImplementedError

    def clean(self, text: str) -> str:
        return self.clean_all([text])[0]

    def apply(self, messages: Messages) -> Messages:
        return Messages(self.clean_all(messages.texts), messages.counts)


class DialogueSplitter(TextStep):
    """``[bom] ... [eom]`` marked messages become separate messages.

    Markers match in any letter case, with spaces or newlines inside the brackets and around
    them. Text outside markers is a message of its own, text without markers is one message, and
    empty messages are dropped; a sample left with no message (empty or missing text) keeps one
    empty message.
    """

    name = "dialogue_splitter"
    _marker = re.compile(r"\[\s*(?:bom|eom)\s*\]", re.IGNORECASE)

    def apply(self, messages: Messages) -> Messages:
        split, texts = self._marker.split, messages.texts
        out: list[str] = []
        counts: list[int] = []
        position = 0
        for count in messages.counts:
            before = len(out)
            for text in texts[position : position + count]:
                for part in split(text) if "[" in text else (text,):
                    part = part.strip()
                    if part:
                        out.append(part)
            position += count
            if len(out) == before:
                out.append("")
            counts.append(len(out) - before)
        return Messages(out, counts)


_BLOCK_TAGS = (
    "address|article|aside|blockquote|br|dd|div|dl|dt|fieldset|figcaption|figure|footer|form|h[1-6]|header|hr|"
    "li|main|nav|ol|p|pre|section|table|tbody|td|tfoot|th|thead|tr|ul"
)
# inside a tag: anything but < > NUL; quoted values may hold '>'; a stray quote is just a character
_TAG_BODY = r"""(?:[^<>"'\x00]|"[^"<\x00]*"|'[^'<\x00]*'|["'])*+"""


class HtmlNormalizer(MessageStep):
    """Tags removed (block tags leave a space so words don't merge), script/style dropped with
    their content, comments dropped, entities unescaped after the tags are gone so ``&lt;b&gt;``
    stays visible text. A ``<`` that starts no tag (``1 < 2``) is text."""

    name = "html_normalizer"
    _hidden = re.compile(r"<(script|style)\b[^>\x00]*>[^\x00]*?(?:</\1\s*>|(?=\x00)|\Z)", re.IGNORECASE)
    _comment = re.compile(r"<!--[^\x00]*?(?:-->|(?=\x00)|\Z)|<[!?][^<>\x00]*>")  # and <!DOCTYPE>, <?xml?>
    _block = re.compile(rf"</?(?:{_BLOCK_TAGS})\b{_TAG_BODY}>", re.IGNORECASE)
    _tag = re.compile(rf"</?[a-zA-Z]{_TAG_BODY}>")

    def clean_all(self, texts: list[str]) -> list[str]:
        texts = rewrite_joined(texts, _containing(texts, "<"), self._strip_tags)
        return rewrite_joined(texts, _containing(texts, "&"), html.unescape)

    def _strip_tags(self, text: str) -> str:
        text = self._hidden.sub(" ", text)
        text = self._comment.sub(" ", text)
        text = self._block.sub(" ", text)
        return self._tag.sub("", text)


class EmojiRemover(MessageStep):
    """Emoji, pictographs, skin tones, ZWJ sequences and flags removed; every script kept.

    The ``emoji`` package decides what an emoji is; see :mod:`processing.text.emoji_filter` for
    how it stays fast and for the one exception (text symbols such as © ® ™ ↔ written without U+FE0F).
    """

    name = "emoji_remover"

    def clean_all(self, texts: list[str]) -> list[str]:
        return rewrite_joined(texts, _not_ascii(texts), remove_emoji)


class TextNormalizer(MessageStep):
    """Unicode NFKC, control characters and invisible format marks removed, whitespace collapsed
    to single spaces and trimmed; lower-cased only for an uncased tokenizer (a cased model must see
    the case it was trained on).

    Control characters (C0/C1) and zero-width spaces become spaces, since they usually stood for a
    break; soft hyphens, bidi marks, word joiners and byte-order marks are deleted, since they sit
    inside words. Zero-width joiners stay: several scripts need them.
    """

    name = "text_normalizer"
    _control = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u200b]")
    _invisible = re.compile(r"[\xad\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def clean_all(self, texts: list[str]) -> list[str]:
        return [self._normalize(text) for text in texts]

    def _normalize(self, text: str) -> str:
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        if text.isprintable():  # False for every control, format mark and whitespace but " "
            while "  " in text:
                text = text.replace("  ", " ")
            if text[:1] == " " or text[-1:] == " ":
                text = text.strip(" ")
        else:
            text = " ".join(self._control.sub(" ", self._invisible.sub("", text)).split())
        return text.lower() if self.lowercase else text

    def __repr__(self) -> str:
        return f"TextNormalizer(lowercase={self.lowercase})"


CLEANING_STEPS: dict[str, Callable[..., TextStep]] = {
    DialogueSplitter.name: DialogueSplitter,
    HtmlNormalizer.name: HtmlNormalizer,
    EmojiRemover.name: EmojiRemover,
    TextNormalizer.name: TextNormalizer,
}
