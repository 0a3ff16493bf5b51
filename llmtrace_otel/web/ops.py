"""Operational endpoints on a server's own port: ``/health`` and ``/metrics``.

Both handlers are given what they serve: ``/health`` a function returning the current
report (each server composes its own from its parts), ``/metrics`` the private Prometheus
registry of the process (never the global ``REGISTRY``), as ``metrics_exposition.py`` renders
it (gzip when asked), and the token it requires, if any (``api.admin_token``: metrics name
models, tenants and providers). ``/health`` stays open for load balancers and probes; it
reports states, not data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from tornado.web import RequestHandler

from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.errors import send_error_reply
from llmtrace_otel.web.metrics_exposition import render

__all__ = ["HEALTH_PATH", "METRICS_PATH", "HealthHandler", "MetricsHandler", "ops_routes"]

HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"


class HealthHandler(RequestHandler):
    """Liveness/readiness as JSON; always 200 (``degraded`` is for operators, not probes)."""

    def initialize(self, report: Callable[[], Mapping[str, Any]]) -> None:
        self._report = report

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self._report()))


class MetricsHandler(RequestHandler):
    """Serves a private Prometheus registry in the format the scraper asks for."""

    def initialize(self, registry: CollectorRegistry, auth: BearerToken | None = None) -> None:
        self._registry = registry
        self._auth = auth

    def get(self) -> None:
        if self._auth is not None:
            refusal = self._auth.refusal(self.request.headers.get("Authorization"))
            if refusal is not None:
                send_error_reply(self, refusal)
                return
        body, headers = render(self._registry, self.request.headers.get("Accept", ""),
                               self.request.headers.get("Accept-Encoding", ""))
        for name, value in headers.items():
            self.set_header(name, value)
        self.finish(body)


def ops_routes(report: Callable[[], Mapping[str, Any]], registry: CollectorRegistry | None,
               auth: BearerToken | None = None) -> list[tuple[str, type, dict[str, Any]]]:
    """``/health``, and ``/metrics`` when metrics are on (a registry is given), behind
    ``auth`` when a token is required."""
    routes: list[tuple[str, type, dict[str, Any]]] = [
        (HEALTH_PATH, HealthHandler, {"report": report})]
    if registry is not None:
        routes.append((METRICS_PATH, MetricsHandler, {"registry": registry, "auth": auth}))
    return routes
