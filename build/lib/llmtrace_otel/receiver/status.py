"""Why the receiver refuses a request, in the terms of both OTLP transports.

The OTLP specification maps failures onto gRPC status codes and HTTP statuses; senders
retry exactly the retryable ones (RESOURCE_EXHAUSTED/UNAVAILABLE with a delay, HTTP
429/502/503/504) and drop the rest. :class:`Refused` carries both forms, the message for
the sender and, for retryable refusals, the suggested delay.
"""

from __future__ import annotations

import grpc

__all__ = ["HTTP_STATUS_OF", "Refused", "grpc_code_of"]

#: OTLP spec, "Failures": gRPC status -> HTTP status.
HTTP_STATUS_OF: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNIMPLEMENTED: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_GRPC_OF_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code_of(http_status: int) -> grpc.StatusCode:
    return _GRPC_OF_HTTP.get(http_status, grpc.StatusCode.INTERNAL if http_status >= 500
                             else grpc.StatusCode.UNKNOWN)


class Refused(Exception):
    """A request the receiver did not accept. ``outcome`` labels the request counter."""

    def __init__(self, code: grpc.StatusCode, http_status: int, message: str, outcome: str,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.message = message
        self.outcome = outcome
        self.retry_after_s = retry_after_s

    @classmethod
    def busy(cls, message: str, retry_after_s: float) -> Refused:
        return cls(grpc.StatusCode.RESOURCE_EXHAUSTED, 429, message, "busy", retry_after_s)

    @classmethod
    def shutting_down(cls, retry_after_s: float) -> Refused:
        return cls(grpc.StatusCode.UNAVAILABLE, 503, "the receiver is shutting down",
                   "shutdown", retry_after_s)

    @classmethod
    def unauthenticated(cls, message: str) -> Refused:
        return cls(grpc.StatusCode.UNAUTHENTICATED, 401, message, "unauthenticated")

    @classmethod
    def bad_request(cls, message: str, http_status: int = 400) -> Refused:
        return cls(grpc_code_of(http_status), http_status, message, "bad_request")

    @classmethod
    def unsupported(cls, message: str) -> Refused:
        return cls(grpc.StatusCode.UNIMPLEMENTED, 404, message, "unsupported")
