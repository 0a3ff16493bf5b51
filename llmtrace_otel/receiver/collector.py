"""``llmtrace-otel collect``: the OTLP receivers, the pipeline, ``/metrics`` and ``/health``.

One Tornado application answers ``/v1/traces``, ``/v1/metrics``, ``/health``, ``/metrics``
(and whatever other routes it is given) on both the ops listener (``server.host:server.port``)
and the OTLP/HTTP listener (``receiver.http_endpoint``); a grpcio server answers OTLP/gRPC on
``receiver.grpc_endpoint``. No proxy runs. Both HTTP listeners are bounded the way the
proxy's is (``server.max_connections``, header size, idle and body timeouts).

Shutdown order: stop accepting (gRPC lets running calls finish), hand every queued span
to the chain, flush the chain and exporters, shut the providers down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tornado.web import Application

from llmtrace_otel.config import split_endpoint
from llmtrace_otel.receiver.grpc_server import GRPCReceiver
from llmtrace_otel.receiver.http import OTLP_PATHS, otlp_routes
from llmtrace_otel.receiver.service import OTLPReceiver
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.errors import ApiFlavor
from llmtrace_otel.web.gate import SMALL_BODY_BYTES
from llmtrace_otel.web.ops import ops_routes
from llmtrace_otel.web.server import (
    BoundedHTTPServer,
    RouteSpec,
    ServerConfig,
    ensure_open_files,
    listen,
    listen_backlog,
)

__all__ = ["CollectorServer"]

_log = logging.getLogger(__name__)


class CollectorServer:
    """Receivers + pipeline of one ``collect`` process; start/stop on its event loop.

    ``grpc_endpoint`` / ``http_endpoint`` are ``host:port`` (None: that receiver is off);
    ``routes`` are served on both HTTP listeners beside the OTLP and ops routes (the query
    API and the viewer); ``closers`` run last at shutdown (what those routes hold open).
    """

    def __init__(self, config: ServerConfig, receiver: OTLPReceiver, telemetry: Telemetry, *,
                 grpc_endpoint: str | None, http_endpoint: str | None,
                 routes: Sequence[RouteSpec] = (),
                 closers: Sequence[Callable[[], object]] = (),
                 metrics_auth: BearerToken | None = None,
                 ops: Sequence[RouteSpec] | None = None) -> None:
        self.config = config
        self.telemetry = telemetry
        self.receiver = receiver
        self._grpc_endpoint = grpc_endpoint
        self._http_endpoint = http_endpoint
        self._routes = tuple(routes)
        self._closers = tuple(closers)
        self._metrics_auth = metrics_auth
        self._ops = None if ops is None else tuple(ops)
        self._started = time.monotonic()
        self._http: BoundedHTTPServer | None = None
        self._grpc: GRPCReceiver | None = None
        self.ops_port: int | None = None
        self.http_port: int | None = None
        self.grpc_port: int | None = None

    def health(self) -> dict[str, Any]:
        report = self.telemetry.health()
        component = self.receiver.health()
        report.add("receiver_queue", component, degraded=component["state"] != "ok")
        extra = {} if self._http is None else {"connections": self._http.connection_report()}
        return report.document(started_monotonic=self._started, in_flight=0, **extra)

    def _app(self) -> Application:
        ops = self._ops if self._ops is not None else ops_routes(
            self.health, self.telemetry.prometheus_registry, self._metrics_auth)
        routes: list[RouteSpec] = [
            *ops,
            *otlp_routes(self.receiver),
            *self._routes,
        ]
        return Application(routes, compress_response=False, serve_traceback=False,
                           log_function=lambda handler: None)

    async def start(self, ports: Mapping[str, int] | None = None) -> None:
        """Listen and serve. ``ports``: a relay worker's (``server``, ``http``, ``grpc``),
        held by the telemetry process; each is listened on with ``SO_REUSEPORT``."""
        config = self.config
        backlog = listen_backlog(config.max_connections)
        reuse = ports is not None
        sockets = listen(config.host, ports["server"] if ports else config.port,
                         setting="--port / server.port", backlog=backlog, reuse_port=reuse)
        self.ops_port = sockets[0].getsockname()[1]
        if self._http_endpoint is not None:
            host, port = split_endpoint(self._http_endpoint)
            if ports:
                port = ports["http"]
            if (host, port) == (config.host, self.ops_port) and port != 0:
                self.http_port = self.ops_port
            else:
                extra = listen(host, port, setting="--receiver-http-endpoint / "
                               "receiver.http_endpoint", backlog=backlog, reuse_port=reuse)
                self.http_port = extra[0].getsockname()[1]
                sockets.extend(extra)
        bind_hosts = [config.host]
        if self._http_endpoint is not None:
            bind_hosts.append(split_endpoint(self._http_endpoint)[0])
        self._http = BoundedHTTPServer(
            self._app(),
            idle_connection_timeout=config.idle_timeout_s,
            body_timeout=config.body_timeout_s,
            decompress_request=False,
            max_connections=ensure_open_files(config.max_connections, 0),
            gate=config.gate(
                bind_hosts=bind_hosts,
                body_limits=[(path, config.max_body_bytes + 1024 * 1024)
                             for path in OTLP_PATHS],
                default_body_limit=SMALL_BODY_BYTES,  # /health, /metrics, read routes
                flavor_of=lambda method, path, headers: ApiFlavor.OPENAI),
        )
        self._http.add_sockets(sockets)
        if self._grpc_endpoint is not None:
            host, port = split_endpoint(self._grpc_endpoint)
            self._grpc = GRPCReceiver(self.receiver, host, ports["grpc"] if ports else port,
                                      idle_timeout_s=config.idle_timeout_s, reuse_port=reuse)
            self.grpc_port = self._grpc.start()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Stop accepting, drain the receiver queue into the pipeline, flush everything."""
        timeout_s = timeout_s or self.config.shutdown_timeout_s
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
            for closer in self._closers:
                closer()
