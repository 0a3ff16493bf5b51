"""Response-side leakage: the system prompt echoed back, its secrets, credentials in output.

:func:`detect_leakage` takes a model's output and the request's system instructions:

- ``leakage.system_prompt``: word 4-gram (shingle) overlap between the output and the
  instructions. Every output shingle that also occurs in the instructions marks those
  instruction words as *covered*; ``confidence`` is the covered fraction of the
  instructions (the overlap ratio). Reordered, reformatted ("1. Never ...") or partly
  paraphrased echoes still share most 4-grams, so this is not limited to verbatim copies.
  Reported when at least ``min_words`` instruction words (8, or all of a shorter prompt)
  are covered and either ``min_ratio`` (20%) of the prompt or 40 words are.
- ``leakage.system_secret``: a value the instructions hold as secret (``The password is
  "Elephant"``, ``secret code: 7781``, or any credential :func:`detect_secrets` finds in
  them) appears in the output, also spelled out (``E-l-e-p-h-a-n-t``) or reversed.
- ``secret.*`` with ``side="output"``: credentials in the output (the secrets detector);
  one already present in the instructions is raised one severity level.

Findings carry no instruction text; evidence is counts or a masked value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from llmtrace_processors.security._textview import TextView, text_view
from llmtrace_processors.security.evidence import mask_secret
from llmtrace_processors.security.findings import Finding, Severity, Side
from llmtrace_processors.security.secrets import detect_secrets

__all__ = [
    "DETECTOR",
    "LEAKAGE_SYSTEM_PROMPT",
    "LEAKAGE_SYSTEM_SECRET",
    "LeakageReference",
    "SHINGLE_WORDS",
    "detect_leakage",
    "leakage_reference",
    "shingle_overlap",
]

DETECTOR = "leakage"
LEAKAGE_SYSTEM_PROMPT = "leakage.system_prompt"
LEAKAGE_SYSTEM_SECRET = "leakage.system_secret"
SHINGLE_WORDS = 4

_WORD = re.compile(r"\w+")
_MARKED_SECRET = re.compile(
    r"(?i)\b(?:password|passphrase|passcode|pass code|secret(?:[ _-]?(?:key|code|word|phrase|"
    r"number|value))?|api[ _-]?key|access (?:code|key)|pin(?: code)?|code ?word|safe ?word)"
    r"\s*(?:is|was|=|:)\s*(?:set to\s+)?[\"'“‘`]?(?P<value>[^\s\"'”’`,;]{3,64})"
)
_NOT_A_VALUE = frozenset(
    str.split(
        "not the a an to be is never always confidential secret private hidden unknown below "
        "above following as that this required provided given shown stored kept only yours "
        "mine it them you your there here"
    )
)


@dataclass(frozen=True, slots=True)
class LeakageReference:
    """What :func:`detect_leakage` needs from system instructions, built once per prompt.

    A caller that sees the same system prompt on many calls can keep these (keyed by the
    prompt) instead of passing the text each time.
    """

    #: The instructions, folded the way outputs are (for "copied from" checks).
    folded: str
    word_count: int
    #: Each word 4-gram of the instructions -> the word positions where it starts.
    shingles: Mapping[tuple[str, ...], tuple[int, ...]]
    #: ``(value, kind)`` of each value the instructions keep secret.
    secrets: tuple[tuple[str, str], ...]


def leakage_reference(system_instructions: str) -> LeakageReference:
    """Index ``system_instructions`` for :func:`detect_leakage`."""
    folded = text_view(system_instructions).text
    words = _tokens(folded)
    positions: dict[tuple[str, ...], list[int]] = {}
    for i, shingle in enumerate(_shingles(words)):
        positions.setdefault(shingle, []).append(i)
    shingles = MappingProxyType({key: tuple(value) for key, value in positions.items()})
    secrets = tuple(_protected_values(system_instructions).items())
    return LeakageReference(folded, len(words), shingles, secrets)


def detect_leakage(
    output_text: str,
    system_instructions: str | LeakageReference | None,
    *,
    include_secrets: bool = True,
    min_ratio: float = 0.2,
    min_words: int = 8,
) -> list[Finding]:
    """Leakage findings in ``output_text`` (offsets into it), ordered by offset.

    ``include_secrets=False`` leaves out the ``secret.*`` findings, for a caller that
    already runs :func:`detect_secrets` on the output.
    """
    if not output_text:
        return []
    reference = (
        leakage_reference(system_instructions)
        if isinstance(system_instructions, str)
        else system_instructions
    )
    findings: list[Finding] = []
    view = text_view(output_text)
    if reference is not None and reference.word_count:
        echo = _system_prompt_echo(view, reference, min_ratio, min_words)
        if echo is not None:
            findings.append(echo)
        findings.extend(_system_secrets(view, reference.secrets))
    if include_secrets:
        for finding in detect_secrets(output_text, side=Side.OUTPUT):
            value = output_text[finding.start : finding.end]
            finding = replace(finding, detector=DETECTOR)
            if reference is not None and value and value in reference.folded:
                finding = replace(
                    finding,
                    severity=Severity(min(finding.severity + 1, Severity.CRITICAL)),
                    message=f"{finding.message}, copied from the system instructions",
                )
            findings.append(finding)
    findings.sort(key=lambda f: (f.start, f.end))
    return findings


def shingle_overlap(output_text: str, reference: str | LeakageReference) -> float:
    """Fraction of the reference's words covered by word 4-grams shared with the output."""
    if isinstance(reference, str):
        reference = leakage_reference(reference)
    if not reference.word_count:
        return 0.0
    covered, _ = _cover(_tokens(text_view(output_text).text), reference)
    return len(covered) / reference.word_count


def _tokens(text: str) -> list[str]:
    lowered = text.lower()
    if len(lowered) == len(text):  # the same words, lower-cased in one pass
        return _WORD.findall(lowered)
    return [word.lower() for word in _WORD.findall(text)]


def _shingles(words: list[str]) -> Iterator[tuple[str, ...]]:
    return zip(*(words[i:] for i in range(SHINGLE_WORDS)), strict=False)


def _cover(output: list[str], reference: LeakageReference) -> tuple[set[int], list[int]]:
    """Covered reference word positions, and output positions starting a shared 4-gram."""
    covered: set[int] = set()
    starts: list[int] = []
    shingles = reference.shingles
    for j, shingle in enumerate(_shingles(output)):
        where = shingles.get(shingle)
        if where is not None:
            starts.append(j)
            for i in where:
                covered.update(range(i, i + SHINGLE_WORDS))
    return covered, starts


def _system_prompt_echo(
    view: TextView, reference: LeakageReference, min_ratio: float, min_words: int
) -> Finding | None:
    covered, starts = _cover(_tokens(view.text), reference)
    count, total = len(covered), reference.word_count
    ratio = count / total
    if count < min(min_words, total) or (ratio < min_ratio and count < 40):
        return None
    passages = 1 + sum(1 for a, b in zip(starts, starts[1:], strict=False) if b > a + SHINGLE_WORDS)
    if (ratio >= 0.5 and count >= 20) or count >= 100:
        severity = Severity.HIGH
    elif ratio >= 0.2 and count >= 12:
        severity = Severity.MEDIUM
    else:
        severity = Severity.LOW
    spans = [m.span() for m in _WORD.finditer(view.text)]
    start, end = view.span(spans[starts[0]][0], spans[starts[-1] + SHINGLE_WORDS - 1][1])
    return Finding(
        finding_type=LEAKAGE_SYSTEM_PROMPT,
        severity=severity,
        confidence=round(ratio, 3),
        detector=DETECTOR,
        side=Side.OUTPUT,
        start=start,
        end=end,
        evidence=f"{count}/{total} instruction words in {passages} passage(s)",
        message=f"output repeats {ratio:.0%} of the system instructions",
    )


def _protected_values(instructions: str) -> dict[str, str]:
    """Values the instructions keep secret -> what they are (``password``, a secret type)."""
    values: dict[str, str] = {}
    for match in _MARKED_SECRET.finditer(instructions):
        value = match.group("value").rstrip(".!?:)")
        if len(value) >= 3 and value.lower() not in _NOT_A_VALUE:
            values.setdefault(value, match.group().split()[0].lower().rstrip(":="))
    for finding in detect_secrets(instructions):
        values.setdefault(instructions[finding.start : finding.end], finding.finding_type)
    return values


def _system_secrets(view: TextView, values: tuple[tuple[str, str], ...]) -> list[Finding]:
    if not values:
        return []
    lowered = view.text.lower()
    if len(lowered) != len(view.text):  # a few characters lower-case to two
        lowered = view.text
    squeezed_text: tuple[str, list[int]] | None = None
    findings = []
    for value, kind in values:
        needle = value.lower()
        confidence, span = 0.95, _find_word(lowered, needle)
        if span is None and len(needle) >= 5:
            squeezed = "".join(char for char in needle if char.isalnum())
            if squeezed_text is None:
                squeezed_text = _compact(lowered)
            compact, where = squeezed_text
            for candidate in (squeezed, squeezed[::-1]):
                at = compact.find(candidate) if len(candidate) >= 5 else -1
                if at >= 0:
                    confidence, span = 0.8, (where[at], where[at + len(candidate) - 1] + 1)
                    break
        if span is None:
            continue
        start, end = view.span(*span)
        findings.append(
            Finding(
                finding_type=LEAKAGE_SYSTEM_SECRET,
                severity=Severity.HIGH,
                confidence=confidence,
                detector=DETECTOR,
                side=Side.OUTPUT,
                start=start,
                end=end,
                evidence=mask_secret(value, shown=0),
                message=f"a {kind} from the system instructions appears in the output",
            )
        )
    return findings


def _find_word(text: str, needle: str) -> tuple[int, int] | None:
    """First occurrence of ``needle`` not inside a longer alphanumeric token."""
    at = text.find(needle)
    while at >= 0:
        end = at + len(needle)
        before_ok = at == 0 or not (text[at - 1].isalnum() and needle[0].isalnum())
        after_ok = end == len(text) or not (text[end].isalnum() and needle[-1].isalnum())
        if before_ok and after_ok:
            return at, end
        at = text.find(needle, at + 1)
    return None


def _compact(text: str) -> tuple[str, list[int]]:
    """Only the alphanumerics of ``text``, with each one's index in ``text``."""
    where = [i for i, char in enumerate(text) if char.isalnum()]
    return "".join(text[i] for i in where), where
