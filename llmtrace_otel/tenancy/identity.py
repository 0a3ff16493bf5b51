"""Who is calling: the tenant (and agent) of a request.

Order: the ``X-LLMTrace-Tenant-ID`` header, **only from a trusted caller**
(``tenancy.header_trusted_from``: addresses or networks, e.g. the gateway in front of the
proxy; by default nobody, since a client that names its own tenant escapes its limits and
can spend another tenant's); else the client's API key (``Authorization: Bearer``,
``x-api-key``, ``api-key``): the tenant that the ``tenants:`` section maps its key id to, or
the key id itself, ``key-`` + 16 hex digits of HMAC-SHA256(secret, key); else the
configured default. ``X-LLMTrace-Agent-ID`` names the agent (attribution within the
caller's own tenant, so it is honoured from anyone). The key itself is never stored or
logged: only its HMAC leaves this module.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
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
    "TrustedCallers",
    "parse_trusted",
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
    #: The caller sent a tenant header that was not believed (it is not a trusted caller).
    header_ignored: bool = False


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Who may name its tenant with the header.
TrustedCallers = Sequence[Network]


def parse_trusted(items: Sequence[str]) -> tuple[Network, ...]:
    """``tenancy.header_trusted_from`` items (addresses or CIDR networks; ``*`` = any)."""
    networks: list[Network] = []
    for item in items:
        if item == "*":
            networks.extend((ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")))
        else:
            networks.append(ipaddress.ip_network(item, strict=False))
    return tuple(networks)


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

    __slots__ = ("_default", "_key_tenants", "_secret", "_trusted", "stable")

    def __init__(self, default_tenant: str, secret: str | None = None, *,
                 trusted: TrustedCallers = (),
                 key_tenants: Mapping[str, str] | None = None) -> None:
        """``trusted``: the networks whose tenant header is believed (none by default);
        ``key_tenants``: key id (``key-…``) -> the tenant it belongs to."""
        if not valid_id(default_tenant):
            raise ValueError(f"default tenant {default_tenant!r} is not a valid id")
        self._default = default_tenant
        #: False when ids derived from keys change at restart (no configured secret).
        self.stable = bool(secret)
        self._secret = secret.encode() if secret else secrets.token_bytes(32)
        self._trusted = tuple(trusted)
        self._key_tenants = dict(key_tenants or {})

    @property
    def default_tenant(self) -> str:
        return self._default

    def key_tenant(self, api_key: str) -> str:
        """The tenant id derived from an API key."""
        digest = hmac.new(self._secret, api_key.encode(), hashlib.sha256).hexdigest()
        return _KEY_PREFIX + digest[:_HASH_HEX_DIGITS]

    def trusts(self, client_address: str | None) -> bool:
        """True when ``client_address`` may name its tenant with the header."""
        if not self._trusted or not client_address:
            return False
        try:
            address = ipaddress.ip_address(client_address)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def resolve(self, headers: Mapping[str, str], client_address: str | None = None
                ) -> Identity:
        """Raises :class:`IdentityError` for an invalid tenant or agent header."""
        agent = headers.get(AGENT_HEADER)
        if agent is not None:
            agent = agent.strip()
            if not valid_id(agent):
                raise IdentityError(AGENT_HEADER)
        tenant = headers.get(TENANT_HEADER)
        ignored = False
        if tenant is not None:
            if self.trusts(client_address):
                tenant = tenant.strip()
                if not valid_id(tenant):
                    raise IdentityError(TENANT_HEADER)
                return Identity(tenant, agent, IdentitySource.HEADER)
            ignored = True
        key = _api_key(headers)
        if key is not None:
            key_id = self.key_tenant(key)
            return Identity(self._key_tenants.get(key_id, key_id), agent,
                            IdentitySource.API_KEY, ignored)
        return Identity(self._default, agent, IdentitySource.DEFAULT, ignored)
