"""The one error shape of the query API: ``{"error": {"message", "type", "code", "param"}}``.

The same shape the proxy uses for OpenAI-compatible clients, so one client-side error handler
reads both. ``code`` is stable and machine-readable; ``message`` says what to do and never
carries internals (paths, SQL, tracebacks: those go to the log).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

__all__ = ["ApiError", "error_json"]

_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    503: "service_unavailable_error",
}


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    """An answer other than 200: raised by a handler, rendered by its ``write_error``."""

    status: int
    code: str
    message: str
    param: str | None = None


def error_json(error: ApiError) -> str:
    return json.dumps(
        {
            "error": {
                "message": error.message,
                "type": _TYPES.get(error.status, "api_error"),
                "code": error.code,
                "param": error.param,
            }
        }
    )
