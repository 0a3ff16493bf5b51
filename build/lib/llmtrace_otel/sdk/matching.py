"""Which outgoing httpx requests are LLM API calls, and what they ask for.

A request is an LLM call when it is a ``POST`` whose path ends in one of the API shapes
the proxy parses (``.../chat/completions``, ``/v1/messages``, ...: the same
``match_api`` as the proxy, so Azure's ``/openai/deployments/{name}/...`` and gateway
prefixes count), its host is allowed (``sdk.hosts``; any host by default) and its body
parses as that shape. Everything else is left alone, so a non-LLM call stays whatever the
HTTP instrumentation makes of it.

Calls to a configured llmtrace-otel proxy (``sdk.proxy_urls``) are recognised separately:
the proxy records them, the SDK side only propagates the trace context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from llmtrace_otel.providers.base import APIAdapter, ParseError
from llmtrace_otel.providers.registry import detect_provider, match_api
from llmtrace_otel.providers.types import LLMRequest

__all__ = ["CallMatcher", "LLMCallTarget", "RequestLine"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class RequestLine:
    """The parts of an outgoing request the matcher looks at (no httpx types here)."""

    method: str
    scheme: str
    host: str
    port: int | None  # None: the scheme's default
    path: str

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS.get(self.scheme, 0)

    def url(self) -> str:
        """scheme://host[:port]/path: no query (some APIs carry keys there)."""
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"


@dataclass(frozen=True, slots=True)
class LLMCallTarget:
    """A recognised LLM call: the API shape, the parsed request and where it goes."""

    adapter: APIAdapter
    request: LLMRequest
    provider: str
    server_address: str
    server_port: int
    url: str


@dataclass(frozen=True, slots=True)
class _ProxyBase:
    scheme: str
    host: str
    port: int
    path: str  # without trailing slash


def _proxy_base(url: str) -> _ProxyBase:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return _ProxyBase(scheme, (parts.hostname or "").lower(),
                      parts.port or _DEFAULT_PORTS.get(scheme, 0), parts.path.rstrip("/"))


class CallMatcher:
    """Decides, per request, whether it is an LLM call. Immutable; shared by all calls."""

    def __init__(self, hosts: Sequence[str] = (), proxy_urls: Sequence[str] = ()) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        any_host = False
        for raw in hosts:
            pattern = raw.strip().lower().rstrip(".")
            if pattern in ("", "*"):
                any_host = True
            elif pattern.startswith("*."):
                suffixes.append(pattern[1:])  # "*.openai.azure.com" -> ".openai.azure.com"
            elif pattern.startswith("."):
                suffixes.append(pattern)
            else:
                exact.add(pattern)
        self._any_host = any_host or not (exact or suffixes)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)
        self._proxies = tuple(_proxy_base(url) for url in proxy_urls)

    def host_allowed(self, host: str) -> bool:
        if self._any_host:
            return True
        host = host.lower().rstrip(".")
        return host in self._exact or host.endswith(self._suffixes)

    def is_proxy(self, line: RequestLine) -> bool:
        """True for a request to a configured llmtrace-otel proxy."""
        if not self._proxies:
            return False
        host, port, path = line.host.lower(), line.effective_port, line.path
        for proxy in self._proxies:
            if (proxy.host == host and proxy.port == port and proxy.scheme == line.scheme
                    and (not proxy.path or path == proxy.path
                         or path.startswith(proxy.path + "/"))):
                return True
        return False

    def adapter_for(self, line: RequestLine, headers: Mapping[str, str]) -> APIAdapter | None:
        """The API shape of the request, from method, host and path only (cheap)."""
        if line.method != "POST" or not self.host_allowed(line.host):
            return None
        return match_api(line.path, headers)

    def target(self, adapter: APIAdapter, line: RequestLine, body: bytes) -> LLMCallTarget | None:
        """Parse the body; None when it is not that API shape after all (not an LLM call)."""
        if not body:
            return None
        try:
            request = adapter.parse_request(body)
        except ParseError:
            return None
        return LLMCallTarget(
            adapter=adapter,
            request=request,
            provider=detect_provider(adapter, line.host, None),
            server_address=line.host,
            server_port=line.effective_port,
            url=line.url(),
        )
