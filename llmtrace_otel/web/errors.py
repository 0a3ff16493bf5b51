"""The one error document of every endpoint llmtrace-otel answers itself.

OpenAI-compatible clients (and the query API, the budgets endpoint, the receiver's JSON
answers) get ``{"error": {"message", "type", "param", "code"}}``; Anthropic clients get
``{"type": "error", "error": {"type", "message"}}``, the shape their SDK parses. ``type``
follows the HTTP status through one table per shape, so a 401 says ``authentication_error``
whichever endpoint sent it. ``code`` is stable and machine-readable; ``message`` says what
went wrong and what to do, and never carries internals (tracebacks, paths, SQL, upstream
credentials: those go to the log).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tornado.web import RequestHandler

__all__ = ["ApiFlavor", "ErrorReply", "error_document", "send_error_reply"]


class ApiFlavor(StrEnum):
    """Which error shape a client understands."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An answer other than success, made by llmtrace-otel rather than relayed."""

    status: int
    code: str  # stable machine-readable code, also used as the span's error.type
    message: str
    #: Extra response headers (Retry-After, X-RateLimit-*, WWW-Authenticate).
    headers: tuple[tuple[str, str], ...] = ()
    #: The request parameter at fault, when there is one.
    param: str | None = None


_OPENAI_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable_error",
    504: "upstream_error",
}
# Anthropic's documented error types, by HTTP status.
_ANTHROPIC_TYPES: Final = {
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


def _openai_type(status: int) -> str:
    return _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_document(reply: ErrorReply, flavor: ApiFlavor = ApiFlavor.OPENAI) -> bytes:
    """The JSON body of ``reply`` in the shape ``flavor`` clients parse."""
    if flavor is ApiFlavor.ANTHROPIC:
        payload: dict[str, object] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(reply.status, "api_error"),
                      "message": reply.message},
        }
    else:
        payload = {"error": {"message": reply.message, "type": _openai_type(reply.status),
                             "param": reply.param, "code": reply.code}}
    return json.dumps(payload).encode()


def send_error_reply(handler: RequestHandler, reply: ErrorReply,
                     flavor: ApiFlavor = ApiFlavor.OPENAI) -> None:
    """Answer ``reply`` on ``handler`` (whatever was prepared before is discarded)."""
    handler.clear()
    handler.set_status(reply.status)
    handler.set_header("Content-Type", "application/json")
    handler.set_header("Cache-Control", "no-store")
    for name, value in reply.headers:
        handler.add_header(name, value)
    handler.finish(error_document(reply, flavor))
