"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LLMTRACE_HEADER_PREFIX", "PROVIDER_HEADER", "request_headers", "response_headers"]

#: Headers of ours; never forwarded upstream.
LLMTRACE_HEADER_PREFIX = "x-llmtrace-"
#: Per-request override of gen_ai.provider.name.
PROVIDER_HEADER = "X-LLMTrace-Provider"

# RFC 9110 §7.6.1 hop-by-hop headers, plus those the proxy recomputes itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_NOT_FORWARDED_UP = _HOP_BY_HOP | {"host", "content-length", "traceparent", "tracestate"}
_NOT_RELAYED_DOWN = _HOP_BY_HOP | {"content-length", "server", "date"}


def _listed_in_connection(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(token.strip().lower() for token in value.split(","))
    return frozenset(named)


def request_headers(
    headers: Iterable[tuple[str, str]], *, identity_encoding: bool = False
) -> list[tuple[str, str]]:
    """Client headers to send upstream: hop-by-hop, Host, our own and trace headers
    dropped (the proxy injects its own trace context). Authorization passes through.
    ``identity_encoding`` asks the upstream for an uncompressed body (used when the
    proxy must edit a stream)."""
    pairs = list(headers)
    extra = _listed_in_connection(pairs)
    out = [
        (name, value)
        for name, value in pairs
        if (lower := name.lower()) not in _NOT_FORWARDED_UP
        and lower not in extra
        and not lower.startswith(LLMTRACE_HEADER_PREFIX)
        and not (identity_encoding and lower == "accept-encoding")
    ]
    if identity_encoding:
        out.append(("Accept-Encoding", "identity"))
    return out


def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Upstream headers to relay to the client (hop-by-hop and framing dropped)."""
    pairs = list(headers)
    extra = _listed_in_connection(pairs)
    return [
        (name, value)
        for name, value in pairs
        if (lower := name.lower()) not in _NOT_RELAYED_DOWN and lower not in extra
    ]
