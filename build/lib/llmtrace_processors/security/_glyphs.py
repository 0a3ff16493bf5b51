"""Character tables for :mod:`processors.security.normalize` (constants only).

``HOMOGLYPHS`` maps letters that look like Latin letters, and that NFKC leaves alone, to
the Latin letter: Cyrillic, Greek and Armenian look-alikes, small capitals and enclosed
(squared, negative circled, regional-indicator) letters. Fullwidth and mathematical
letters need no entry: NFKC maps them.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["HOMOGLYPHS", "INVISIBLE_CHARS", "OTHER_SPACES", "PUNCTUATION"]


def _ranges(*pairs: tuple[int, int]) -> str:
    return "".join(chr(cp) for lo, hi in pairs for cp in range(lo, hi + 1))


#: Characters that render as nothing: zero-width, bidi controls, soft hyphen, fillers,
#: variation selectors, the tag-block begin/cancel marks. (Tag *letters*
#: U+E0020..E007E are not here: the normaliser shows them as the ASCII they encode.)
INVISIBLE_CHARS = _ranges(
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors, vowel separator
    (0x200B, 0x200F),  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x206F),  # bidi isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # BOM / zero-width no-break space
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0x1D173, 0x1D17A),  # musical formatting controls
    (0xE0001, 0xE0001),  # language tag
    (0xE007F, 0xE007F),  # cancel tag
    (0xE0100, 0xE01EF),  # variation selectors supplement
)

#: Non-ASCII whitespace (folded like ASCII whitespace), braille blank included.
OTHER_SPACES = _ranges(
    (0x00A0, 0x00A0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x2800, 0x2800),
    (0x3000, 0x3000),
)

_PAIRS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ь": "b", "һ": "h", "ӏ": "l",
    "ү": "y", "ѵ": "v",
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "І": "I", "Ї": "I", "Ј": "J", "К": "K",
    "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X",
    "Ѕ": "S", "Ԛ": "Q", "Ԝ": "W", "Ү": "Y", "Ӏ": "I", "Ѵ": "V",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Armenian
    "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n",
    # Latin look-alikes and small capitals
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ǀ": "l", "ɩ": "i",
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ғ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ǫ": "q", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y",
    "ᴢ": "z",
}


def _enclosed() -> dict[str, str]:
    out: dict[str, str] = {}
    for base in (0x1F130, 0x1F150, 0x1F170, 0x1F1E6):  # squared, neg. circled, neg. squared, RI
        for i in range(26):
            out[chr(base + i)] = chr(ord("A") + i)
    return out


HOMOGLYPHS = MappingProxyType({**_PAIRS, **_enclosed()})

#: Typographic punctuation mapped to ASCII so patterns can spell ``don't`` and ``"`` once.
PUNCTUATION = MappingProxyType(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u02bc": "'",
        "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u00ab": '"',
        "\u00bb": '"', "\u2033": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-",
    }
)
