"""The Tornado application and server lifecycle: start, serve, drain, stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from llmtrace_otel.api import ApiContext, api_routes
from llmtrace_otel.config import Settings, split_list
from llmtrace_otel.exporters.store import open_store
from llmtrace_otel.proxy.guards import GuardChain, RequestGuard
from llmtrace_otel.proxy.handler import ProxyContext, ProxyHandler
from llmtrace_otel.proxy.http_metrics import HttpServerMetrics, MeteredApplication
from llmtrace_otel.proxy.limits import BoundedHTTPServer, ensure_open_files, listen_backlog
from llmtrace_otel.proxy.ops import (
    HEALTH_PATH,
    METRICS_PATH,
    HealthHandler,
    InFlight,
    MetricsHandler,
    _OpsContext,
)
from llmtrace_otel.proxy.routing import Router
from llmtrace_otel.proxy.security_guard import SecurityGuard
from llmtrace_otel.proxy.stream_guard import StreamScanPolicy
from llmtrace_otel.proxy.upstream import UpstreamClient
from llmtrace_otel.receiver.http import otlp_routes
from llmtrace_otel.receiver.service import OTLPReceiver
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.ui import ui_routes

__all__ = ["ProxyServer", "build_guards", "make_app"]

_log = logging.getLogger(__name__)
_access_log = logging.getLogger("llmtrace_otel.access")


def make_app(context: ProxyContext, ops: _OpsContext, api: ApiContext | None = None,
             receiver: OTLPReceiver | None = None) -> Application:
    routes: list[tuple[str, type, dict]] = [(HEALTH_PATH, HealthHandler, {"context": ops})]
    registry = context.telemetry.prometheus_registry
    if registry is not None:
        routes.append((METRICS_PATH, MetricsHandler, {"registry": registry}))
    from llmtrace_otel.tenancy.api import budget_routes

    routes.extend(budget_routes(context.guards.guards, context.settings.api_admin_token))
    if api is not None:  # /api/v1/* and /ui/* are reserved then: never proxied
        routes.extend(api_routes(api) + ui_routes())
    if receiver is not None:  # receiver.on_proxy: OTLP/HTTP on the proxy's own port
        routes.extend(otlp_routes(receiver))
    routes.append((r"/.*", ProxyHandler, {"context": context}))
    settings = context.settings
    http_metrics = None
    if settings.metrics_http_server:
        http_metrics = HttpServerMetrics(
            context.telemetry.meter,
            exclude_paths=split_list(settings.metrics_http_exclude_paths),
            routes=[pattern for pattern, _, _ in routes],
        )
    return MeteredApplication(routes, http_metrics=http_metrics, compress_response=False,
                              serve_traceback=False, log_function=_log_request)


def _log_request(handler: RequestHandler) -> None:
    """Access log at DEBUG: every call is already a span, and an upstream's 5xx relayed
    to the client is not an error of the proxy (Tornado would log it at ERROR)."""
    if _access_log.isEnabledFor(logging.DEBUG):
        _access_log.debug("%d %s %.2fms", handler.get_status(), handler._request_summary(),
                          1000.0 * handler.request.request_time())


def _api_context(settings: Settings, telemetry: Telemetry) -> ApiContext | None:
    if not settings.api_enabled:
        return None
    if settings.api_admin_token is None and settings.host not in ("127.0.0.1", "::1", "localhost"):
        _log.warning("the query API and /ui are open to anyone who reaches %s:%d; set "
                     "api.admin_token (or api.enabled=false)", settings.host, settings.port)
    store = open_store(settings, on_operation=telemetry.instruments.count_storage)
    return ApiContext(store, settings.api_admin_token)


def build_guards(settings: Settings, telemetry: Telemetry) -> list[RequestGuard]:
    """The request guards the settings ask for, in the order they run."""
    guards: list[RequestGuard] = []
    from llmtrace_otel.tenancy.build import build_tenancy_guard

    tenancy = build_tenancy_guard(settings, telemetry)
    if tenancy is not None:
        guards.append(tenancy)
    if settings.security_enforcement != "off":
        guards.append(SecurityGuard.from_settings(settings))
    return guards


class ProxyServer:
    """One proxy listener. ``start``/``stop`` run on the event loop that serves it."""

    def __init__(
        self,
        settings: Settings,
        telemetry: Telemetry,
        guards: Sequence[RequestGuard] | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.in_flight = InFlight()
        telemetry.instruments.observe_active_connections(lambda: self.in_flight.count)
        self._upstream = UpstreamClient(settings)
        chain = GuardChain(
            build_guards(settings, telemetry) if guards is None else guards,
            telemetry.instruments.count_drop,
        )
        self._context = ProxyContext(
            settings, Router(settings), self._upstream, telemetry, self.in_flight, chain,
            StreamScanPolicy.from_settings(settings, telemetry.instruments.count_drop))
        self._ops = _OpsContext(telemetry, time.monotonic(), self.in_flight, chain,
                                self._connections)
        self._api = _api_context(settings, telemetry)
        self._receiver = OTLPReceiver(settings, telemetry) if settings.receiver_on_proxy else None
        self._server: BoundedHTTPServer | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Bind and serve; returns the port (useful with port 0)."""
        settings = self.settings
        # A listen backlog that absorbs a burst of new connections (Tornado's default, 128,
        # drops SYNs past it: clients then wait a 1 s retransmit; the kernel caps it at
        # net.core.somaxconn).
        sockets = bind_sockets(settings.port, settings.host, reuse_port=False,
                               backlog=listen_backlog(settings.max_connections))
        self.port = sockets[0].getsockname()[1]
        router = self._context.router
        self._server = BoundedHTTPServer(
            make_app(self._context, self._ops, self._api, self._receiver),
            # Our handler answers 413 itself below this bound (in the API's error shape);
            # Tornado's own limit only stops a chunked body that keeps going far beyond.
            max_body_size=settings.max_body_bytes * 2 + 1024 * 1024,
            # Also the time a client has to send its headers (slowloris; docs/reliability.md).
            idle_connection_timeout=settings.idle_timeout_s,
            body_timeout=settings.body_timeout_s,
            decompress_request=False,
            max_connections=ensure_open_files(settings.max_connections,
                                              settings.max_upstream_connections),
            max_header_bytes=settings.max_header_bytes,
            flavor_of=lambda method, path, headers: router.route(method, path, headers).flavor,
        )
        self._server.add_sockets(sockets)
        _log.info("llmtrace-otel proxy listening on http://%s:%d -> %s", settings.host,
                  self.port, settings.upstream_url)
        return self.port

    def _connections(self) -> dict[str, int]:
        server = self._server
        return {} if server is None else server.connection_report()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, let in-flight calls finish (bounded), flush telemetry."""
        deadline = time.monotonic() + (timeout_s or self.settings.shutdown_timeout_s)
        if self._server is not None:
            self._server.stop()
        while self.in_flight.count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.in_flight.count:
            _log.warning("shutdown deadline reached with %d calls in flight",
                         self.in_flight.count)
        if self._server is not None:
            await self._server.close_all_connections()
        await self._upstream.close()
        if self._api is not None:
            self._api.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._flush_telemetry)
        await self._context.guards.aclose()  # after the flush: spend of the last spans

    def _flush_telemetry(self) -> None:
        try:
            if self._receiver is not None:
                self._receiver.close(self.settings.shutdown_timeout_s)
            self.telemetry.force_flush()
        finally:
            self.telemetry.shutdown()
