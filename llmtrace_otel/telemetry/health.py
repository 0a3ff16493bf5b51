"""``/health``: one report built from the parts of a process.

The pipeline contributes its exporters, analysis queue, upstream providers and circuit
breakers (:meth:`~llmtrace_otel.telemetry.pipeline.Telemetry.health`); each server adds its
own parts (request guards, the receiver queue, client connections) and renders the
document. A process keeps serving traffic when telemetry degrades, so ``degraded`` is a
signal for operators, not a reason to restart it: the endpoint answers 200 either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from llmtrace_otel.version import __version__

__all__ = ["DEGRADED", "HEALTHY", "HealthReport"]

HEALTHY = "healthy"
DEGRADED = "degraded"


@dataclass
class HealthReport:
    """Components, upstream providers and breakers, and whether any of them is degraded."""

    components: dict[str, dict[str, object]] = field(default_factory=dict)
    providers: dict[str, dict[str, object]] = field(default_factory=dict)
    breakers: dict[str, dict[str, object]] = field(default_factory=dict)
    degraded: bool = False

    def add(self, name: str, details: dict[str, object], *, degraded: bool = False) -> None:
        self.components[name] = details
        self.degraded |= degraded

    def document(self, *, started_monotonic: float, in_flight: int,
                 **extra: Any) -> dict[str, Any]:
        """The JSON document of ``/health`` (``extra`` keys are added at the end)."""
        return {
            "status": DEGRADED if self.degraded else HEALTHY,
            "version": __version__,
            "uptime_s": round(time.monotonic() - started_monotonic, 3),
            "in_flight": in_flight,
            "components": self.components,
            "providers": self.providers,
            "breakers": self.breakers,
            **extra,
        }
