"""Topics the system instructions put off limits, and user text that goes there.

Many attacks are ordinary requests that are attacks only against their system prompt: a
recipe question to a bot told "providing recipes is not allowed", a chess question wrapped
in a hypothetical for a bot told "under no circumstances give instructions on how to play
chess". :func:`restricted_topics` reads the restriction sentences of the instructions
(``never discuss ...``, ``do not ... under any circumstances``, ``... is not allowed``,
``avoid ...``, ``refuse to discuss ...``) and keeps their content words;
:func:`touches_restricted` says which of them a user text mentions (by word stem, so
``dinosaurio`` meets ``Dinosaurs`` and ``intelligenza artificiale`` ``artificial
intelligence``).

Touching a restricted topic is weak evidence by itself (people ask off-topic questions all
the time): the injection detector counts it as a *target*, which becomes an attack when it
comes wrapped in fiction, persuasion, many-shot priming or an evasive format.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Restrictions", "restricted_topics", "touches_restricted"]

_SENTENCE = re.compile(r"[^.!?\n]+")
_PROHIBITION = re.compile(
    r"\b(?:never|do\s+not|don'?t|dont|must\s+not|mustn't|should\s+not|shouldn't|avoid\w*|"
    r"refuse|not\s+(?:allowed|permitted|programmed|supposed)|prohibited|forbidden|"
    r"under\s+no\s+circumstances|strictly\s+not|no\s+discussion|off-?limits)\b",
    re.IGNORECASE,
)
_STEM = 6  # letters a topic word and a text word must share
# Words of the restriction sentence that name no topic.
_GENERIC = frozenset(re.findall(r"\S+", """
    never dont don't must mustn should shouldn avoid avoiding avoids refuse allowed permitted
    programmed supposed prohibited forbidden under circumstances strictly discussion discussions
    discuss discussing talk talking about topic topics share sharing information details detail
    provide providing give giving help helping answer answers answering questions question
    related regarding including include like such things thing kind kinds type types other
    others anything everything something user users customer customers chatbot chat assistant
    your yours their them they this that these those with without into from only also always
    cases case costs cost matter what which when where while there here will would could
    reveal revealing disclose tell telling mention mentioning anyone anybody someone person
    people private personal instructions instruction prompt system task role purpose maintain
    ensure focus focused environment appropriate platform service forum developed designed
    reasons reason concerns concern potential individual please engage engaging depth
    in-depth complex technical general specific more most less least very much many
    inputted input output text language languages given mentioned listed above below
    provided contained stated written described outlined absolutely because since order
    current future modern able ever anymore certain being doing making based data info
    content material stuff record records
    """))


_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*|[^\w\s]")


def _phrases(sentence: str) -> Iterator[tuple[str, ...]]:
    """Runs of adjacent content words: "space travel", "quantum physics", "dinosaurs"."""
    run: list[str] = []
    for token in _TOKEN.findall(sentence.lower()):
        if len(token) >= 4 and token.isalpha() and token not in _GENERIC:
            run.append(token[:_STEM])
            continue
        if run:
            yield tuple(run)
            run = []
    if run:
        yield tuple(run)


@dataclass(frozen=True, slots=True)
class Restrictions:
    """The topics one set of system instructions forbids, ready to be matched."""

    topics: frozenset[tuple[str, ...]]  # each topic: the word stems of one phrase
    pattern: re.Pattern[str] | None  # every topic word, at a word start

    def __bool__(self) -> bool:
        return bool(self.topics)


_NONE = Restrictions(frozenset(), None)


def restricted_topics(system_prompt: str | None) -> Restrictions:
    """The topics the instructions forbid, each as the word stems of one phrase (none when
    there are no prohibitions). A topic of several words is touched only when all of them
    are. Pure; callers that see the same instructions often keep the result."""
    if not system_prompt or _PROHIBITION.search(system_prompt) is None:
        return _NONE
    topics: set[tuple[str, ...]] = set()
    for sentence in _SENTENCE.findall(system_prompt):
        if _PROHIBITION.search(sentence) is not None:
            topics.update(phrase[:3] for phrase in _phrases(sentence))
    if not topics:
        return _NONE
    stems = sorted({stem for topic in topics for stem in topic}, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, stems)) + ")", re.IGNORECASE)
    return Restrictions(frozenset(topics), pattern)


def touches_restricted(text: str, restrictions: Restrictions) -> tuple[list[str], int, int]:
    """The restricted topics ``text`` mentions (their words, sorted), and where the first
    mention is (``-1, -1`` when none). One regular-expression pass for all topic words, so
    a long text costs a C-level scan, not a word split."""
    pattern = restrictions.pattern
    if pattern is None:
        return [], -1, -1
    wanted = len({stem for topic in restrictions.topics for stem in topic})
    first: dict[str, tuple[int, int]] = {}
    for match in pattern.finditer(text):
        stem = match.group().lower()
        if stem not in first:
            end = match.end()
            while end < len(text) and text[end].isalpha():
                end += 1
            first[stem] = (match.start(), end)
            if len(first) == wanted:
                break
    if not first:
        return [], -1, -1
    hits = sorted({stem for topic in restrictions.topics if all(s in first for s in topic)
                   for stem in topic})
    if not hits:
        return [], -1, -1
    start, end = min(first[stem] for stem in hits)
    return hits, start, end
