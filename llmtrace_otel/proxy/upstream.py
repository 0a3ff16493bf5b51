"""The upstream HTTP client: one pooled aiohttp session per process.

aiohttp was chosen by measurement (DESIGN.md, docs/performance.md): inside a Tornado
event loop it relays about twice as fast as Tornado's own client and several times
faster than httpx. Bodies are relayed as received: ``auto_decompress`` is off, so a
gzip response reaches the client byte for byte and is only decoded for telemetry.

A connection that fails before any byte of the request was sent (refused, reset during the
handshake, a DNS failure) is retried ``upstream.retry_connect_failures`` times: the upstream
cannot have seen that request. Nothing else is retried: not a timeout, not a connection that
broke after the request went out (the upstream may have processed it, and an LLM call costs
money), not an error status (a 429/503 and its ``Retry-After`` go back to the client, whose
SDK knows its own retry budget).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from opentelemetry.util.types import AttributeValue
from yarl import URL

from llmtrace_otel.web.errors import ErrorReply
from llmtrace_processors.attributes import LLMTRACE_UPSTREAM_CONNECT_RETRIES

__all__ = ["RetryObserver", "UpstreamClient", "UpstreamConfig", "UpstreamFailure",
           "classify_exception", "is_connect_failure"]

_log = logging.getLogger(__name__)


class RetryObserver(Protocol):
    """Told about retries of one call (the call's ``CallRecorder``)."""

    def add_attributes(self, attributes: Mapping[str, AttributeValue]) -> None: ...


def is_connect_failure(exc: BaseException) -> bool:
    """True when the connection failed before any byte of the request was sent.

    aiohttp raises ``ClientConnectorError`` only while it establishes the connection (TCP
    connect, DNS, TLS handshake); the request is written after. TLS certificate and protocol
    errors are connect failures too, but retrying them cannot help.
    """
    return isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError)


class UpstreamFailure(Exception):
    """An upstream call failed before or while its response was read."""

    def __init__(self, error: ErrorReply) -> None:
        super().__init__(error.message)
        self.error = error


def classify_exception(exc: BaseException, url: str) -> ErrorReply:
    """Map a client exception to the proxy's answer: 504 for timeouts, 502 otherwise.

    The message names the upstream by its origin only (``scheme://host:port``): the URL's
    credentials and the client's query string (which may hold an API key) never reach the
    client, the span or the log."""
    url = origin_of(url)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ErrorReply(504, "upstream_connect_timeout",
                          f"timed out connecting to the upstream {url}")
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return ErrorReply(504, "upstream_read_timeout",
                          f"the upstream {url} sent nothing within the read timeout")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ErrorReply(504, "upstream_timeout",
                          f"the upstream {url} did not finish within the total timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ErrorReply(502, "upstream_unreachable",
                          f"cannot connect to the upstream {url}: {exc.os_error.strerror or exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return ErrorReply(502, "upstream_disconnected",
                          f"the upstream {url} closed the connection before the response ended")
    return ErrorReply(502, "upstream_error", f"request to the upstream {url} failed: "
                      f"{type(exc).__name__}")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """How the proxy talks to its upstreams (``upstream.*``)."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    total_timeout_s: float = 600.0
    max_connections: int = 512
    retry_connect_failures: int = 1


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL: what logs may name (no credentials, path or query)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


class _FailureLog:
    """Upstream failures at WARNING, at most one line per upstream every ``every_s``
    (with how many more there were), so an outage is seen but does not flood the log."""

    __slots__ = ("_every_s", "_last", "_suppressed")

    def __init__(self, every_s: float = 10.0) -> None:
        self._every_s = every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def note(self, origin: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(origin, -self._every_s) < self._every_s:
            self._suppressed[origin] = self._suppressed.get(origin, 0) + 1
            return
        more = self._suppressed.pop(origin, 0)
        self._last[origin] = now
        _log.warning("upstream %s: %s%s", origin, message,
                     f" ({more} more failures since the last report)" if more else "")


class UpstreamClient:
    """Owns the connection pool. Create and close it on the event loop it serves."""

    def __init__(self, config: UpstreamConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None
        self._failures = _FailureLog()

    @property
    def max_connections(self) -> int:
        return self._config.max_connections

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            config = self._config
            connector = aiohttp.TCPConnector(
                limit=config.max_connections,
                limit_per_host=0,
                ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    total=config.total_timeout_s,
                    sock_connect=config.connect_timeout_s,
                    sock_read=config.read_timeout_s,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        observer: RetryObserver | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request; return the response with headers read, body not yet read.

        Connect failures are retried (see the module docstring); ``observer`` gets
        ``llmtrace.upstream.connect_retries`` when that happened. Raises
        :class:`UpstreamFailure` on connect errors and timeouts.
        """
        retries = 0
        while True:
            try:
                response = await self._get_session().request(
                    method,
                    URL(url, encoded=True),
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=None,
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                if retries < self._config.retry_connect_failures and is_connect_failure(exc):
                    retries += 1
                    _log.info("connecting to the upstream %s failed (%s); retry %d of %d",
                              origin_of(url), exc, retries,
                              self._config.retry_connect_failures)
                    continue
                if retries and observer is not None:
                    observer.add_attributes({LLMTRACE_UPSTREAM_CONNECT_RETRIES: retries})
                failure = classify_exception(exc, url)
                self._failures.note(origin_of(url), failure.message)
                raise UpstreamFailure(failure) from exc
            if retries and observer is not None:
                observer.add_attributes({LLMTRACE_UPSTREAM_CONNECT_RETRIES: retries})
            return response

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
