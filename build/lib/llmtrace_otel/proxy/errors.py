"""Errors the proxy itself returns, in the error shape of the API the client speaks.

OpenAI-compatible clients get ``{"error": {"message", "type", "code"}}``; Anthropic
clients get ``{"type": "error", "error": {"type", "message"}}``. Messages say what went
wrong and what to do; they never contain internals (tracebacks, upstream credentials).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ApiFlavor", "ProxyError", "error_body"]


class ApiFlavor(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


@dataclass(frozen=True, slots=True)
class ProxyError:
    """A failure answered by the proxy rather than relayed from the upstream."""

    status: int
    code: str  # stable machine-readable code, also used as error.type
    message: str
    #: Extra response headers (Retry-After, X-RateLimit-*), sent with the error body.
    headers: tuple[tuple[str, str], ...] = ()


# Anthropic's documented error types, by HTTP status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
}


def error_body(error: ProxyError, flavor: ApiFlavor) -> bytes:
    if flavor is ApiFlavor.ANTHROPIC:
        payload: dict[str, object] = {
            "type": "error",
            "error": {
                "type": _ANTHROPIC_TYPES.get(error.status, "api_error"),
                "message": error.message,
            },
        }
    else:
        kind = "invalid_request_error" if error.status < 500 else "upstream_error"
        payload = {"error": {"message": error.message, "type": kind, "param": None,
                             "code": error.code}}
    return json.dumps(payload).encode()
