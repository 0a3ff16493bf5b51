"""The one bearer-token check of every endpoint that can require a token.

The query API and viewer data (``api.admin_token``), the budgets endpoint (the same token)
and the OTLP receiver (``receiver.auth_token``) all accept ``Authorization: Bearer <token>``
and compare it in constant time. No token configured means the endpoint is open; a
configured token is never empty (config refuses tokens shorter than 16 characters).
"""

from __future__ import annotations

import hmac

from llmtrace_otel.web.errors import ErrorReply

__all__ = ["BearerToken"]

_SCHEME = "bearer"


class BearerToken:
    """Checks ``Authorization`` headers against one configured token (or none)."""

    __slots__ = ("_token", "_setting")

    def __init__(self, token: str | None, setting: str) -> None:
        """``setting`` names the key that configures the token, for the 401 message."""
        self._token = token.encode() if token else None
        self._setting = setting

    @property
    def required(self) -> bool:
        return self._token is not None

    def accepts(self, authorization: str | None) -> bool:
        """True when no token is required or ``authorization`` carries the right one."""
        if self._token is None:
            return True
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != _SCHEME:
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    def problem(self, authorization: str | None) -> str | None:
        """Why ``authorization`` is refused (for the 401 message), or None if accepted."""
        if self.accepts(authorization):
            return None
        if not authorization or not authorization.strip().lower().startswith(_SCHEME + " "):
            return f"missing bearer token: send 'Authorization: Bearer <{self._setting}>'"
        return f"invalid bearer token (it must equal {self._setting})"

    def refusal(self, authorization: str | None) -> ErrorReply | None:
        """The 401 answer for ``authorization``, or None when it is accepted."""
        problem = self.problem(authorization)
        if problem is None:
            return None
        return ErrorReply(401, "unauthorized", problem,
                          headers=(("WWW-Authenticate", 'Bearer realm="llmtrace-otel"'),))
