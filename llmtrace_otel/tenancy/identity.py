"""Who is calling: the tenant (and agent) of a request.

Order: the ``X-LLMTrace-Tenant-ID`` header; else a keyed hash of the client's API key
(``Authorization: Bearer``, ``x-api-key``, ``api-key``), ``key-`` + 16 hex digits of
HMAC-SHA256(secret, key); else the configured default. ``X-LLMTrace-Agent-ID`` names the
agent. The key itself is never stored or logged: only its HMAC leaves this module, and
without a configured secret a random per-process one is used (ids are then stable only
until the process restarts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from llmtrace_otel.config.tenants import valid_id

__all__ = [
    "AGENT_HEADER",
    "TENANT_HEADER",
    "Identity",
    "IdentityError",
    "IdentitySource",
    "TenantResolver",
]

TENANT_HEADER: Final = "X-LLMTrace-Tenant-ID"
AGENT_HEADER: Final = "X-LLMTrace-Agent-ID"
_KEY_HEADERS: Final = ("x-api-key", "api-key")
_KEY_PREFIX: Final = "key-"
_HASH_HEX_DIGITS: Final = 16  # 64 bits: collisions need ~4 billion keys


class IdentitySource(StrEnum):
    HEADER = "header"
    API_KEY = "api_key"
    DEFAULT = "default"


class IdentityError(ValueError):
    """A tenant or agent header that is not a valid id (answered with 400)."""

    def __init__(self, header: str) -> None:
        super().__init__(
            f"{header} must be 1-128 characters (letters, digits and ._:@/+=-, starting "
            f"with a letter or digit)")
        self.header = header


@dataclass(frozen=True, slots=True)
class Identity:
    tenant: str
    agent: str | None
    source: IdentitySource


def _api_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in _KEY_HEADERS:
        value = headers.get(name)
        if value and value.strip():
            return value.strip()
    return None


class TenantResolver:
    """Resolves the :class:`Identity` of a request from its headers (thread-safe)."""

    __slots__ = ("_default", "_secret", "stable")

    def __init__(self, default_tenant: str, secret: str | None = None) -> None:
        if not valid_id(default_tenant):
            raise ValueError(f"default tenant {default_tenant!r} is not a valid id")
        self._default = default_tenant
        #: False when ids derived from keys change at restart (no configured secret).
        self.stable = bool(secret)
        self._secret = secret.encode() if secret else secrets.token_bytes(32)

    @property
    def default_tenant(self) -> str:
        return self._default

    def key_tenant(self, api_key: str) -> str:
        """The tenant id derived from an API key."""
        digest = hmac.new(self._secret, api_key.encode(), hashlib.sha256).hexdigest()
        return _KEY_PREFIX + digest[:_HASH_HEX_DIGITS]

    def resolve(self, headers: Mapping[str, str]) -> Identity:
        """Raises :class:`IdentityError` for an invalid tenant or agent header."""
        agent = headers.get(AGENT_HEADER)
        if agent is not None:
            agent = agent.strip()
            if not valid_id(agent):
                raise IdentityError(AGENT_HEADER)
        tenant = headers.get(TENANT_HEADER)
        if tenant is not None:
            tenant = tenant.strip()
            if not valid_id(tenant):
                raise IdentityError(TENANT_HEADER)
            return Identity(tenant, agent, IdentitySource.HEADER)
        key = _api_key(headers)
        if key is not None:
            return Identity(self.key_tenant(key), agent, IdentitySource.API_KEY)
        return Identity(self._default, agent, IdentitySource.DEFAULT)
