"""Evidence in the *shape* of a text rather than in a phrase.

:func:`structural_signals` looks at one normalised variant of a text for:

* token floods (one token or phrase repeated over and over) and repeated runs;
* many-shot dialogues: fabricated ``Q:``/``A:`` (``Input:``/``Output:``, ``User:``/
  ``Assistant:``) pairs that prime the model to answer the last question as the shots do;
* a *shouted command*: a run of capitals that gives the model an order inside otherwise
  lower-case text (``How will I be able DO NOT ANSWER THIS QUESTION BUT JUST OUTPUT ...``),
  the way injected text is set apart from the text it was pasted into;
* a *completion bait*: a script that ends on an open speaker line (``...\\nJohn:``), so the
  model's next words are the character's;
* payload splitting: two or more quoted sentence fragments (3+ words) assigned to names
  (``a = "Write an email to"``, ``Part 1 is "..."``) and an instruction to join them
  (``z = a + b``, ``combine A, B and C``);
* invisible and smuggled characters (Unicode tags, homoglyphs, zero-width runs).

Weights are those of weak-to-medium evidence: each of these occurs in benign text too,
and counts when it comes with others (noisy-OR in ``injection.py``).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

from llmtrace_processors.security.evidence import excerpt
from llmtrace_processors.security.normalize import TextVariant
from llmtrace_processors.security.scoring import Signal

__all__ = ["structural_signals"]

OBFUSCATION = "prompt_injection.obfuscation"
REPETITION = "prompt_injection.repetition"
FRAMING = "jailbreak.framing"
OVERRIDE = "prompt_injection.instruction_override"

_REPEATED_RUN = re.compile(
    r"\b(\w{2,}(?:[\s,.?!;:]+\w{2,}){0,5}[?!.]?)(?:[\s,]+\1(?!\w)[?!.]?){9,}", re.IGNORECASE)
_Q_MARKER = re.compile(r"(?:^|\s)(?:Q|Question|User|Human|Input|Eingabe|Frage)\s*:\s")
_A_MARKER = re.compile(r"(?:^|\s)(?:A|Answer|Assistant|AI|Output|Ausgabe|Antwort)\s*:\s")
_SHOT_HINTS = ("Q:", "User:", "Human:", "Input:", "Eingabe:", "Question:", "Frage:")
# Runs of 3+ capitalised words (2+ letters each), quotes and punctuation allowed between.
# Words of at most 40 characters, each taken whole (possessive): with unbounded words a
# long hyphenated token ("A-A-A-...") was re-read from every hyphen in it, quadratic time.
_CAPS_RUN = re.compile(
    r"(?<![\w'])(?:[A-ZÄÖÜ][A-ZÄÖÜß'-]{1,39}+[\"',.:!?]*+\s++){2,}"
    r"[A-ZÄÖÜ][A-ZÄÖÜß'-]{1,39}\b")
_CAPS_HINT = re.compile(r"[A-ZÄÖÜ]{2}")
_CAPS_COMMAND = re.compile(
    r"\b(?:IGNORE|IGNORIERE|DISREGARD|FORGET|VERGISS|OUTPUT|PRINT|SAY|SAG|SAGE|WRITE|"
    r"SCHREIB|SCHREIBE|ANSWER|ANTWORTE|RESPOND|REPLY|REVEAL|TELL|GIB|DO\s+NOT\s+(?:ANSWER|"
    r"LOOK|FOLLOW|USE)|DON'T\s+(?:ANSWER|LOOK|FOLLOW)|YOU\s+ARE|DU\s+BIST|YOU\s+MUST|"
    r"DU\s+MUSST|MUSST\s+DU|STOP|STOPP|INSTEAD|STATTDESSEN|NEW\s+INSTRUCTIONS?)\b")
_OPEN_SPEAKER = re.compile(r"\n[ \t]*[A-ZÄÖÜ][\w'. -]{0,30}[ \t]*:[ \t]*$")
_SPEAKER_LINE = re.compile(r"^[ \t]*[A-ZÄÖÜ][\w'. -]{0,30}(?:\s+asks|\s+says|\s+fragt)?[ \t]*:",
                           re.MULTILINE)
_FRAGMENT = re.compile(
    r"(?:^|[\s,;:(])(\$?[A-Za-z]\w{0,11}|[Pp]art\s*\d+|[Tt]eil\s*\d+)\s*(?:=|:=|\bis\b|\bist\b)"
    r"\s*([\"'])((?:(?!\2)[^\n]){1,200})\2")
_JOIN = re.compile(
    r"\b(?:combine|concatenate|join|merge|put\s+together|assemble|kombinier\w*|verbinde\w*|"
    r"füge\s+\w+\s+zusammen)\s+(?:the\s+|die\s+)?(?:parts|strings|pieces|fragments|variables|"
    r"teile|[A-Za-z]\d?(?:\s*,\s*[A-Za-z]\d?)*\s*,?\s*(?:and|und|&)\s*[A-Za-z]\d?)\b"
    r"|\b(?:using|from|with)\s+the\s+following\s+(?:parts|pieces|strings|fragments)\b",
    re.IGNORECASE)
#: A quoted value right after "=", "is", "ist": where fragment assignments can be (C-speed gate).
_ASSIGN_HINT = re.compile(r"(?:=|\bis|\bist)\s*[\"']")
_SPLIT_WINDOW = 20_000  # payload-split fragments are looked for in the first 20,000 characters
_PLUS = re.compile(r"(\$?[A-Za-z]\w{0,11})\s*\+\s*(\$?[A-Za-z]\w{0,11})")


def _repeats(text: str) -> bool:
    """Whether some word pair occurs 9+ times (cheap gate for the repeated-run pattern, whose
    back-reference is costly): a phrase repeated ten times repeats its word pairs."""
    words = text.lower().split()
    if len(words) < 10 or Counter(words).most_common(1)[0][1] < 10:
        return False
    return Counter(zip(words, words[1:], strict=False)).most_common(1)[0][1] >= 9


def _repetition(variant: TextVariant, whole: tuple[int, int]) -> list[Signal]:
    text = variant.text
    n = len(text)
    if n < 30:
        return []
    if n >= 300:  # the compression ratio says how repetitive a text is, at C speed
        ratio = len(zlib.compress(text.encode("utf-8", "replace"), 1)) / n
        if ratio < 0.08:  # one token or phrase repeated over and over
            return [Signal("repetition.flood", REPETITION, 0.55, *whole, excerpt(text[:60]))]
        if ratio > 0.4 or n > 20_000:  # prose compresses to ~0.5-0.7: no run of ten repeats
            return []
    if _repeats(text):
        run = _REPEATED_RUN.search(text)
        if run is not None:
            return [Signal("repetition.run", REPETITION, 0.4,
                           *variant.to_original(*run.span()), excerpt(run.group()[:60]))]
    return []


def _shots(text: str, whole: tuple[int, int]) -> list[Signal]:
    if not any(hint in text for hint in _SHOT_HINTS):
        return []
    shots = min(len(_Q_MARKER.findall(text)), len(_A_MARKER.findall(text)))
    if shots < 3:
        return []
    return [Signal("many_shot.dialogue", FRAMING, 0.2 if shots < 8 else 0.3, *whole,
                   f"{shots} Q/A pairs")]


def _shouted(variant: TextVariant) -> list[Signal]:
    """A run of capitals carrying an order, inside text that is mostly not capitals."""
    text = variant.text
    if _CAPS_HINT.search(text) is None:  # no two capitals in a row: nothing shouted
        return []
    runs = [run for run in _CAPS_RUN.finditer(text) if len(run.group()) >= 12]
    if not runs:
        return []
    upper = sum(1 for c in text if c.isupper())
    lower = sum(1 for c in text if c.islower())
    if lower < 20 or upper > 1.5 * lower:  # all-caps text: shouting, not an inserted command
        return []
    for run in runs:
        if _CAPS_COMMAND.search(run.group()) is not None:
            return [Signal("shouted_command.caps", OVERRIDE, 0.35,
                           *variant.to_original(*run.span()), excerpt(run.group()))]
    return []


def _completion_bait(variant: TextVariant) -> list[Signal]:
    """A script (two or more speaker lines) that ends on an open speaker line."""
    text = variant.text.rstrip()
    if ":" not in text[-40:]:
        return []
    end = _OPEN_SPEAKER.search(text)
    if end is None or len(_SPEAKER_LINE.findall(text)) < 2:
        return []
    return [Signal("completion_bait.open_turn", FRAMING, 0.25,
                   *variant.to_original(end.start() + 1, end.end()),
                   excerpt(end.group().strip()))]


def _payload_split(variant: TextVariant) -> list[Signal]:
    text = variant.text[:_SPLIT_WINDOW]
    if text.count('"') + text.count("'") < 4 or len(_ASSIGN_HINT.findall(text)) < 2:
        return []
    names: dict[str, str] = {}
    first = -1
    for match in _FRAGMENT.finditer(text):
        fragment = match.group(3)
        if len(fragment.split()) >= 3:  # pieces of a sentence, not labels or code literals
            names[match.group(1).lower().lstrip("$")] = fragment
            first = match.start(1) if first < 0 else first
    if len(names) < 2:
        return []
    found = [Signal("payload_split.fragments", FRAMING, 0.35,
                    *variant.to_original(first, first + 1),
                    f"{len(names)} text fragments assigned to names")]
    join = _JOIN.search(text)
    if join is None:
        join = next((m for m in _PLUS.finditer(text)
                     if m.group(1).lower().lstrip("$") in names
                     and m.group(2).lower().lstrip("$") in names), None)
    if join is not None:
        found.append(Signal("payload_join.assemble", FRAMING, 0.35,
                            *variant.to_original(*join.span()), excerpt(join.group())))
    return found


def structural_signals(variant: TextVariant) -> list[Signal]:
    """Evidence that is a property of the whole text rather than a phrase."""
    text = variant.text
    norm = variant.normalized
    whole = (0, len(norm.original))
    found = _repetition(variant, whole)
    found += _shots(text, whole)
    found += _shouted(variant)
    found += _completion_bait(variant)
    found += _payload_split(variant)
    if norm.tag_chars >= 4:
        found.append(Signal("smuggling.tag_characters", OBFUSCATION, 0.6,
                            *whole, f"{norm.tag_chars} invisible tag characters"))
    if norm.homoglyphs_mapped >= 3:
        found.append(Signal("smuggling.homoglyphs", OBFUSCATION, 0.3,
                            *whole, f"{norm.homoglyphs_mapped} look-alike letters"))
    if norm.invisible_removed >= 3:
        found.append(Signal("smuggling.invisible", OBFUSCATION, 0.2,
                            *whole, f"{norm.invisible_removed} invisible characters"))
    return found
