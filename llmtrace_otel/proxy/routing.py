"""Where a request goes: which API shape it is, which upstream, which provider."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from llmtrace_otel.providers.base import APIAdapter
from llmtrace_otel.providers.registry import detect_provider, match_api
from llmtrace_otel.proxy.headers import PROVIDER_HEADER
from llmtrace_otel.web.errors import ApiFlavor

__all__ = ["Route", "Router", "Upstream"]


@dataclass(frozen=True, slots=True)
class Upstream:
    base_url: str  # without trailing slash
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(url.rstrip("/"), host, port)


@dataclass(frozen=True, slots=True)
class Route:
    adapter: APIAdapter | None  # None: not an LLM call we parse; plain pass-through
    upstream: Upstream
    provider: str
    flavor: ApiFlavor


class Router:
    """Decides the route of each request; immutable once built."""

    def __init__(self, openai_url: str, anthropic_url: str) -> None:
        """``openai_url``: the OpenAI-compatible upstream (``upstream.url``);
        ``anthropic_url``: where Anthropic-shaped calls go (``upstream.anthropic_url``)."""
        self._openai = Upstream.parse(openai_url)
        self._anthropic = Upstream.parse(anthropic_url)

    def route(self, method: str, path: str, headers: Mapping[str, str]) -> Route:
        adapter = match_api(path, headers) if method == "POST" else None
        override = headers.get(PROVIDER_HEADER) or None
        # The Anthropic SDK sends anthropic-version on every call, /v1/models included.
        anthropic = (adapter is not None and adapter.default_provider == "anthropic") or (
            "anthropic-version" in headers
        )
        upstream = self._anthropic if anthropic else self._openai
        flavor = ApiFlavor.ANTHROPIC if anthropic else ApiFlavor.OPENAI
        provider = detect_provider(adapter, upstream.host, override)
        return Route(adapter, upstream, provider, flavor)
