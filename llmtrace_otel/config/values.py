"""How one setting's text becomes a value, and the format rules values must follow.

Parsers take the text of a file value, an environment variable or a flag and return the
typed value or raise :class:`ValueError` with what was expected. Format checks take a parsed
value and return the problem (``None`` when it is fine); :mod:`~llmtrace_otel.config.fields`
attaches them to the keys they govern, so every rule about one key lives in one place.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "check_admin_token",
    "check_host_patterns",
    "check_http_url",
    "check_http_urls",
    "check_path_list",
    "check_port",
    "check_redis_url",
    "check_tenant_id",
    "is_loopback",
    "otlp_requested",
    "parse_bool",
    "parse_endpoint",
    "parse_optional_str",
    "split_endpoint",
    "split_list",
    "worker_count",
]

#: Tenant and agent ids: 1-128 characters, starting with a letter or digit.
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
#: The shortest admin or receiver token accepted: a guessable token is no protection.
MIN_TOKEN_LENGTH = 16
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def worker_count(workers: int) -> int:
    """``server.workers`` as a number of processes: 0 is one per core this process may use."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def parse_optional_str(text: str) -> str | None:
    return text or None


def parse_endpoint(text: str) -> str | None:
    """``host:port``; empty, ``off`` or ``none`` turn the listener off."""
    return None if text.strip().lower() in {"", "off", "none"} else text.strip()


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty, stripped items."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``"0.0.0.0:4317"`` -> ``("0.0.0.0", 4317)``; ``[::1]:4317`` for IPv6.

    Raises ValueError when it is not ``host:port``.
    """
    host, sep, port_text = endpoint.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{endpoint!r} is not host:port (port 0-65535)")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK or host.startswith("127.")


# -- format checks: the problem with a parsed value, or None ----------------------------

def check_port(value: Any) -> str | None:
    return None if 0 <= value <= 65535 else f"{value} is not a port number (0-65535)"


def check_http_url(value: Any) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} is not an http(s) URL with a host"
    if parts.query or parts.fragment:
        return f"{value!r} must not have a query or fragment"
    return None


def check_http_urls(value: Any) -> str | None:
    for url in split_list(value):
        problem = check_http_url(url)
        if problem is not None:
            return problem
    return None


def check_endpoint(value: Any) -> str | None:
    if value is None:
        return None
    try:
        split_endpoint(value)
    except ValueError as exc:
        return str(exc)
    return None


def check_path_list(value: Any) -> str | None:
    for path in split_list(value):
        if not path.startswith("/"):
            return f"{path!r} must start with '/'"
    return None


def check_host_patterns(value: Any) -> str | None:
    for host in split_list(value):
        if "/" in host or " " in host or (":" in host and not host.startswith("[")):
            return f"{host!r} is not a host name or *.suffix pattern"
    return None


def check_admin_token(value: Any) -> str | None:
    if value is None:
        return None
    if len(value) < MIN_TOKEN_LENGTH or value.strip() != value or " " in value:
        return (f"must be at least {MIN_TOKEN_LENGTH} characters without spaces (generate "
                "one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return None


def check_file_exists(value: Any) -> str | None:
    if value is not None and not Path(value).is_file():
        return f"{value!r} does not exist"
    return None


def check_tenant_id(value: Any) -> str | None:
    if TENANT_ID.fullmatch(value) is None:
        return f"{value!r} is not a valid tenant id (1-128 letters, digits, ._:@/+=-)"
    return None


def check_redis_url(value: Any) -> str | None:
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        return f"{value!r} is not a redis://, rediss:// or unix:// URL"
    return None


def check_networks(value: Any) -> str | None:
    for item in split_list(value):
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not an IP address or CIDR network (or *)"
    return None


def check_key_prefix(value: Any) -> str | None:
    return "must not contain {, } or |" if any(c in value for c in "{}|") else None


def check_not_empty_list(value: Any) -> str | None:
    return None if split_list(value) else "names no finding type"


def otlp_requested(otlp_endpoint: str | None, env: Mapping[str, str] | None = None) -> bool:
    """OTLP export is on when an endpoint is configured here or in the standard env vars."""
    env = os.environ if env is None else env
    return otlp_endpoint is not None or bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
