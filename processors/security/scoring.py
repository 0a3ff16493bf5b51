"""Evidence and how it combines: rules fire signals, signals combine into a confidence.

A :class:`Rule` is one regular expression with a weight (how much a match alone says
"attack"), the finding type it is evidence for, and the benign contexts that weaken it.
Rules are keyed by trigger words (the first five letters of a word, lower case). An
*anchored* rule's match always starts at one of its trigger words, so it is tried only
there (``pattern.match(text, pos)``), never scanned across the text: a benign text pays
for one word split plus a few failed matches, not for every pattern at every position.
An unanchored rule (template tokens, HTML comments, line-start role tags) is scanned with
``finditer`` when one of its trigger words or substrings occurs.

Signals combine per text as a noisy-OR over kinds of evidence: ``1 - prod(1 - w_k)``
where ``w_k`` is the strongest (damped) signal of kind ``k``. Two weak, independent kinds of
evidence ("pretend you are" + "what is the password") thereby add up, while many matches
of one kind do not.

The learned classifier (:mod:`processors.security.classifier`) is one more kind of
evidence, ``model``: its probability ``p`` becomes a weight by :func:`model_weight`, 0 up to
``MODEL_FLOOR`` (most benign text, and the benign prompts full of trigger words, stay
there), rising linearly to ``MODEL_MAX_WEIGHT`` at ``MODEL_FULL``. The model alone flags a
text (weight 0.5) from ``p`` ~0.967, and alone never reaches the 0.65 of a high-severity
finding; below that it adds to rule evidence. When the rules saw an attack phrase in a
benign context (negation, a question about oneself, quotation, ...), the model's weight
is multiplied by that context's factor too (at least 0.4): it reads the same words
without seeing the context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "Anchor",
    "Damp",
    "MODEL_FLOOR",
    "MODEL_FULL",
    "MODEL_MAX_WEIGHT",
    "Rule",
    "Signal",
    "combine",
    "model_weight",
    "RuleSet",
    "rule",
    "strongest_per_kind",
    "text_keys",
    "token_index",
    "trigger_keys",
]

#: The classifier's probability below which it is no evidence at all, and at which its
#: evidence is full (chosen by the leave-one-dataset-out evaluation, docs/security.md).
MODEL_FLOOR = 0.85
MODEL_FULL = 0.99
MODEL_MAX_WEIGHT = 0.6

_TOKEN = re.compile(r"\w+")
_LINE_BREAK = re.compile(r"\n")
_KEY = re.compile(r"\b\w{1,5}")  # the key of each word: its first five characters
_FLAGS = re.IGNORECASE | re.UNICODE


class Anchor:
    """Where a rule's matches can start."""

    WORD = "word"
    LINE = "line"
    SCAN = "scan"


class Damp:
    """Benign contexts a rule can be weakened by (see ``processors.security.context``)."""

    QUESTION = "question"  # the speaker asks about doing it themselves: "can I ignore ..."
    NEGATION = "negation"  # "don't ignore the rules", "never forget your instructions"
    META = "meta"  # talk about the attack: "what is a jailbreak", "protect against ..."
    DEVICE = "device"  # "developer mode" on a phone, "disable the filter" on a router
    CODE = "code"  # inside a code span or fence: quoted, not spoken
    AI_SUBJECT = "ai_subject"  # weakened unless the sentence speaks to/about the model
    QUOTED = "quoted"  # reported speech: 'the hacker says "ignore all instructions"'.


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of evidence.

    ``name`` is ``"<kind>.<detail>"``; the kind is the unit of independence when signals
    combine (two override phrasings are one piece of evidence, an override plus a persona
    are two). ``finding_type`` is what a finding built on it reports.
    """

    name: str
    finding_type: str  # "prompt_injection.instruction_override", "jailbreak.persona", ...
    weight: float  # 0..1, what one match alone says
    pattern: re.Pattern[str]
    triggers: frozenset[str]  # word keys (first 5 letters, lower case)
    substrings: tuple[str, ...] = ()  # lower-case substrings that also trigger
    damp: frozenset[str] = frozenset()
    #: A match followed or contained by ``weaken`` counts ``weaken_factor`` times its
    #: weight ("ignore *my* previous instructions" is a user correcting themselves).
    weaken: re.Pattern[str] | None = None
    weaken_factor: float = 0.5
    #: How far past the match ``weaken`` is looked for (0: inside the match only).
    weaken_window: int = 60
    #: Where matches start: at a trigger word (``WORD``, checked by the tests), at the
    #: start of a line (``LINE``), or anywhere (``SCAN``, the pattern is searched).
    anchor: str = "word"
    #: Keys of which at least one must occur somewhere in the text for the rule to be
    #: tried (its rarer words, when it starts with a common one like "you" or "the").
    requires: frozenset[str] = frozenset()

    def weight_of(self, text: str, start: int, end: int) -> float:
        """The rule's weight for the match ``text[start:end]``; ``weaken`` is looked for in
        the match and the ``weaken_window`` characters after it."""
        if self.weaken is not None and self.weaken.search(
            text, start, min(len(text), end + self.weaken_window)
        ):
            return self.weight * self.weaken_factor
        return self.weight

    @property
    def kind(self) -> str:
        return self.name.split(".", 1)[0]

    def triggered(self, keys: frozenset[str], lowered: str) -> bool:
        if not self.triggers.isdisjoint(keys):
            return True
        return any(s in lowered for s in self.substrings)


def _inflected(words: str) -> Iterator[str]:
    """Each trigger word and its -s/-ing/-ed forms (keys are 5-letter prefixes, so short
    words need them: ``show`` -> ``shows``, ``showi``, ``showe``)."""
    for word in words.lower().split():
        yield word
        yield word + "s"
        yield word + "ing"
        yield word + "ed"
        if word.endswith("e"):
            yield word[:-1] + "ing"


def trigger_keys(words: Iterable[str]) -> frozenset[str]:
    """The keys a text's words are looked up by: their first five letters, lower case."""
    return frozenset(w[:5] for w in words)


def text_keys(lowered: str) -> frozenset[str]:
    """The trigger keys of a lower-cased text."""
    return trigger_keys(_TOKEN.findall(lowered))


def token_index(text: str) -> dict[str, list[int]]:
    """Trigger key -> start offsets of the words of ``text`` with that key."""
    index: dict[str, list[int]] = {}
    for match in _TOKEN.finditer(text):
        index.setdefault(match.group()[:5].lower(), []).append(match.start())
    return index


def rule(
    name: str,
    finding_type: str,
    weight: float,
    pattern: str,
    *,
    triggers: str = "",
    substrings: Sequence[str] = (),
    damp: Iterable[str] = (),
    weaken: str | None = None,
    weaken_factor: float = 0.5,
    weaken_window: int = 60,
    anchor: str = Anchor.WORD,
    requires: str = "",
    flags: int = _FLAGS,
) -> Rule:
    """Build a :class:`Rule`; ``triggers`` is a space-separated word list."""
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"rule {name}: weight {weight} not in (0, 1]")
    if not triggers and not substrings:
        raise ValueError(f"rule {name}: needs trigger words or substrings")
    if anchor == Anchor.WORD and (substrings or not triggers):
        raise ValueError(f"rule {name}: a word-anchored rule is triggered by words only")
    if anchor not in (Anchor.WORD, Anchor.LINE, Anchor.SCAN):
        raise ValueError(f"rule {name}: unknown anchor {anchor!r}")
    return Rule(
        name=name,
        finding_type=finding_type,
        weight=weight,
        pattern=re.compile(pattern, flags),
        triggers=trigger_keys(_inflected(triggers)),
        substrings=tuple(s.lower() for s in substrings),
        damp=frozenset(damp),
        weaken=re.compile(weaken, flags) if weaken else None,
        weaken_factor=weaken_factor,
        weaken_window=weaken_window,
        anchor=anchor,
        requires=trigger_keys(_inflected(requires)),
    )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Rules indexed by trigger key, so a text's words select the rules to try."""

    rules: tuple[Rule, ...]
    by_key: Mapping[str, tuple[int, ...]]  # trigger key -> indexes of word-anchored rules
    unanchored: tuple[int, ...]  # line-anchored and scanned rules
    #: Every trigger key and substring of the unanchored rules: when a text has none,
    #: none of them is looked at.
    unanchored_keys: frozenset[str] = frozenset()
    unanchored_substrings: tuple[str, ...] = ()

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> RuleSet:
        ordered = tuple(rules)
        by_key: dict[str, list[int]] = {}
        for i, one in enumerate(ordered):
            if one.anchor == Anchor.WORD:
                for key in one.triggers:
                    by_key.setdefault(key, []).append(i)
        unanchored = tuple(i for i, one in enumerate(ordered) if one.anchor != Anchor.WORD)
        return cls(
            rules=ordered,
            by_key=MappingProxyType({k: tuple(v) for k, v in by_key.items()}),
            unanchored=unanchored,
            unanchored_keys=frozenset(k for i in unanchored for k in ordered[i].triggers),
            unanchored_substrings=tuple(
                dict.fromkeys(sub for i in unanchored for sub in ordered[i].substrings)
            ),
        )

    def subset(self, keep: Callable[[Rule], bool]) -> RuleSet:
        return RuleSet.of(r for r in self.rules if keep(r))

    def matches(self, text: str) -> Iterator[tuple[Rule, re.Match[str]]]:
        """Every rule's matches in ``text`` (per rule non-overlapping, in order)."""
        lowered = text.lower()
        aligned = len(lowered) == len(text)  # lower() kept every offset
        keys = set(_KEY.findall(lowered)) if aligned else set(token_index(text))
        candidates: set[int] = set()
        for key in keys & self.by_key.keys():
            candidates.update(self.by_key[key])
        tried = [
            i for i in sorted(candidates)
            if not self.rules[i].requires or not self.rules[i].requires.isdisjoint(keys)
        ]
        if tried:
            if aligned:
                needed: set[str] = set()
                for i in tried:
                    needed.update(self.rules[i].triggers & keys)
                index = _key_positions(lowered, needed)
            else:
                index = token_index(text)
            for i in tried:
                yield from self._anchored(self.rules[i], text, index)
        if self.unanchored_keys.isdisjoint(keys) and not any(
            sub in lowered for sub in self.unanchored_substrings
        ):
            return
        line_starts: list[int] | None = None
        for i in self.unanchored:
            one = self.rules[i]
            if one.triggers.isdisjoint(keys) and not any(s in lowered for s in one.substrings):
                continue
            if one.requires and one.requires.isdisjoint(keys):
                continue
            if one.anchor == Anchor.SCAN:
                for match in one.pattern.finditer(text):
                    yield one, match
                continue
            if line_starts is None:
                line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]
            for pos in line_starts:
                at_line = one.pattern.match(text, pos)
                if at_line is not None:
                    yield one, at_line

    @staticmethod
    def _anchored(
        one: Rule, text: str, index: Mapping[str, list[int]]
    ) -> Iterator[tuple[Rule, re.Match[str]]]:
        positions: list[int] = []
        for key in one.triggers.intersection(index):
            positions.extend(index[key])
        positions.sort()
        match_at = one.pattern.match
        end = -1
        for pos in positions:
            if pos < end:
                continue
            match = match_at(text, pos)
            if match is not None:
                end = max(match.end(), pos + 1)
                yield one, match


def _key_positions(lowered: str, needed: set[str]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {key: [] for key in needed}
    for match in _KEY.finditer(lowered):
        found = index.get(match.group())
        if found is not None:
            found.append(match.start())
    return index


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule (or structural check) that fired, with its damped weight."""

    name: str
    finding_type: str
    weight: float
    start: int  # in the original text
    end: int
    evidence: str
    encoding: str = "plain"  # which text variant it was found in

    @property
    def kind(self) -> str:
        return self.name.split(".", 1)[0]


def strongest_per_kind(signals: Iterable[Signal]) -> dict[str, Signal]:
    """The strongest signal of each kind."""
    best: dict[str, Signal] = {}
    for signal in signals:
        current = best.get(signal.kind)
        if current is None or signal.weight > current.weight:
            best[signal.kind] = signal
    return best


def combine(weights: Iterable[float]) -> float:
    """Noisy-OR: the probability that at least one piece of evidence is right."""
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - min(max(weight, 0.0), 1.0)
    return 1.0 - miss


def model_weight(probability: float) -> float:
    """The evidence weight of the classifier's probability (see the module docstring)."""
    if probability <= MODEL_FLOOR:
        return 0.0
    return MODEL_MAX_WEIGHT * min(1.0, (probability - MODEL_FLOOR) / (MODEL_FULL - MODEL_FLOOR))
