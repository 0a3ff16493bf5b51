"""The read-only query API on the proxy's port: ``/api/v1/traces``, ``/api/v1/traces/{id}``,
``/api/v1/spans/{id}``, ``/api/v1/stats`` and ``/api/v1/findings`` (docs/api.md,
docs/openapi.yaml)."""

from __future__ import annotations

from typing import Any

from llmtrace_otel.api.handlers import (
    ApiContext,
    ApiNotFoundHandler,
    FindingsHandler,
    SpanHandler,
    StatsHandler,
    TraceHandler,
    TracesHandler,
)

__all__ = ["API_PREFIX", "ApiContext", "api_routes"]

#: Every path at or below this prefix belongs to the API and is never proxied.
API_PREFIX = "/api/v1"


def api_routes(context: ApiContext) -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado routes of the API; register them before the proxy's catch-all route."""
    args = {"context": context}
    return [
        (rf"{API_PREFIX}/traces", TracesHandler, args),
        (rf"{API_PREFIX}/traces/([^/]+)", TraceHandler, args),
        (rf"{API_PREFIX}/spans/([^/]+)", SpanHandler, args),
        (rf"{API_PREFIX}/stats", StatsHandler, args),
        (rf"{API_PREFIX}/findings", FindingsHandler, args),
        (rf"{API_PREFIX}(/.*)?", ApiNotFoundHandler, args),
    ]
