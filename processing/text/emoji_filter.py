"""Emoji removal at the speed of a numpy pass, with the ``emoji`` package deciding what an emoji is.

Scanning text character by character in Python (or a regex with a class of ~1,400 code points) is
far slower than the tokenizer. Instead the text is viewed as UTF-32 code points and looked up in a
table of every non-ASCII code point that occurs in any emoji sequence; only the runs of such code
points (plus a keycap's ``#``, ``*`` or digit just before) go to ``emoji.replace_emoji``, once per
distinct run. Every emoji sequence lies inside one run, so nothing the package would remove is
missed, and text without candidates — Chinese, Arabic, accented Latin — is never touched.

What is removed: everything ``emoji`` matches (emoji, pictographs, skin tones, ZWJ sequences,
flags, keycaps), plus regional-indicator letters and tag characters left over from broken flags,
with one exception for text symbols.

The exception, exactly: a single character that ``emoji`` lists as "unqualified" (an emoji only
when U+FE0F follows it) stays when it is written without U+FE0F and lies in one of the Unicode
blocks of text symbols in ``TEXT_SYMBOL_BLOCKS``: © ® ™ ℹ Ⓜ ‼ ⁉ ↔ ↕ ↖ ↗ ↘ ↙ ↩ ↪ ⤴ ⤵ ▪ ▫ ▶ ◀ ◻ ◼
〰 〽. Product text uses them as text ("Brand™", "©2024", "A ↔ B"). With U+FE0F ("©️", "▶️")
they are emoji and go. The other unqualified characters come from the pictograph blocks
(Miscellaneous Technical, Miscellaneous Symbols, Dingbats, Miscellaneous Symbols and Arrows,
plane 1): ☺ ♥ ✔ ❤ ☀ ✈ ⌨ ⬅ ➡ and the like are pictographs whether or not U+FE0F follows, and go
either way.
"""

from __future__ import annotations

from functools import cache, lru_cache

import emoji
import numpy as np

_KEYCAP_BASES = np.frombuffer(b"#*0123456789", dtype=np.uint8).astype(np.uint32)
_LEFTOVER = {*range(0x1F1E6, 0x1F200), *range(0xE0020, 0xE0080)}  # regional indicators, tag characters
TEXT_SYMBOL_BLOCKS = (  # (first, last) code point
    (0x0080, 0x00FF),  # Latin-1 Supplement: © ®
    (0x2000, 0x206F),  # General Punctuation: ‼ ⁉
    (0x2100, 0x214F),  # Letterlike Symbols: ™ ℹ
    (0x2190, 0x21FF),  # Arrows: ↔ ↕ ↖ ↗ ↘ ↙ ↩ ↪
    (0x2460, 0x24FF),  # Enclosed Alphanumerics: Ⓜ
    (0x25A0, 0x25FF),  # Geometric Shapes: ▪ ▫ ▶ ◀ ◻ ◼
    (0x2900, 0x297F),  # Supplemental Arrows-B: ⤴ ⤵
    (0x3000, 0x303F),  # CJK Symbols and Punctuation: 〰 〽
)


@cache
def _candidates() -> np.ndarray:
    """A table over all code points: True where the code point occurs in some emoji sequence."""
    table = np.zeros(0x110000, dtype=bool)
    table[[ord(ch) for seq in emoji.EMOJI_DATA for ch in seq if not ch.isascii()]] = True
    table[list(_LEFTOVER)] = True
    return table


@cache
def text_style_symbols() -> frozenset[str]:
    """The characters that stay when written without U+FE0F (see the module docstring)."""
    unqualified = emoji.STATUS["unqualified"]
    return frozenset(
        ch
        for ch, data in emoji.EMOJI_DATA.items()
        if len(ch) == 1 and data["status"] == unqualified and _in_text_symbol_block(ch)
    )


def _in_text_symbol_block(ch: str) -> bool:
    return any(first <= ord(ch) <= last for first, last in TEXT_SYMBOL_BLOCKS)


def _keep_text_symbol(chars: str, data: dict) -> str:
    return chars if chars in text_style_symbols() else ""


@lru_cache(maxsize=1 << 16)
def _clean_run(run: str) -> str:
    cleaned = emoji.replace_emoji(run, replace=_keep_text_symbol)
    return "".join(ch for ch in cleaned if ord(ch) not in _LEFTOVER)


def remove_emoji(text: str) -> str:
    """``text`` without emoji; any other character, NUL included, is left where it was."""
    if text.isascii():
        return text
    code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    non_ascii = np.flatnonzero(code_points > 0x7F)
    hits = non_ascii[_candidates()[code_points[non_ascii]]]
    if not hits.size:
        return text
    breaks = np.flatnonzero(np.diff(hits) != 1) + 1
    starts = hits[np.concatenate(([0], breaks))]
    stops = hits[np.concatenate((breaks - 1, [hits.size - 1]))] + 1
    keycap = (starts > 0) & np.isin(code_points[np.maximum(starts - 1, 0)], _KEYCAP_BASES)
    starts = starts - keycap
    pieces, position = [], 0
    for start, stop in zip(starts.tolist(), stops.tolist()):
        pieces.append(text[position:start])
        pieces.append(_clean_run(text[start:stop]))
        position = stop
    pieces.append(text[position:])
    return "".join(pieces)
