"""The value every security detector returns: a :class:`Finding`.

Detectors are pure functions ``detect(text: str, ...) -> list[Finding]``; the security
processor turns findings into span events, a score, metrics and enforcement decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Finding", "Severity", "Side"]


class Severity(IntEnum):
    """Ordered by rank, so severities compare as numbers (never as strings)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of {names}") from None


class Side:
    """Which side of the call a finding is on."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a detector found.

    ``finding_type`` is a stable dotted identifier, low-cardinality (used as a metric
    label): ``prompt_injection``, ``jailbreak``, ``pii.email``, ``secret.aws_access_key``,
    ``leakage.system_prompt`` ... ``start``/``end`` index the text the detector was given
    (after normalisation when the detector normalises; -1 when not applicable).
    ``evidence`` is a short, already-redacted excerpt safe to export (never a full secret
    or a full PII value). ``rules`` names the rules whose evidence the finding rests on
    (``override.aimed``, ...); ``model_score`` is the learned classifier's probability when
    its evidence counted (None when the model did not fire or did not run).
    """

    finding_type: str
    severity: Severity
    confidence: float  # 0.0 .. 1.0
    detector: str
    side: str = Side.INPUT
    start: int = -1
    end: int = -1
    evidence: str = ""
    message: str = ""
    rules: tuple[str, ...] = ()
    model_score: float | None = None
