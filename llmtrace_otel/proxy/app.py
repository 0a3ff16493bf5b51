"""The proxy's Tornado application and its lifecycle: start, serve, drain, stop.

The server is given everything it serves (:mod:`llmtrace_otel.wiring` builds it): the
relay's :class:`~llmtrace_otel.proxy.handler.ProxyContext`, and the routes of the other
parts mounted on the same port before the relay's catch-all (query API, viewer, budgets,
OTLP receiver), which are therefore never relayed upstream.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tornado.web import Application, RequestHandler

from llmtrace_otel.compat import request_summary
from llmtrace_otel.proxy.handler import ProxyContext, ProxyHandler
from llmtrace_otel.proxy.http_metrics import HttpServerMetrics, MeteredApplication
from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.gate import SMALL_BODY_BYTES
from llmtrace_otel.web.ops import HEALTH_PATH, METRICS_PATH, ops_routes
from llmtrace_otel.web.server import (
    BoundedHTTPServer,
    RouteSpec,
    ServerConfig,
    ensure_open_files,
    listen,
    listen_backlog,
)

__all__ = ["Closer", "ProxyServer"]

_log = logging.getLogger(__name__)
_access_log = logging.getLogger("llmtrace_otel.access")

#: Run at shutdown, in order, after the last call ended: close a pool, flush a queue.
Closer = Callable[[], Awaitable[None] | None]


def _log_request(handler: RequestHandler) -> None:
    """Access log at DEBUG: every call is already a span, and an upstream's 5xx relayed
    to the client is not an error of the proxy (Tornado would log it at ERROR)."""
    if _access_log.isEnabledFor(logging.DEBUG):
        _access_log.debug("%d %s %.2fms", handler.get_status(), request_summary(handler),
                          1000.0 * handler.request.request_time())


class ProxyServer:
    """One proxy listener. ``start``/``stop`` run on the event loop that serves it.

    ``routes`` are mounted before the relay, and ``body_limits`` give the largest body of
    each of their path prefixes (``/health`` and ``/metrics`` take a small one; the relay
    takes ``server.max_body_bytes``); ``metrics_auth`` guards ``/metrics`` (None: open);
    ``http_metrics_exclude`` (None: off) are the paths left out of the ``http.server.*``
    metrics; ``closers`` run at shutdown, in order, once in-flight calls have ended or the
    deadline passed (blocking ones on a thread, so they may flush). ``ops`` replaces this
    server's own ``/health`` and ``/metrics`` (a relay worker forwards them to the telemetry
    process, which answers for every worker).
    """

    def __init__(
        self,
        config: ServerConfig,
        context: ProxyContext,
        *,
        routes: Sequence[RouteSpec] = (),
        body_limits: Sequence[tuple[str, int]] = (),
        http_metrics_exclude: Sequence[str] | None = (),
        closers: Sequence[Closer] = (),
        metrics_auth: BearerToken | None = None,
        ops: Sequence[RouteSpec] | None = None,
    ) -> None:
        self.config = config
        self.context = context
        self.telemetry = context.telemetry
        self.in_flight = context.in_flight
        self.telemetry.instruments.observe_active_connections(lambda: self.in_flight.count)
        self._routes = tuple(routes)
        self._body_limits = ((HEALTH_PATH, SMALL_BODY_BYTES), (METRICS_PATH, SMALL_BODY_BYTES),
                             *body_limits)
        self._http_metrics_exclude = http_metrics_exclude
        self._closers = tuple(closers)
        self._metrics_auth = metrics_auth
        self._ops = None if ops is None else tuple(ops)
        self._started = time.monotonic()
        self._server: BoundedHTTPServer | None = None
        self.port: int | None = None

    # -- the application ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``/health``: the pipeline's report, the guards and the client connections."""
        report = self.telemetry.health()
        for name, (details, failing) in self.context.guards.health().items():
            report.add(name, details, degraded=failing)
        extra = {} if self._server is None else {
            "connections": self._server.connection_report()}
        return report.document(started_monotonic=self._started,
                               in_flight=self.in_flight.count, **extra)

    def make_app(self) -> Application:
        ops = self._ops if self._ops is not None else ops_routes(
            self.health, self.telemetry.prometheus_registry, self._metrics_auth)
        routes: list[RouteSpec] = [
            *ops,
            *self._routes,
            (r"/.*", ProxyHandler, {"context": self.context}),
        ]
        http_metrics = None
        if self._http_metrics_exclude is not None:
            http_metrics = HttpServerMetrics(self.telemetry.meter,
                                             histograms=self.telemetry.histograms,
                                             exclude_paths=self._http_metrics_exclude,
                                             routes=[pattern for pattern, _, _ in routes])
        return MeteredApplication(routes, http_metrics=http_metrics, compress_response=False,
                                  serve_traceback=False, log_function=_log_request)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, sockets: Sequence[socket.socket] | None = None) -> int:
        """Bind and serve; returns the port (useful with port 0). ``sockets``: listening
        sockets to serve instead (a relay worker's, inherited from its parent)."""
        config = self.config
        if sockets is None:
            # A listen backlog that absorbs a burst of new connections (Tornado's default,
            # 128, drops SYNs past it: clients then wait a 1 s retransmit; the kernel caps
            # it at net.core.somaxconn).
            sockets = listen(config.host, config.port, setting="--port / server.port",
                             backlog=listen_backlog(config.max_connections))
        sockets = list(sockets)
        self.port = sockets[0].getsockname()[1]
        router = self.context.router
        self._server = BoundedHTTPServer(
            self.make_app(),
            # Also the time a client has to send its headers (slowloris; docs/reliability.md).
            idle_connection_timeout=config.idle_timeout_s,
            body_timeout=config.body_timeout_s,
            decompress_request=False,
            max_connections=ensure_open_files(config.max_connections,
                                              self.context.upstream.max_connections),
            gate=config.gate(
                bind_hosts=[config.host], body_limits=self._body_limits,
                # The relay answers 413 itself past server.max_body_bytes (in the client's
                # error shape); this outer bound only stops a chunked body going far beyond.
                default_body_limit=config.max_body_bytes * 2 + 1024 * 1024,
                flavor_of=lambda method, path, headers: router.route(method, path,
                                                                     headers).flavor),
        )
        self._server.add_sockets(sockets)
        return self.port

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, let in-flight calls finish (bounded), then run the closers."""
        deadline = time.monotonic() + (timeout_s or self.config.shutdown_timeout_s)
        if self._server is not None:
            self._server.stop()
        while self.in_flight.count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.in_flight.count:
            _log.warning("shutdown deadline reached with %d calls in flight",
                         self.in_flight.count)
        if self._server is not None:
            await self._server.close_all_connections()
        await self.context.upstream.close()
        loop = asyncio.get_running_loop()
        for closer in self._closers:
            try:
                if inspect.iscoroutinefunction(closer):
                    await closer()
                else:
                    await loop.run_in_executor(None, closer)
            except Exception:
                _log.exception("shutdown step %r failed; continuing", closer)
