"""Benign contexts that weaken a match: who is speaking, about what, and where.

Each function returns a factor in ``(0, 1]`` for one match (``start``/``end`` in the
normalised text). The factors are what keeps "can I ignore this warning?", "don't forget
the rules", "how do I enable developer mode on Android?" and "what is a jailbreak?" from
scoring like the attacks they share words with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from llmtrace_processors.security.scoring import Damp

__all__ = ["addresses_ai", "damping", "in_code", "sentence_bounds"]

_FLAGS = re.IGNORECASE | re.UNICODE
_SENTENCE_END = re.compile(r"[.!?;\n]")

# The speaker talks about doing it themselves ("can I", "how do I", "I want to").
_FIRST_PERSON = re.compile(
    r"\b(?:can|could|should|may|might|must|do|does|would|shall|will)\s+(?:i|we)\b"
    r"|\bhow\s+(?:do|can|could|should|would|to|did)\b"
    r"|\bis\s+it\s+(?:ok|okay|safe|fine|possible|wise|bad|allowed|legal|normal|common)\b"
    r"|\b(?:when|whether)\s+(?:to|i\s+should|we\s+should)\b"
    r"|\b(?:i|we)\s+(?:want|need|would\s+like|wanna|have|had|tried|try|will|won't|can't|"
    r"cannot|don't|didn't|usually|always|often|sometimes|just|accidentally|keep)\b"
    r"|\bwhy\s+(?:do|would|should|does|did|can't)\b"
    r"|\b(?:kann|darf|soll|muss|sollte|könnte|möchte|will)\s+ich\b|\bwie\s+(?:kann|soll)\s+ich\b",
    _FLAGS,
)
_YOU = re.compile(r"\b(?:you|your|yourself|du|dich|dein\w*)\b", _FLAGS)
_NEGATION = re.compile(
    r"\b(?:not|never|don't|dont|do\s+not|doesn't|shouldn't|mustn't|won't|wouldn't|cannot|"
    r"can't|nicht|nie|niemals|kein\w*)\s+(?:[\w'-]+\s+)?$",
    _FLAGS,
)
# Talk about attacks rather than an attack: definitions, defences, research.
_META = re.compile(
    r"\b(?:what\s+(?:is|are|does|was)\s+(?:a\s+|an\s+|the\s+)?(?:so-called\s+)?"
    r"(?:prompt\s+injection|jailbreak\w*|dan\b|developer\s+mode|system\s+prompt|prompt\b)"
    r"|(?:protect|defend|guard|secure|safeguard|harden)\w*\s+(?:[\w'-]+\s+){0,4}?against"
    r"|prevent\w*|detect\w*|mitigat\w*|classif\w*|examples?\s+of|explain\w*|definition"
    r"|vulnerab\w*|research\s+(?:on|about|paper|into)|(?:blog|article|paper)\s+(?:on|about)"
    r"|(?:how|why)\s+(?:do|does|can|did)\s+(?:attackers|hackers|people|jailbreaks?|"
    r"prompt\s+injections?)"
    r"|was\s+ist\s+(?:ein\s+|eine\s+)?(?:prompt|jailbreak)"
    r"|what\s+(?:does|do|is|are)\s+\S.{0,40}?\s+(?:mean|stand\s+for|used\s+for|do)\b|meaning\s+of"
    r"|chatml|chat\s+templates?|tokeni[sz]er|special\s+tokens?)",
    _FLAGS,
)
_DEVICE = re.compile(
    r"\b(?:android|iphone|ipad|ios|phone|smartphone|chrome|firefox|safari|edge|browser|"
    r"windows|macos|mac|linux|ubuntu|device|settings|app|apps|game|games|xbox|ps[345]|"
    r"playstation|nintendo|switch|bios|uefi|router|firmware|laptop|tablet|vs\s?code|ide|"
    r"minecraft|steam|emulator|tv|car|tesla|camera|printer|console|server|kernel|git|"
    r"excel|word|wordpress|plugin|extension|samsung|pixel|xiaomi|huawei|oneplus|handy)\b",
    _FLAGS,
)
_AI = re.compile(
    r"\b(?:you|your|yourself|ai|a\.i\.|model|assistant|chat\s*bot|bot|gpt|chatgpt|llm|"
    r"character|persona|claude|gemini|entity|du|dich|dein\w*)\b",
    _FLAGS,
)
_FENCE = "```"
_REPORTING = re.compile(
    r"\b(?:says?|said|saying|wrote|writes|typed|types|called|phrase|words|line|quote[ds]?|like|"
    r"as\s+in|sentence|message|text|string|example)\b[^\"'\n]{0,20}$",
    _FLAGS,
)
_QUOTES = "\"'"


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The sentence (or line) around ``[start, end)``."""
    left = start
    floor = max(0, start - 300)
    while left > floor and not _SENTENCE_END.match(text, left - 1):
        left -= 1
    found = _SENTENCE_END.search(text, end, min(len(text), end + 300))
    return left, (found.start() + 1 if found else min(len(text), end + 300))


def in_code(text: str, start: int) -> bool:
    """Inside a fenced code block or an inline code span."""
    if text.count(_FENCE, 0, start) % 2 == 1:
        return True
    line_start = text.rfind("\n", 0, start) + 1
    return text.count("`", line_start, start) % 2 == 1


def addresses_ai(text: str, start: int, end: int) -> bool:
    """The sentence around the match speaks to or about the model."""
    left, right = sentence_bounds(text, start, end)
    return _AI.search(text, left, right) is not None


def _reported(text: str, start: int, end: int) -> bool:
    """The match sits inside quotes introduced by a reporting word ("says", "the phrase")."""
    before = text[max(0, start - 40) : start]
    for quote in _QUOTES:
        opened = before.rfind(quote)
        if opened < 0 or quote in text[start:end]:
            continue
        if quote not in text[end : end + 80]:
            continue
        if _REPORTING.search(before, 0, opened):
            return True
    return False


def _first_person(text: str, start: int) -> bool:
    """A first-person framing ("can I", "how do I", "I want to") right before the match:
    the speaker asks about doing it themselves."""
    left, _ = sentence_bounds(text, start, start)
    left = max(left, start - 80)
    last = None
    for last in _FIRST_PERSON.finditer(text, left, start):  # noqa: B007 - keep the last
        pass
    if last is None or start - last.end() > 25:  # too far away to govern the verb
        return False
    # "I want you to ignore ..." hands the action to the model: not a benign framing
    return _YOU.search(text, last.end(), start) is None


def damping(text: str, start: int, end: int, kinds: Iterable[str]) -> float:
    """The product of the factors of ``kinds`` that apply to the match."""
    factor = 1.0
    for kind in kinds:
        if kind == Damp.QUESTION and _first_person(text, start):
            factor *= 0.3
        elif kind == Damp.NEGATION and _NEGATION.search(text, max(0, start - 24), start):
            factor *= 0.15
        elif kind == Damp.META and _META.search(text, *sentence_bounds(text, start, end)):
            factor *= 0.4
        elif kind == Damp.DEVICE:
            left, right = sentence_bounds(text, start, end)
            if _DEVICE.search(text, left, right) and not _YOU.search(text, left, right):
                factor *= 0.3
        elif kind == Damp.CODE and in_code(text, start):
            factor *= 0.5
        elif (kind == Damp.AI_SUBJECT and not addresses_ai(text, start, end)) or (
            kind == Damp.QUOTED and _reported(text, start, end)
        ):
            factor *= 0.4
    return factor
