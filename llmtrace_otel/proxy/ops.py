"""Operational endpoints on the proxy's own port: ``/health`` and ``/metrics``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmtrace_processors.chain import BackgroundSpanProcessor
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from tornado.web import RequestHandler

from llmtrace_otel import __version__
from llmtrace_otel.proxy.guards import GuardChain
from llmtrace_otel.telemetry.pipeline import Telemetry

__all__ = ["HealthHandler", "InFlight", "MetricsHandler", "breaker_report", "health_report"]

HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"


class InFlight:
    """Counts requests being proxied so shutdown can wait for them (per server)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True, slots=True)
class _OpsContext:
    telemetry: Telemetry
    started_monotonic: float
    in_flight: InFlight
    guards: GuardChain | None = None
    #: Open/max/refused client connections (proxy/limits.py), when the server has started.
    connections: Callable[[], dict[str, int]] | None = None


def health_report(telemetry: Telemetry, started_monotonic: float, in_flight: InFlight,
                  guards: GuardChain | None = None) -> dict:
    """Liveness/readiness: ``healthy`` unless a component is failing or an upstream
    provider is unavailable (``degraded``; ``providers`` says which and why).

    The proxy keeps relaying traffic when telemetry degrades, so ``degraded`` is still
    served with 200: it is a signal for operators, not a reason to restart the pod.
    """
    components: dict[str, dict[str, object]] = {}
    degraded = False
    for exporter in telemetry.exporters:
        state = "unknown" if exporter.last_ok is None else ("ok" if exporter.last_ok else "failing")
        component: dict[str, object] = {"failed_batches": exporter.failed_batches}
        store_health = getattr(exporter.exporter, "health", None)  # the PostgreSQL store's
        if store_health is not None:
            component["store"] = store = store_health()
            if store["state"] in ("unavailable", "failing"):
                state = str(store["state"])  # known before, and during, a held batch
        degraded |= state in ("failing", "unavailable")
        components[f"exporter.{exporter.name}"] = {"state": state, **component}
    head = telemetry.head
    if isinstance(head, BackgroundSpanProcessor):
        depth, capacity = head.queue_depth, head.capacity
        full = depth >= capacity * 0.9
        degraded |= full
        components["analysis_queue"] = {
            "state": "saturated" if full else "ok",
            "depth": depth,
            "capacity": capacity,
        }
    if guards is not None:
        for name, (details, failing) in guards.health().items():
            degraded |= failing
            components[name] = details
    providers: dict[str, dict[str, object]] = {}
    for provider in telemetry.instruments.provider_health.states():
        providers[provider.provider] = provider.as_dict()
        degraded |= not provider.available
    breakers = breaker_report(telemetry)
    degraded |= any(detail["state"] != "closed" for detail in breakers.values())
    return {
        "status": "degraded" if degraded else "healthy",
        "version": __version__,
        "uptime_s": round(time.monotonic() - started_monotonic, 3),
        "in_flight": in_flight.count,
        "components": components,
        "providers": providers,
        "breakers": breakers,
    }


def breaker_report(telemetry: Telemetry) -> dict[str, dict[str, object]]:
    """Each circuit breaker by subsystem; any not ``closed`` makes the status ``degraded``."""
    if telemetry.breakers is None:
        return {}
    return {snap.subsystem: snap.as_dict() for snap in telemetry.breakers.snapshots()}


class HealthHandler(RequestHandler):
    def initialize(self, context: _OpsContext) -> None:
        self._ctx = context

    def get(self) -> None:
        report = health_report(self._ctx.telemetry, self._ctx.started_monotonic,
                               self._ctx.in_flight, self._ctx.guards)
        if self._ctx.connections is not None:
            report["connections"] = self._ctx.connections()
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(report))


class MetricsHandler(RequestHandler):
    """Serves the private Prometheus registry (never the global REGISTRY)."""

    def initialize(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def get(self) -> None:
        encoder, content_type = choose_encoder(self.request.headers.get("Accept", ""))
        self.set_header("Content-Type", content_type)
        self.finish(encoder(self._registry))
