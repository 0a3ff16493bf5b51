"""Text normalisation for detectors: defeat the cheap obfuscations before matching.

:func:`normalize` returns a :class:`NormalizedText`: the text after

* NFKC (fullwidth ``ｉｇｎｏｒｅ``, mathematical ``𝐢𝐠𝐧𝐨𝐫𝐞``, ligatures, circled letters),
* invisible characters removed (zero-width, bidi embeddings/overrides/isolates, soft
  hyphen, variation selectors, fillers) and stray combining marks on Latin letters
  dropped (Zalgo text),
* Unicode *tag* characters (U+E0020..E007E, "ASCII smuggling") shown as the ASCII they
  encode,
* look-alike letters mapped to Latin (Cyrillic/Greek/Armenian homoglyphs, small capitals,
  enclosed letters) inside words that read as Latin (a word with an ASCII letter, or made
  of look-alikes only), so real Russian or Greek words stay as they are; typographic
  quotes, apostrophes and dashes mapped to ASCII,
* whitespace folded: a run of whitespace becomes one space, or one ``\\n`` when the run
  contains a line break (line structure is kept for delimiter detection).

Case is kept; detectors match case-insensitively. Offsets stay meaningful: every change
is recorded, and :meth:`NormalizedText.to_original` maps a ``[start, end)`` span of the
normalised text back to the span of the original text it came from.

:func:`decode_payloads` finds encoded payloads (base64, hex, binary, percent-encoding,
Morse, ROT13, reversed text, Pig Latin, leetspeak, letter-spaced text) and returns their
decoded text with the span they occupy. :func:`scan_variants` puts both together: the
normalised text first, then every decoded payload (normalised, nested up to two levels).
A detector runs its patterns over each variant and maps a match back with
:meth:`TextVariant.to_original`: a match inside a decoded payload maps to the whole
encoded span in the original text.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from llmtrace_processors.security._ciphers import quoted_ciphers, segment_words
from llmtrace_processors.security._glyphs import (
    HOMOGLYPHS,
    INVISIBLE_CHARS,
    OTHER_SPACES,
    PUNCTUATION,
)

__all__ = [
    "PLAIN",
    "DecodedPayload",
    "NormalizedText",
    "TextVariant",
    "decode_payloads",
    "normalize",
    "scan_variants",
]

#: ``TextVariant.encoding`` of the normalised text itself.
PLAIN = "plain"

# Combining marks that attach to Latin letters (diacritics, overlays, Zalgo).
_COMBINING_BLOCKS = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
                     (0xFE20, 0xFE2F))
_ASCII_WS = "\t\n\v\f\r\x1c\x1d\x1e\x1f"
_WS = _ASCII_WS + "\x85" + OTHER_SPACES  # every space but the plain ASCII one
# A whitespace run that is not a lone ASCII space, or a run of other non-ASCII characters
# (invisible characters and homoglyphs are mapped there, character by character).
_SPECIAL = re.compile(f"(?P<ws>[ {_WS}]{{2,}}|[{_WS}])|(?P<na>[^\\x00-\\x7f]+)")
_WS_RUNS = re.compile(f"(?P<ws>[ {_WS}]{{2,}}|[{_WS}])")
_ASCII_NEEDS_WORK = re.compile(f"[{_ASCII_WS}]|  ")
_INVISIBLE = frozenset(INVISIBLE_CHARS)
# Characters that send a non-ASCII run through the per-character path.
_PLAIN_RUN = frozenset(
    INVISIBLE_CHARS
    + "".join(HOMOGLYPHS)
    + "".join(PUNCTUATION)
    + "".join(chr(c) for lo, hi in _COMBINING_BLOCKS for c in range(lo, hi + 1))
    + "".join(chr(c) for c in range(0xE0020, 0xE007F))
)
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A normalised text and the map back to the original.

    ``_spans`` lists every replaced stretch as ``(norm_start, norm_end, orig_start,
    orig_end)``, sorted; outside them normalised and original characters correspond one
    to one. The counters are obfuscation signals a detector may weigh.
    """

    text: str
    original: str
    invisible_removed: int = 0
    homoglyphs_mapped: int = 0
    tag_chars: int = 0
    _spans: tuple[tuple[int, int, int, int], ...] = field(default=(), repr=False)
    _starts: tuple[int, ...] = field(default=(), repr=False)

    @property
    def changed(self) -> bool:
        return bool(self._spans)

    @property
    def obfuscated(self) -> bool:
        """True when the text used invisible characters, homoglyphs or tag characters."""
        return bool(self.invisible_removed or self.homoglyphs_mapped or self.tag_chars)

    def _orig(self, index: int, *, end: bool) -> int:
        if not self._spans:
            return index
        i = bisect_right(self._starts, index) - 1
        if end:  # the span containing the last character, index - 1
            i = bisect_right(self._starts, index - 1) - 1
        if i < 0:
            return index
        n_start, n_end, o_start, o_end = self._spans[i]
        if end:
            if index <= n_end:
                return o_end if index > n_start else o_start
            return o_end + (index - n_end)
        if index < n_end:
            return o_start
        return o_end + (index - n_end)

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The ``[start, end)`` span of :attr:`original` that normalised ``[start, end)``
        came from (a replaced stretch maps to all of its source characters)."""
        if end <= start:
            pos = self._orig(start, end=False)
            return pos, pos
        return self._orig(start, end=False), self._orig(end, end=True)


class _Builder:
    __slots__ = ("homoglyphs", "invisible", "out", "pos", "spans", "tags", "word")

    def __init__(self) -> None:
        self.out: list[str] = []
        self.pos = 0  # length of the normalised text so far
        self.spans: list[tuple[int, int, int, int]] = []
        self.invisible = 0
        self.homoglyphs = 0
        self.tags = 0
        # (start, end, is Latin) of the last word judged by _latin_word: every look-alike
        # in one word shares the verdict, so a long word is read once, not once a letter.
        self.word: tuple[int, int, bool] = (0, 0, False)

    def copy(self, text: str) -> None:
        self.out.append(text)
        self.pos += len(text)

    def replace(self, orig_start: int, orig_end: int, text: str) -> None:
        self.out.append(text)
        self.spans.append((self.pos, self.pos + len(text), orig_start, orig_end))
        self.pos += len(text)


def _fold_whitespace(run: str) -> str:
    return "\n" if any(c in _LINE_BREAKS for c in run) else " "


def _latin_word(text: str, index: int, builder: _Builder) -> bool:
    """:func:`_is_latin_word` for the word around ``index``, judged once per word."""
    start, end, latin = builder.word
    if start <= index < end:
        return latin
    start, end = _word_bounds(text, index)
    latin = _is_latin_word(text[start:end], text[max(0, start - 40) : end + 40])
    builder.word = (start, end, latin)
    return latin


def _word_bounds(text: str, index: int) -> tuple[int, int]:
    n = len(text)
    start = index
    while start > 0 and _in_word(text[start - 1]):
        start -= 1
    end = index + 1
    while end < n and _in_word(text[end]):
        end += 1
    return start, end


def _is_latin_word(word: str, window: str) -> bool:
    """Whether ``word`` reads as Latin: it has an ASCII letter, or every letter in it is a
    Latin look-alike and the ``window`` of text around it is more Latin than not. Russian
    or Greek words are left alone."""
    if any(c.isascii() and c.isalpha() for c in word):
        return True
    if not all(
        c in HOMOGLYPHS or not c.isalpha() or unicodedata.normalize("NFKC", c).isascii()
        for c in word
    ):
        return False
    # made of look-alikes only ("ѕуѕтем", but also Russian "все"): Latin if the text
    # around it is more Latin than not
    latin = sum(1 for c in window if c.isascii() and c.isalpha())
    foreign = sum(1 for c in window if c.isalpha() and not c.isascii() and c not in HOMOGLYPHS)
    return latin >= foreign


def _in_word(char: str) -> bool:
    return char.isalpha() or char in _INVISIBLE or bool(unicodedata.combining(char))


def _map_cluster(text: str, index: int, cluster: str, builder: _Builder) -> str:
    """One base character (at ``text[index]``) and its combining marks, normalised."""
    first = cluster[0]
    cp = ord(first)
    if 0xE0020 <= cp <= 0xE007E:  # tag characters: invisible ASCII
        builder.tags += 1
        return chr(cp - 0xE0000)
    if first in _INVISIBLE:
        builder.invisible += 1
        return ""
    mapped = unicodedata.normalize("NFKC", cluster) if not cluster.isascii() else cluster
    out: list[str] = []
    latin: bool | None = None
    for char in mapped:
        if char in _INVISIBLE:
            builder.invisible += 1
            continue
        glyph = HOMOGLYPHS.get(char)
        if glyph is not None and latin is None:
            latin = _latin_word(text, index, builder)
        if glyph is not None and latin:
            builder.homoglyphs += 1
            out.append(glyph)
        elif char in PUNCTUATION:
            out.append(PUNCTUATION[char])
        elif out and out[-1].isascii() and unicodedata.category(char) == "Mn":
            builder.invisible += 1  # a stray mark on a Latin letter (Zalgo)
        elif char.isspace():
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def _map_run(text: str, offset: int, end: int, builder: _Builder) -> None:
    run = text[offset:end]
    if _PLAIN_RUN.isdisjoint(run) and unicodedata.is_normalized("NFKC", run):
        builder.copy(run)  # ordinary non-ASCII text (umlauts, CJK): nothing to map
        return
    i = 0
    n = len(run)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(run[j]):
            j += 1
        cluster = run[i:j]
        mapped = _map_cluster(text, offset + i, cluster, builder)
        if mapped == cluster:
            builder.copy(cluster)
        else:
            builder.replace(offset + i, offset + j, mapped)
        i = j


def normalize(text: str) -> NormalizedText:
    """Normalise ``text`` for matching (see the module docstring); never raises."""
    if text.isascii() and _ASCII_NEEDS_WORK.search(text) is None:
        return NormalizedText(text=text, original=text)
    if text.isascii() or (_PLAIN_RUN.isdisjoint(text) and unicodedata.is_normalized("NFKC", text)):
        pattern = _WS_RUNS  # nothing to map: only whitespace to fold
    else:
        pattern = _SPECIAL
    builder = _Builder()
    last = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        if match.lastgroup == "na" and start > last and unicodedata.combining(text[start]):
            start -= 1  # take the base letter along, so the marks compose with it
        if start > last:
            builder.copy(text[last:start])
        run = text[start:end]
        if match.lastgroup == "ws":
            folded = _fold_whitespace(run)
            if folded == run:
                builder.copy(run)
            else:
                builder.replace(start, end, folded)
        else:
            _map_run(text, start, end, builder)
        last = end
    if last < len(text):
        builder.copy(text[last:])
    spans = tuple(builder.spans)
    return NormalizedText(
        text="".join(builder.out),
        original=text,
        invisible_removed=builder.invisible,
        homoglyphs_mapped=builder.homoglyphs,
        tag_chars=builder.tags,
        _spans=spans,
        _starts=tuple(s[0] for s in spans),
    )


# --- encoded payloads -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedPayload:
    """An encoded stretch ``[start, end)`` of a text and what it decodes to."""

    encoding: str
    text: str
    start: int
    end: int


_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
# Cheap pre-checks: the full patterns run only where these match. Printable ASCII bytes
# are 0x20..0x7e, so hex-encoded text has a digit 2-7 every other character.
_HEX_HINT = re.compile(r"[2-7][0-9A-Fa-f][ ,:]?(?:\\x|0x)?[2-7][0-9A-Fa-f][ ,:]?(?:\\x|0x)?[2-7]")
_LEET_HINT = re.compile(r"[0134578](?:(?<=[A-Za-z].)|(?=[A-Za-z]))")
_SPACED_HINT = re.compile(r"[ ._*-][A-Za-z][ ._*-][A-Za-z][ ._*-]")
_HEX = re.compile(
    r"(?<![0-9A-Za-z])(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[ ,:]?){8,}(?![0-9A-Za-z])"
)
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9._~+-])*(?:%[0-9A-Fa-f]{2}){3,}"
                      r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9._~+-])*")
_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]{2}")
_MORSE = re.compile(r"(?<![.\-\w])(?:[.\-]{1,7}(?: {1,3}|\s*/\s*)){3,}[.\-]{1,7}(?![.\-\w])")
_BINARY_HINT = re.compile(r"[01]{8}[ ,]?[01]{8}")
_BINARY = re.compile(r"(?<![01])(?:[01]{8}[ ,]?){4,}(?![01])")
_MORSE_CODE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g",
    "....": "h", "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n",
    "---": "o", ".--.": "p", "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u",
    "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z", "-----": "0",
    ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6",
    "--...": "7", "---..": "8", "----.": "9", ".-.-.-": ".", "--..--": ",", "..--..": "?",
}
_WORD = re.compile(r"[a-zäöüß]+")
_LETTERS = re.compile(r"[A-Za-z]+")
_LINE = re.compile(r"[^\n]+")
_LEET_TOKEN = re.compile(r"(?<![\w@$|!])(?=[\w@$|!]*[A-Za-z])(?=[\w@$|!]*[0134578@$|!])"
                         r"[\w@$|!]{3,}")
_SPACED = re.compile(r"(?<![A-Za-z])(?:[A-Za-z](?:[ ._*\-]|  )){3,}[A-Za-z](?![A-Za-z])")
_ROT13 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm",
)
_LEET = str.maketrans("0134578@$|!", "oieastbasli")
# Common English and German words (and the handful an attack is made of): a line whose
# ROT13 or reversal is full of them, while the line itself is not, is an encoded payload.
_COMMON_WORDS = frozenset(
    _WORD.findall(
        """
    a about after all also an and any are as at be because been before but by can could
    do does for from get give has have he her here his how i if in into is it its just
    know like make me more my new no not now of on one only or other our out over please
    say she so some tell than that the their them then there these they this to up us
    use was we were what when where which who will with would you your user live name
    people first
    ignore previous instructions instruction above prior system prompt rules secret
    password reveal forget disregard now act print repeat say output text message
    der die das und ist nicht ich du sie es ein eine zu mit auf für von den dem sich
    auch wie was alle alles vergiss ignoriere anweisungen vorherigen sag
    """
    )
)
_FUNCTION_WORDS = (" the ", " and ", " to ", " of ", " is ", " you ", " a ", " in ", " for ",
                   " der ", " die ", " und ", " ist ", " das ", " nicht ")
_MAX_DECODE_CHARS = 20_000  # decoded text kept per payload


def _printable(text: str) -> bool:
    """Decoded bytes that read as text: mostly printable, with letters and spaces."""
    if not text or len(text) < 4:
        return False
    printable = sum(
        1 for c in text if c.isprintable() or c in "\n\t" or unicodedata.category(c) == "Cf"
    )
    if printable < 0.95 * len(text):
        return False
    letters = sum(1 for c in text if c.isalpha() or c == " ")
    return letters >= 0.6 * len(text) and any(c.isalpha() for c in text)


def _utf8(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if _printable(text) else None


def _decode_hex(run: str) -> str | None:
    digits = "".join(_HEX_DIGITS.findall(run.replace("\\x", " ").replace("0x", " ")))
    if len(digits) < 16:
        return None
    try:
        return _utf8(binascii.unhexlify(digits))
    except (binascii.Error, ValueError):
        return None


def _decode_base64(run: str) -> str | None:
    body = run.rstrip("=")
    if body.isdigit() or body.isalpha() and (body.islower() or body.isupper()):
        return None  # a plain word or number, not base64
    padded = body + "=" * (-len(body) % 4)
    altchars = b"-_" if ("-" in body or "_" in body) else None
    try:
        data = base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _utf8(data)


def _decode_morse(run: str) -> str | None:
    words = re.split(r"\s*/\s*|   +", run.strip())
    out = []
    for word in words:
        letters = [_MORSE_CODE.get(code) for code in word.split()]
        if not letters or None in letters:
            return None
        out.append("".join(letters))  # type: ignore[arg-type]
    text = " ".join(out)
    return text if sum(c.isalpha() for c in text) >= 4 else None


def _decode_binary(run: str) -> str | None:
    groups = re.findall(r"[01]{8}", run)
    try:
        return _utf8(bytes(int(g, 2) for g in groups))
    except ValueError:
        return None


def _common_ratio(text: str) -> tuple[int, float]:
    words = _WORD.findall(text.lower())
    if not words:
        return 0, 0.0
    hits = sum(1 for w in words if w in _COMMON_WORDS)
    return len(words), hits / len(words)


def _looks_natural(line: str) -> bool:
    """Plenty of everyday function words: plain language, not ROT13 or reversed."""
    head = line[:400].lower()
    hits = sum(head.count(w) for w in _FUNCTION_WORDS)
    return hits * 12 >= head.count(" ") + 1


def _from_pig_latin(line: str) -> str | None:
    """Pig Latin back to English ("erewhay oesday" -> "where does"), when most words of the
    line end in -ay; a consonant cluster before -ay moves back to the front."""
    words = _LETTERS.findall(line)
    if len(words) < 3 or sum(w.lower().endswith("ay") for w in words) < 0.6 * len(words):
        return None

    def back(match: re.Match[str]) -> str:
        word = match.group()
        lower = word.lower()
        if len(lower) < 4 or not lower.endswith("ay"):
            return word
        if lower.endswith(("yay", "way")) and lower[0] in "aeiou":
            return word[:-3]
        stem = lower[:-2]
        options = [stem[-k:] + stem[:-k] for k in (1, 2, 3)
                   if len(stem) > k and all(c not in "aeiou" for c in stem[-k:])]
        if not options:
            return word
        return next((o for o in options if o in _COMMON_WORDS), options[0])

    return _LETTERS.sub(back, line)


def _transformed_lines(text: str) -> Iterator[DecodedPayload]:
    """ROT13 and reversed lines, when the transform reads as language and the line not;
    in lines that read as language, quoted stretches that do so after a Caesar shift
    (ROT13 included) or reversal."""
    for match in _LINE.finditer(text):
        line = match.group()
        n_words, ratio = (0, 1.0) if len(line) > 80 and _looks_natural(line) else (
            _common_ratio(line))
        if n_words < 3 or ratio > 0.25:
            if ("'" in line or '"' in line) and len(line) >= 14:  # a quoted cipher in prose
                for encoding, decoded, start, end in quoted_ciphers(line, _common_ratio):
                    yield DecodedPayload(encoding, decoded, match.start() + start,
                                         match.start() + end)
            continue
        candidates = [("rot13", line.translate(_ROT13)), ("reversed", line[::-1])]
        pig = _from_pig_latin(line)
        if pig is not None:
            candidates.append(("piglatin", pig))
        for encoding, candidate in candidates:
            _, cand_ratio = _common_ratio(candidate)
            if cand_ratio >= 0.4 and cand_ratio >= ratio + 0.3:
                yield DecodedPayload(encoding, candidate, match.start(), match.end())


def _is_leet_word(token: str) -> bool:
    """Letters with leet digits in between, not a hash, id or number with a unit."""
    if len(token) > 24 or any(c in "269" for c in token):
        return False
    if not any(c in "0134578" for c in token[:-1]):  # "Hi!", "doe@example": punctuation only
        return False
    letters = [c for c in token if c.isalpha()]
    if len(letters) < 0.4 * len(token):
        return False
    rest = "".join(letters[1:])  # one case, or capitalised: not a random base64/id run
    return rest.islower() or rest.isupper() or not rest


def _leet(text: str) -> DecodedPayload | None:
    if _LEET_HINT.search(text) is None:
        return None
    tokens = [t for t in _LEET_TOKEN.finditer(text) if _is_leet_word(t.group())]
    if len(tokens) < 2:
        return None
    parts: list[str] = []
    last = 0
    for token in tokens:
        parts.append(text[last : token.start()])
        parts.append(token.group().translate(_LEET))
        last = token.end()
    parts.append(text[last:])
    return DecodedPayload("leet", "".join(parts), tokens[0].start(), tokens[-1].end())


def _spaced(text: str) -> DecodedPayload | None:
    if _SPACED_HINT.search(text) is None:
        return None
    runs = [m for m in _SPACED.finditer(text) if len(m.group()) >= 9]
    if not runs:
        return None
    parts: list[str] = []
    last = 0
    for run in runs:
        parts.append(text[last : run.start()])
        # a double space (or wider gap) between letters is a word break; without one,
        # common words show where words begin
        words = [re.sub(r"[ ._*\-]", "", w) for w in re.split(r"  +|[ ._*\-]{2,}", run.group())]
        parts.append(" ".join(w if len(w) < 12 else segment_words(w, _COMMON_WORDS)
                              for w in words))
        last = run.end()
    parts.append(text[last:])
    return DecodedPayload("spaced", "".join(parts), runs[0].start(), runs[-1].end())


def decode_payloads(text: str, *, spaced: bool = True) -> list[DecodedPayload]:
    """Encoded stretches of ``text`` and their decoded text (one level, no recursion).

    base64 (standard and URL-safe), hex (``414243``, ``\\x41\\x42``, ``0x41 0x42``), 8-bit
    binary and percent-encoding decode only when the result is readable UTF-8 text; Morse
    code (``.-- .... .- -``, words split by ``/``) only when every symbol is valid; so keys,
    hashes and ids are not "decoded". ROT13, reversal and Pig Latin apply per line, when
    the result is made of common words and the line is not. Leetspeak and letter spacing
    produce one variant of the whole text when at least two leet tokens (or a long spaced
    run) occur; in spaced text a gap of two or more spaces separates words, so run it on
    text whose whitespace is not folded yet.
    """
    found: list[DecodedPayload] = []
    hex_spans: list[tuple[int, int]] = []
    for match in _HEX.finditer(text) if _HEX_HINT.search(text) else ():
        decoded = _decode_hex(match.group())
        if decoded is not None:
            found.append(DecodedPayload("hex", decoded[:_MAX_DECODE_CHARS], *match.span()))
            hex_spans.append(match.span())
    for match in _BASE64.finditer(text):
        if any(s <= match.start() < e for s, e in hex_spans):
            continue
        decoded = _decode_base64(match.group())
        if decoded is not None:
            found.append(DecodedPayload("base64", decoded[:_MAX_DECODE_CHARS], *match.span()))
    if ".-" in text or "-." in text:
        for match in _MORSE.finditer(text):
            decoded = _decode_morse(match.group())
            if decoded is not None:
                found.append(DecodedPayload("morse", decoded, *match.span()))
    if _BINARY_HINT.search(text):
        for match in _BINARY.finditer(text):
            decoded = _decode_binary(match.group())
            if decoded is not None:
                found.append(DecodedPayload("binary", decoded, *match.span()))
    if "%" in text:
        for match in _PERCENT.finditer(text):
            decoded = unquote(match.group().replace("+", " "))
            if decoded != match.group() and _printable(decoded):
                found.append(DecodedPayload("percent", decoded, *match.span()))
    found.extend(_transformed_lines(text))
    leet = _leet(text)
    if leet is not None:
        found.append(leet)
    if spaced:
        payload = _spaced(text)
        if payload is not None:
            found.append(payload)
    return found


# --- variants ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextVariant:
    """One text a detector should scan: the normalised input or a decoded payload.

    ``encoding`` is :data:`PLAIN` or the chain of decodings (``"base64"``,
    ``"base64/rot13"``); ``start``/``end`` is where the variant came from in the original
    text (the whole text for :data:`PLAIN`).
    """

    text: str
    encoding: str
    start: int
    end: int
    normalized: NormalizedText

    @property
    def decoded(self) -> bool:
        return self.encoding != PLAIN

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a match in :attr:`text` to the original text: exact for the plain
        variant, the whole encoded stretch for a decoded one."""
        if self.encoding == PLAIN:
            return self.normalized.to_original(start, end)
        return self.start, self.end


def scan_variants(text: str, *, max_depth: int = 2) -> list[TextVariant]:
    """The normalised text, then each decoded payload (normalised), nested to
    ``max_depth`` levels. Spans map to the original ``text``."""
    base = normalize(text)
    variants = [TextVariant(base.text, PLAIN, 0, len(text), base)]
    frontier: list[tuple[str, str, int, int]] = [(base.text, "", -1, -1)]
    seen = {base.text}
    for _ in range(max_depth):
        next_frontier: list[tuple[str, str, int, int]] = []
        for source, chain, o_start, o_end in frontier:
            payloads = decode_payloads(source, spaced=o_start >= 0)
            if o_start < 0:  # letter spacing needs the unfolded whitespace of the original
                spaced = _spaced(text)
                if spaced is not None:
                    payloads.append(spaced)
            for payload in payloads:
                normal = normalize(payload.text)
                if normal.text in seen:
                    continue
                seen.add(normal.text)
                if payload.encoding == "spaced" and o_start < 0:
                    start, end = payload.start, payload.end  # found in the original
                elif o_start < 0:  # a payload of the top-level text: map through normalisation
                    start, end = base.to_original(payload.start, payload.end)
                else:
                    start, end = o_start, o_end
                encoding = f"{chain}/{payload.encoding}" if chain else payload.encoding
                variants.append(TextVariant(normal.text, encoding, start, end, normal))
                next_frontier.append((normal.text, encoding, start, end))
        frontier = next_frontier
        if not frontier:
            break
    return variants
