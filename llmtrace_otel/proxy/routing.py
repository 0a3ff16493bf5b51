"""Where a request goes: which API shape it is, which upstream, which provider."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from llmtrace_otel.providers.base import APIAdapter
from llmtrace_otel.providers.registry import detect_provider, match_api
from llmtrace_otel.proxy.headers import PROVIDER_HEADER
from llmtrace_otel.web.errors import ApiFlavor
from llmtrace_processors.labels import BoundedLabels

__all__ = ["Route", "Router", "Upstream"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream base URL, and how a client's request path is joined to it.

    Base URLs are usually documented with their API version (``http://localhost:11434/v1``
    for Ollama, ``https://openrouter.ai/api/v1``), and the SDKs' requests carry it too
    (``/v1/chat/completions``). The part where the base path ends as the request path
    begins is used once: ``/api/v1`` + ``/v1/chat/completions`` is
    ``/api/v1/chat/completions``, not ``/api/v1/v1/chat/completions``.
    """

    base_url: str  # without trailing slash, without credentials
    host: str
    port: int
    #: The base URL's path segments (``("api", "v1")``).
    segments: tuple[str, ...] = ()
    #: ``Authorization`` value for credentials given in the URL (``user:pass@host``): sent
    #: when the client sends no ``Authorization`` of its own, never recorded anywhere.
    authorization: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        segments = tuple(s for s in parts.path.split("/") if s)
        authorization = None
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
            netloc = parts.netloc.rsplit("@", 1)[1]
            url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        return cls(url.rstrip("/"), host, port, segments, authorization)

    def url_for(self, target: str) -> str:
        """The upstream URL of a request target (its path and query, as received)."""
        segments = self.segments
        if not segments:
            return self.base_url + target
        path, query = target.split("?", 1) if "?" in target else (target, None)
        asked = path.split("/")[1:]  # "/v1/chat" -> ["v1", "chat"]
        for overlap in range(min(len(segments), len(asked)), 0, -1):
            if tuple(asked[:overlap]) == segments[-overlap:]:
                path = "/" + "/".join(asked[overlap:]) if asked[overlap:] else ""
                break
        return self.base_url + path + ("?" + query if query is not None else "")


@dataclass(frozen=True, slots=True)
class Route:
    adapter: APIAdapter | None  # None: not an LLM call we parse; plain pass-through
    upstream: Upstream
    provider: str
    flavor: ApiFlavor


class Router:
    """Decides the route of each request; immutable once built."""

    def __init__(self, openai_url: str, anthropic_url: str, *, max_providers: int = 50) -> None:
        """``openai_url``: the OpenAI-compatible upstream (``upstream.url``);
        ``anthropic_url``: where Anthropic-shaped calls go (``upstream.anthropic_url``);
        ``max_providers``: distinct provider names clients may introduce with
        ``X-LLMTrace-Provider`` (``metrics.max_providers``)."""
        self._openai = Upstream.parse(openai_url)
        self._anthropic = Upstream.parse(anthropic_url)
        self._providers = BoundedLabels(max_providers)

    def route(self, method: str, path: str, headers: Mapping[str, str]) -> Route:
        adapter = match_api(path, headers) if method == "POST" else None
        override = headers.get(PROVIDER_HEADER) or None
        # The Anthropic SDK sends anthropic-version on every call, /v1/models included.
        anthropic = (adapter is not None and adapter.default_provider == "anthropic") or (
            "anthropic-version" in headers
        )
        upstream = self._anthropic if anthropic else self._openai
        flavor = ApiFlavor.ANTHROPIC if anthropic else ApiFlavor.OPENAI
        provider = detect_provider(adapter, upstream.host, override, self._providers)
        return Route(adapter, upstream, provider, flavor)
