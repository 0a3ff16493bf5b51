"""``llmtrace-otel collect``: the OTLP receivers, the pipeline, ``/metrics`` and ``/health``.

One Tornado application answers ``/v1/traces``, ``/v1/metrics``, ``/health`` and
``/metrics`` on both the ops listener (``server.host:server.port``) and the OTLP/HTTP
listener (``receiver.http_endpoint``); a grpcio server answers OTLP/gRPC on
``receiver.grpc_endpoint``. No proxy runs.

Shutdown order: stop accepting (gRPC lets running calls finish), hand every queued span
to the chain, flush the chain and exporters, shut the providers down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from llmtrace_otel.config import Settings, split_endpoint
from llmtrace_otel.proxy.ops import (
    HEALTH_PATH,
    METRICS_PATH,
    InFlight,
    MetricsHandler,
    health_report,
)
from llmtrace_otel.receiver.grpc_server import GRPCReceiver
from llmtrace_otel.receiver.http import otlp_routes
from llmtrace_otel.receiver.service import OTLPReceiver
from llmtrace_otel.telemetry.pipeline import Telemetry

__all__ = ["CollectorServer"]

_log = logging.getLogger(__name__)


class _HealthHandler(RequestHandler):
    def initialize(self, server: CollectorServer) -> None:
        self._server = server

    def get(self) -> None:
        report = self._server.health()
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(report))


class CollectorServer:
    """Receivers + pipeline of one ``collect`` process; start/stop on its event loop."""

    def __init__(self, settings: Settings, telemetry: Telemetry, *,
                 env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.receiver = OTLPReceiver(settings, telemetry, env=env)
        self._started = time.monotonic()
        self._http: HTTPServer | None = None
        self._grpc: GRPCReceiver | None = None
        self.ops_port: int | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None

    def health(self) -> dict[str, Any]:
        report = health_report(self.telemetry, self._started, InFlight())
        component = self.receiver.health()
        report["components"]["receiver_queue"] = component
        if component["state"] != "ok":
            report["status"] = "degraded"
        return report

    def _app(self) -> Application:
        routes: list[tuple[str, type, dict[str, Any]]] = [
            (HEALTH_PATH, _HealthHandler, {"server": self})]
        if self.telemetry.prometheus_registry is not None:
            routes.append((METRICS_PATH, MetricsHandler,
                           {"registry": self.telemetry.prometheus_registry}))
        routes.extend(otlp_routes(self.receiver))
        return Application(routes, compress_response=False, serve_traceback=False,
                           log_function=lambda handler: None)

    async def start(self) -> None:
        settings = self.settings
        sockets = bind_sockets(settings.port, settings.host, reuse_port=False)
        self.ops_port = sockets[0].getsockname()[1]
        if settings.receiver_http_endpoint is not None:
            host, port = split_endpoint("receiver.http_endpoint", settings.receiver_http_endpoint)
            if (host, port) == (settings.host, settings.port) and port != 0:
                self.http_port = self.ops_port
            else:
                extra = bind_sockets(port, host, reuse_port=False)
                self.http_port = extra[0].getsockname()[1]
                sockets.extend(extra)
        self._http = HTTPServer(self._app(), max_body_size=settings.max_body_bytes + 1024 * 1024,
                                idle_connection_timeout=75, decompress_request=False)
        self._http.add_sockets(sockets)
        if settings.receiver_grpc_endpoint is not None:
            host, port = split_endpoint("receiver.grpc_endpoint", settings.receiver_grpc_endpoint)
            self._grpc = GRPCReceiver(self.receiver, host, port)
            self.grpc_port = self._grpc.start()
        _log.info(
            "llmtrace-otel collect: OTLP/gRPC %s, OTLP/HTTP %s, /health and /metrics on "
            "http://%s:%d", f"port {self.grpc_port}" if self._grpc else "off",
            f"port {self.http_port}" if self.http_port else "off", settings.host, self.ops_port)

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, drain the receiver queue into the pipeline, flush everything."""
        timeout_s = timeout_s or self.settings.shutdown_timeout_s
        loop = asyncio.get_running_loop()
        if self._http is not None:
            self._http.stop()
        if self._grpc is not None:
            await loop.run_in_executor(None, self._grpc.stop, min(5.0, timeout_s))
        if self._http is not None:
            await self._http.close_all_connections()
        await loop.run_in_executor(None, self._drain_and_flush, timeout_s)

    def _drain_and_flush(self, timeout_s: float) -> None:
        try:
            self.receiver.close(timeout_s)
            self.telemetry.force_flush(int(timeout_s * 1000))
        finally:
            self.telemetry.shutdown()
