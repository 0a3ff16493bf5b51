"""Alerts: what happened (:class:`Alert`), and the dispatcher that decides who hears it.

:class:`AlertDispatcher.raise_alert` never blocks and never raises: it applies the
cool-down (one alert per ``dedup_key``, i.e. per tenant and kind, per ``cooldown_s``),
then offers the alert to every channel whose minimum severity it reaches. Channels
deliver on their own threads (:mod:`llmtrace_otel.tenancy.notifiers`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

__all__ = ["Alert", "AlertChannel", "AlertDispatcher", "AlertSeverity"]

_log = logging.getLogger(__name__)
_MAX_COOLDOWN_KEYS = 10_000


class AlertSeverity(IntEnum):
    """Ordered by rank (compare as numbers); names are PagerDuty's severities."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> AlertSeverity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of {names}") from None


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. ``kind`` is stable and low-cardinality (``budget_soft``,
    ``budget_hard``, ``anomaly``, ``state_backend_degraded``)."""

    kind: str
    severity: AlertSeverity
    tenant: str
    summary: str
    agent: str | None = None
    #: What distinguishes alerts of one kind (budget window, anomaly type).
    subject: str = ""
    details: Mapping[str, str | float | int | None] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)

    @property
    def dedup_key(self) -> str:
        parts = ["llmtrace", self.tenant, self.agent or "", self.kind, self.subject]
        return "|".join(parts)


class AlertChannel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def min_severity(self) -> AlertSeverity: ...

    def offer(self, alert: Alert) -> None:
        """Queue for delivery; never blocks (a full queue drops and counts)."""
        ...

    def close(self, timeout_s: float) -> None: ...


_Count = Callable[[str, str, str], None]  # (kind, severity, outcome)


class AlertDispatcher:
    """Cool-down and fan-out; thread-safe (called from the loop and the analysis worker)."""

    def __init__(self, channels: Sequence[AlertChannel], *, cooldown_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 count: _Count | None = None) -> None:
        self.channels = tuple(channels)
        self._cooldown = cooldown_s
        self._clock = clock
        self._count = count or (lambda kind, severity, outcome: None)
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def raise_alert(self, alert: Alert) -> bool:
        """Deliver unless the same (tenant, kind, subject) alerted within the cool-down;
        returns whether it was sent to the channels."""
        try:
            now = self._clock()
            key = alert.dedup_key
            with self._lock:
                last = self._last.get(key)
                if last is not None and now - last < self._cooldown:
                    self._count(alert.kind, alert.severity.label, "cooldown")
                    return False
                self._last[key] = now
                if len(self._last) > _MAX_COOLDOWN_KEYS:
                    cutoff = now - self._cooldown
                    self._last = {k: t for k, t in self._last.items() if t >= cutoff}
            self._count(alert.kind, alert.severity.label, "raised")
            _log.info("alert %s (%s) tenant=%s: %s", alert.kind, alert.severity.label,
                      alert.tenant, alert.summary)
            for channel in self.channels:
                if alert.severity >= channel.min_severity:
                    channel.offer(alert)
            return True
        except Exception:  # an alert must never break the caller
            _log.exception("alert dispatch failed")
            return False

    def close(self, timeout_s: float = 5.0) -> None:
        for channel in self.channels:
            channel.close(timeout_s)
