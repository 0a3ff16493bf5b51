"""Security findings as the read side shows them: typed views of ``llmtrace.security.finding``
span events.

The security processor writes one span event per finding; its attribute keys may be bare
(``type``, ``severity``) or namespaced (``llmtrace.security.finding.type``). A view takes
the last dotted segment of each key, so both spellings read the same, and keeps only the
fields below; everything else stays available in the raw event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from llmtrace_processors.attributes import LLMTRACE_SECURITY_FINDING_EVENT

__all__ = ["FINDING_EVENT", "FindingView", "findings_of"]

FINDING_EVENT: Final = LLMTRACE_SECURITY_FINDING_EVENT
_ALIASES: Final = {"finding_type": "type", "kind": "type"}


@dataclass(frozen=True, slots=True)
class FindingView:
    """One finding. ``start``/``end`` index the text the detector saw (see docs/ui.md for
    how the viewer highlights them); ``evidence`` is an already-redacted excerpt."""

    type: str | None
    severity: str | None
    confidence: float | None
    side: str | None  # input | output
    detector: str | None
    start: int | None
    end: int | None
    evidence: str | None
    message: str | None
    timestamp_ns: int | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _view(attributes: Mapping[str, Any], timestamp_ns: int | None) -> FindingView:
    fields: dict[str, Any] = {}
    for key, value in attributes.items():
        name = key.rsplit(".", 1)[-1]
        fields.setdefault(_ALIASES.get(name, name), value)
    severity = fields.get("severity")
    return FindingView(
        type=_text(fields.get("type")),
        severity=severity.lower() if isinstance(severity, str) else None,
        confidence=_float(fields.get("confidence")),
        side=_text(fields.get("side")),
        detector=_text(fields.get("detector")),
        start=_int(fields.get("start")),
        end=_int(fields.get("end")),
        evidence=_text(fields.get("evidence")),
        message=_text(fields.get("message")),
        timestamp_ns=timestamp_ns,
    )


def findings_of(events: Iterable[Any]) -> tuple[FindingView, ...]:
    """The findings among ``events`` (objects with ``name``, ``attributes``, ``timestamp_ns``)."""
    return tuple(
        _view(event.attributes, event.timestamp_ns)
        for event in events
        if event.name == FINDING_EVENT
    )
