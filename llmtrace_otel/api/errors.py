"""The query API's failures: raised by a handler, answered in the one error document.

The document is :func:`llmtrace_otel.web.errors.error_document`, the same shape the proxy
uses for OpenAI-compatible clients, so one client-side error handler reads both. ``code``
is stable and machine-readable; ``message`` says what to do and never carries internals
(paths, SQL, tracebacks: those go to the log).
"""

from __future__ import annotations

from llmtrace_otel.web.errors import ErrorReply

__all__ = ["ApiError"]


class ApiError(Exception):
    """An answer other than 200: raised by a handler, rendered by its ``write_error``."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.reply = ErrorReply(status, code, message, headers, param)

    @classmethod
    def of(cls, reply: ErrorReply) -> ApiError:
        return cls(reply.status, reply.code, reply.message, reply.param, reply.headers)
