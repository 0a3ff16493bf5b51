"""``storage.url``: which URLs select PostgreSQL, how one is shown without its password, and
the connection parameters added to it.

A URL's password never reaches a log line, an error message, ``/health`` or ``validate``:
everything that names the store says :func:`masked` (``postgresql://user:****@host:5432/db``).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from llmtrace_otel.config.values import check_storage_url

__all__ = ["SCHEMES", "check_url", "conninfo", "is_postgres_url", "masked"]

#: Added to the URL unless it sets them: a dead server or network is noticed in seconds
#: (connect, TCP retransmits), and no statement waits on a lock for ever.
_DEFAULTS: Final = {"connect_timeout": "5", "tcp_user_timeout": "10000", "keepalives": "1",
                    "keepalives_idle": "10", "keepalives_interval": "5",
                    "keepalives_count": "3"}

#: The schemes libpq accepts for a connection URI.
SCHEMES: Final = ("postgresql", "postgres")


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme.lower() in SCHEMES


def masked(url: str) -> str:
    """``url`` with the password (if any) replaced by ``****``; never raises."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':****' if colon else ''}@{host}{slash}{path}"


def check_url(url: str) -> None:
    """Raise ValueError (naming the URL without its password) unless ``url`` is a
    ``postgresql://`` URL with a database name (the ``storage.url`` rule of the config)."""
    problem = check_storage_url(url)
    if problem is not None:
        raise ValueError(problem)


def conninfo(url: str, application: str, statement_timeout_ms: int = 30_000) -> str:
    """libpq connection parameters of ``url`` plus :data:`_DEFAULTS`, an application name and
    a statement timeout (appended to the URL's own ``options``)."""
    # psycopg is imported here, not at the top: checking settings (every CLI command) must
    # not pay for importing the driver (~0.1-0.5 s).
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    given = conninfo_to_dict(url)
    extra: dict[str, str] = {key: value for key, value in _DEFAULTS.items() if key not in given}
    extra.setdefault("application_name", str(given.get("application_name") or application))
    options = str(given.get("options") or "")
    extra["options"] = f"{options} -c statement_timeout={int(statement_timeout_ms)}".strip()
    return make_conninfo(url, **extra)
