"""Redaction of PII and secrets in the *exported copy* of a span's content attributes.

With ``security.pii_export = redact`` (and content capture on), the security processor
replaces every value its PII and secrets detectors found with a placeholder::

    jane.doe@example.com      -> [PII:EMAIL]
    4539 1488 0343 6467       -> [PII:CREDIT_CARD]
    AKIA...                   -> [SECRET:AWS_ACCESS_KEY]

Findings carry offsets into their segment's text (:mod:`processors.security.segments`),
and a segment's ``location`` names where in which attribute that text sits
(``gen_ai.input.messages[1].parts[0]``). :func:`redact_attributes` walks the same JSON
structure the segments were read from and replaces the text there, so the semconv JSON
shape of ``gen_ai.input.messages`` and the others is kept: only string values change. A
text that is a JSON value serialised for scanning (tool-call arguments and responses
given as objects) is redacted in that serialisation and parsed back; if the placeholder
made it invalid JSON (a phone number that was a JSON number), the redacted serialisation
is kept as a string.

The span the application or the proxy handled is never touched: the chain works on copies,
and the client and the upstream saw the original bytes long before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.util.types import AttributeValue

from llmtrace_processors.json_text import loads
from llmtrace_processors.security.findings import Finding

__all__ = [
    "Redaction",
    "TextRedaction",
    "placeholder",
    "redact_attributes",
    "redact_text",
]

_PII = {
    "pii.email": "[PII:EMAIL]",
    "pii.phone": "[PII:PHONE]",
    "pii.credit_card": "[PII:CREDIT_CARD]",
    "pii.us_ssn": "[PII:US_SSN]",
    "pii.iban": "[PII:IBAN]",
    "pii.ip_address": "[PII:IP_ADDRESS]",
}
_SYSTEM_SECRET = "leakage.system_secret"
_LOCATION = re.compile(r"^(?P<key>[^\[]+)\[(?P<i>\d+)\](?:\.parts\[(?P<j>\d+)\])?$")
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def placeholder(finding_type: str) -> str | None:
    """The placeholder for a finding type, or None when it is not redacted.

    ``pii.<kind>`` -> ``[PII:<KIND>]``, ``secret.<kind>`` -> ``[SECRET:<KIND>]``, and a
    value the system instructions keep secret echoed in the output (``leakage.system_secret``)
    -> ``[SECRET:SYSTEM_SECRET]``. Injection findings and system-prompt echoes are evidence
    about the text, not a value in it, and are not redacted.
    """
    known = _PII.get(finding_type)
    if known is not None:
        return known
    if finding_type.startswith("pii."):
        return f"[PII:{finding_type[4:].upper()}]"
    if finding_type.startswith("secret."):
        return f"[SECRET:{finding_type[7:].upper()}]"
    if finding_type == _SYSTEM_SECRET:
        return "[SECRET:SYSTEM_SECRET]"
    return None


@dataclass(frozen=True, slots=True)
class TextRedaction:
    """A text with its redacted spans replaced: ``spans`` are (old start, old end, new start,
    new end), in order, so positions in the old text can be mapped to the new one."""

    text: str
    spans: tuple[tuple[int, int, int, int], ...]

    def position(self, old: int, *, end: bool = False) -> int:
        """Where ``old`` (an offset in the original text) is in the redacted text; an offset
        inside a redacted value maps to the start (or, with ``end``, the end) of its
        placeholder."""
        shift = 0
        for o_start, o_end, n_start, n_end in self.spans:
            if old <= o_start:
                break
            if old < o_end:
                return n_end if end else n_start
            shift = n_end - o_end
        return old + shift


def redact_text(text: str, findings: Iterable[Finding]) -> TextRedaction | None:
    """``text`` with each redactable finding's span replaced by its placeholder.

    Overlapping spans merge into one placeholder (the most severe finding's). Returns None
    when nothing in ``text`` is redacted.
    """
    spans: list[tuple[int, int, int, str]] = []
    for finding in findings:
        mark = placeholder(finding.finding_type)
        if mark is None or not 0 <= finding.start < finding.end <= len(text):
            continue
        spans.append((finding.start, finding.end, int(finding.severity), mark))
    if not spans:
        return None
    spans.sort()
    merged: list[list[Any]] = []
    for start, end, rank, mark in spans:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], end)
            if rank > last[2]:
                last[2], last[3] = rank, mark
            continue
        merged.append([start, end, rank, mark])
    out: list[str] = []
    mapped: list[tuple[int, int, int, int]] = []
    cursor = length = 0
    for start, end, _, mark in merged:
        out.append(text[cursor:start])
        length += start - cursor
        out.append(mark)
        mapped.append((start, end, length, length + len(mark)))
        length += len(mark)
        cursor = end
    out.append(text[cursor:])
    return TextRedaction("".join(out), tuple(mapped))


@dataclass(frozen=True, slots=True)
class Redaction:
    """The rewritten content attributes and, per segment location, how its text changed."""

    attributes: Mapping[str, str]
    texts: Mapping[str, TextRedaction]
    count: int  # values replaced


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else _DUMPS(value)


def _redacted_value(value: Any, redaction: TextRedaction) -> Any:
    """A string value becomes the redacted text; a JSON value is parsed back from it."""
    if isinstance(value, str):
        return redaction.text
    try:
        return loads(redaction.text)
    except ValueError:
        return redaction.text


def _redact_part(part: Any, findings: Sequence[Finding]) -> tuple[Any, TextRedaction] | None:
    """The part with its scanned text redacted (the part's shape as segments reads it)."""
    if isinstance(part, str):
        redaction = redact_text(part, findings)
        return None if redaction is None else (redaction.text, redaction)
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    field = None
    if isinstance(part.get("content"), str):
        field = "content"
    elif kind == "tool_call_response":
        field = "response"
    elif kind == "tool_call" and part.get("arguments") is not None:
        field = "arguments"
    if field is None:
        return None
    value = part.get(field)
    redaction = redact_text(_as_text(value), findings)
    if redaction is None:
        return None
    return {**part, field: _redacted_value(value, redaction)}, redaction


def _redact_tool(tool: Any, findings: Sequence[Finding]) -> tuple[Any, TextRedaction] | None:
    """A tool definition, scanned as ``description + "\\n" + parameters``."""
    if not isinstance(tool, Mapping):
        return None
    description = _as_text(tool.get("description")) if tool.get("description") is not None else ""
    parameters = tool.get("parameters")
    params_text = _as_text(parameters) if parameters is not None else ""
    text = f"{description}\n{params_text}" if description and parameters is not None else (
        description or params_text)
    whole = redact_text(text, findings)
    if whole is None:
        return None
    updated = dict(tool)
    split = len(description) if description else -1
    if description:
        own = redact_text(description, [f for f in findings if f.end <= split])
        if own is not None:
            updated["description"] = _redacted_value(tool.get("description"), own)
    if parameters is not None:
        lead = split + 1 if description else 0
        shifted = [_shift(f, -lead) for f in findings if f.start >= lead]
        own = redact_text(params_text, shifted)
        if own is not None:
            updated["parameters"] = _redacted_value(parameters, own)
    return updated, whole


def _shift(finding: Finding, by: int) -> Finding:
    return replace(finding, start=finding.start + by, end=finding.end + by)


def _redact_in(data: Any, key: str, i: int, j: int | None,
               findings: Sequence[Finding]) -> tuple[Any, TextRedaction] | None:
    if not isinstance(data, list) or i >= len(data):
        return None
    item = data[i]
    if key.endswith("tool.definitions"):
        return _redact_tool(item, findings)
    if j is None:  # gen_ai.system_instructions[j]: a list of parts
        return _redact_part(item, findings)
    if not isinstance(item, Mapping):
        return None
    parts = item.get("parts")
    if parts is None and "content" in item:  # {"role", "content"}: the legacy shape
        done = _redact_part(item.get("content"), findings) if j == 0 else None
        return None if done is None else ({**item, "content": done[0]}, done[1])
    if isinstance(parts, str):
        done = _redact_part(parts, findings) if j == 0 else None
        return None if done is None else ({**item, "parts": done[0]}, done[1])
    if not isinstance(parts, list) or j >= len(parts):
        return None
    done = _redact_part(parts[j], findings)
    if done is None:
        return None
    new_parts = list(parts)
    new_parts[j] = done[0]
    return {**item, "parts": new_parts}, done[1]


def redact_attributes(
    attributes: Mapping[str, AttributeValue],
    findings_by_location: Mapping[str, Sequence[Finding]],
) -> Redaction | None:
    """Content attributes with the findings' values replaced by placeholders.

    ``findings_by_location`` maps a segment location to the findings in that segment's text.
    Returns the changed attributes only (serialised as the original JSON shape), or None
    when nothing was redacted.
    """
    parsed: dict[str, Any] = {}
    changed: dict[str, str] = {}
    dirty: set[str] = set()  # parsed attributes to serialise again
    texts: dict[str, TextRedaction] = {}
    count = 0
    for location, findings in findings_by_location.items():
        match = _LOCATION.match(location)
        if match is None:  # a whole attribute holding plain text
            raw = changed.get(location, attributes.get(location))
            if not isinstance(raw, str):
                continue
            redaction = redact_text(raw, findings)
            if redaction is None:
                continue
            changed[location] = redaction.text
            texts[location] = redaction
            count += len(redaction.spans)
            continue
        key = match.group("key")
        if key not in parsed:
            raw = attributes.get(key)
            try:
                parsed[key] = loads(raw) if isinstance(raw, str) else None
            except ValueError:
                parsed[key] = None
        i = int(match.group("i"))
        j = None if match.group("j") is None else int(match.group("j"))
        done = _redact_in(parsed[key], key, i, j, findings)
        if done is None:
            continue
        parsed[key][i] = done[0]
        dirty.add(key)
        texts[location] = done[1]
        count += len(done[1].spans)
    if not count:
        return None
    for key in dirty:  # once per attribute, however many of its parts changed
        changed[key] = _DUMPS(parsed[key])
    return Redaction(changed, texts, count)
