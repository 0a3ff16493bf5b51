"""Bounds on what clients can make a server hold: connections, headers, bodies, slow senders.

:class:`BoundedHTTPServer` is Tornado's ``HTTPServer`` with two additions:

* at most ``max_connections`` open client connections: a connection beyond it is answered
  ``503`` with ``Retry-After: 1`` and closed at once (logged, at most every 10 s), so a flood
  of idle or slow connections cannot exhaust memory or file descriptors;
* every request passes the :mod:`~llmtrace_otel.web.gate` before its body is read: header
  size (431), ``Host`` (403), dot segments (400), the route's body limit (413) and the
  budget of body bytes in flight (503). Tornado itself stops reading a header block at
  twice the header limit, so nothing unbounded is ever buffered.

Slow clients are bounded by Tornado's own timers, set from the settings: a client has
``server.idle_timeout_s`` to send each request's headers (and may idle that long between
requests), and ``server.body_timeout_s`` to send a body.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets
from tornado.web import RequestHandler

from llmtrace_otel.config.values import is_loopback
from llmtrace_otel.web.errors import ErrorReply, error_document
from llmtrace_otel.web.gate import BodyBudget, FlavorOf, GateConfig, HostPolicy, RequestGate

__all__ = [
    "BoundedHTTPServer",
    "ListenError",
    "RouteSpec",
    "ServerConfig",
    "ensure_open_files",
    "listen",
    "listen_backlog",
    "reserve",
]

_log = logging.getLogger(__name__)
_LOG_EVERY_S = 10.0
#: File descriptors kept for everything that is not a client connection (SQLite, OTLP,
#: logs, the listening sockets, the API's readers).
_FD_RESERVE = 256

#: A Tornado route: (path pattern, handler class, handler keyword arguments).
RouteSpec = tuple[str, type[RequestHandler], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where a server listens and what its clients may make it hold (``server.*``)."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    idle_timeout_s: float = 75.0
    body_timeout_s: float = 120.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 10000
    shutdown_timeout_s: float = 15.0
    #: Host header values answered (host names, ``*.suffix``, ``*``); empty: loopback names
    #: when bound to loopback, any host otherwise.
    allowed_hosts: tuple[str, ...] = ()
    #: Request-body bytes all connections together may be sending at once.
    max_inflight_body_bytes: int = 256 * 1024 * 1024

    def gate(self, *, bind_hosts: Sequence[str], body_limits: Sequence[tuple[str, int]],
             default_body_limit: int, flavor_of: FlavorOf) -> GateConfig:
        """The request gate of a server with this config listening on ``bind_hosts``."""
        return GateConfig(
            max_header_bytes=self.max_header_bytes,
            hosts=HostPolicy.for_bind(self.allowed_hosts, bind_hosts, is_loopback),
            body_limits=tuple(body_limits), default_body_limit=default_body_limit,
            budget=BodyBudget(self.max_inflight_body_bytes), flavor_of=flavor_of)


class ListenError(RuntimeError):
    """A listening socket could not be opened; the message says why and what to do."""


def listen(host: str, port: int, *, setting: str, backlog: int = 128,
           reuse_port: bool = False) -> list[socket.socket]:
    """Bound, listening sockets for ``host:port`` (``port`` 0: any free port).

    A port already in use, or one the process may not bind, is a :class:`ListenError`
    naming the address, the setting that chose it and what to do, not a traceback.
    ``reuse_port``: a relay worker's own socket on the port its parent reserved
    (:func:`reserve`); the kernel spreads new connections over the workers' sockets.
    """
    try:
        return bind_sockets(port, host, reuse_port=reuse_port, backlog=backlog)
    except OSError as exc:
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"cannot listen on {where}: another process is already using port {port}. "
                f"Stop it (find it with: ss -ltnp 'sport = :{port}') or choose another port "
                f"with {setting}.") from None
        if exc.errno == errno.EACCES:
            raise ListenError(f"cannot listen on {where}: permission denied (ports below "
                              f"1024 need privileges); choose another port with "
                              f"{setting}.") from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise ListenError(f"cannot listen on {where}: {host!r} is not an address of "
                              f"this machine ({exc.strerror or exc}).") from None
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None


def reserve(host: str, port: int, *, setting: str) -> list[socket.socket]:
    """Hold ``host:port`` for relay workers that each listen on it with ``SO_REUSEPORT``.

    First a plain listening bind (as :func:`listen`): a port in use by anything, even by
    another llmtrace-otel whose workers use ``SO_REUSEPORT`` too, is a :class:`ListenError`,
    and port 0 picks a free port. Then the same addresses are bound again with
    ``SO_REUSEPORT`` and held without listening: the port stays ours while workers restart,
    and connections only ever go to the workers' listening sockets.
    """
    checked = listen(host, port, setting=setting)
    addresses = [(sock.family, sock.getsockname()) for sock in checked]
    for sock in checked:
        sock.close()
    held = []
    try:
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in held:
            sock.close()
        raise ListenError(f"cannot hold {host}:{port} for the workers: {exc.strerror or exc}"
                          ) from None
    return held


def _busy_response() -> bytes:
    body = error_document(ErrorReply(
        503, "too_many_connections",
        "the server has too many open connections (server.max_connections); retry shortly"))
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def listen_backlog(max_connections: int) -> int:
    """Connections the kernel may queue before the proxy accepts them (at most 4096)."""
    return max(128, min(max_connections, 4096))


def ensure_open_files(max_connections: int, upstream_connections: int) -> int:
    """Raise the soft open-files limit so ``max_connections`` fit; return the bound to use.

    Tornado cannot accept past the limit (``EMFILE``), which would leave new clients hanging
    in the listen queue. When even the hard limit is too low, the connection bound is
    lowered to what fits, with a warning naming both numbers.
    """
    needed = max_connections + upstream_connections + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            _log.warning("cannot raise the open-files limit to %d: %s", target, exc)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return max_connections
    fitting = max(1, soft - upstream_connections - _FD_RESERVE)
    _log.warning("server.max_connections lowered from %d to %d: the open-files limit is %d "
                 "(raise it with ulimit -n)", max_connections, fitting, soft)
    return fitting


class BoundedHTTPServer(HTTPServer):
    """``HTTPServer`` with a connection bound, and every request through a
    :class:`~llmtrace_otel.web.gate.RequestGate` before its body is read."""

    def initialize(  # type: ignore[override]
        self,
        request_callback: httputil.HTTPServerConnectionDelegate,
        *,
        max_connections: int,
        gate: GateConfig,
        **kwargs: Any,
    ) -> None:
        # Tornado stops reading a header block at twice the limit; below that, we answer 431.
        super().initialize(request_callback, max_header_size=2 * gate.max_header_bytes,
                           max_body_size=max(gate.default_body_limit,
                                             *(limit for _, limit in gate.body_limits)),
                           **kwargs)
        self.max_connections = max_connections
        self.gate = gate
        self.open_connections = 0
        self.accepted_connections = 0
        self.refused_connections = 0
        self._gate_stats = {"oversized_headers": 0, "host_refused": 0}
        self._refused_since_log = 0
        self._last_log = 0.0

    def connection_report(self) -> dict[str, int]:
        """For /health: open, max, accepted and refused (since start), 431 and 403 (Host)
        answers, and the request-body bytes being received now."""
        return {"open": self.open_connections, "max": self.max_connections,
                "accepted": self.accepted_connections,
                "refused": self.refused_connections, **self._gate_stats,
                "body_bytes_in_flight": self.gate.budget.used,
                "body_budget_refused": self.gate.budget.refused}

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        if self.open_connections >= self.max_connections:
            self._refuse(stream, address)
            return
        self.open_connections += 1
        self.accepted_connections += 1
        super().handle_stream(stream, address)

    def on_close(self, server_conn: object) -> None:
        self.open_connections -= 1
        super().on_close(server_conn)  # type: ignore[arg-type]

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection
                      ) -> httputil.HTTPMessageDelegate:
        inner = super().start_request(server_conn, request_conn)
        return RequestGate(self.gate, self._gate_stats, inner, request_conn)

    def _refuse(self, stream: IOStream, address: tuple) -> None:
        self.refused_connections += 1
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            _log.warning("%d open connections (server.max_connections); refused %d new "
                         "connection(s) with 503, latest from %s", self.open_connections,
                         self._refused_since_log, address[0] if address else "?")
            self._last_log, self._refused_since_log = now, 0
        def close(written: object) -> None:
            stream.close()

        try:
            stream.write(_busy_response()).add_done_callback(close)
        except Exception:  # noqa: BLE001 - the client may already be gone
            stream.close()
