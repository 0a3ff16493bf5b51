"""PostgresSpanStore: the read side (API, viewer, CLI) over the PostgreSQL store.

The queries are the SQLite store's (:class:`~llmtrace_otel.exporters.sqlite.queries.
SpanReader`: listings, traces, spans, stats from the rollup or exactly), run in
:data:`POSTGRES`'s dialect, so both stores give the same answers. Connections come from a
bounded pool (``psycopg_pool``), opened on first use and checked before each use, so a
database restart costs the next query a reconnect, not an error. Every failure is a
:class:`StoreError` naming the database (password masked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from llmtrace_otel.exporters.postgres.histogram import value_of
from llmtrace_otel.exporters.postgres.schema import check_version
from llmtrace_otel.exporters.postgres.url import check_url, conninfo, masked
from llmtrace_otel.exporters.sqlite.dialect import Dialect
from llmtrace_otel.exporters.sqlite.queries import SpanReader
from llmtrace_otel.exporters.sqlite.schema import StoreError

__all__ = ["DEFAULT_POOL_SIZE", "POSTGRES", "PostgresSpanStore"]

DEFAULT_POOL_SIZE: Final = 4
#: How long a query waits for a pooled connection (the database down: then an error).
_POOL_WAIT_S: Final = 5.0


def _event_field(keys: tuple[str, ...]) -> str:
    return "(e.value #>> '{" + ",".join(f'"{key}"' for key in keys) + "}')"


def _attribute(key: str) -> str:
    # A regular expression over the stored text, not a JSON cast: PostgreSQL's json refuses a
    # \u0000 escape or a lone surrogate, which an attribute may hold (the exporter writes
    # compact JSON: "key":"value"). Used for short enumerated values (max_severity).
    pattern = '"' + re.sub(r"([.\\^$*+?()\[\]{}|])", r"\\\1", key) + '":"([^"\\\\]*)"'
    return "substring(attributes from '" + pattern.replace("'", "''") + "')"


POSTGRES: Final = Dialect("postgresql", qmark=False, index_hints=False, rollup_pending=False,
                          begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                          histogram=value_of,
                          # llmtrace_json (schema.py): events as json, or [] when
                          # PostgreSQL's json cannot read them
                          unnest_events="json_array_elements(llmtrace_json(spans.events)) "
                                        "AS e(value)",
                          event_field=_event_field, attribute=_attribute)


class PostgresSpanStore(SpanReader):
    """Read-only access to the PostgreSQL span store at ``url``. Constructing it does no
    I/O; :meth:`close` closes the pool."""

    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE,
                 on_operation: Callable[[str, str], None] | None = None) -> None:
        check_url(url)
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self._shown = masked(url)
        self._on_operation = on_operation
        self._checked = False
        self._pool = ConnectionPool(
            conninfo(url, "llmtrace-otel reader"), min_size=0, max_size=pool_size,
            kwargs={"autocommit": True}, open=False, timeout=_POOL_WAIT_S,
            check=ConnectionPool.check_connection, name="llmtrace-reader")
        self._opened = False

    @property
    def url(self) -> str:
        """The URL with its password masked."""
        return self._shown

    def has_data(self) -> bool:
        return True  # an empty or missing schema is an answer of the queries themselves

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        status = "error"
        try:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
            try:
                with self._pool.connection() as conn:
                    if not self._checked:
                        check_version(conn)
                        self._checked = True
                    yield conn
                    status = "ok"
            except PoolTimeout as exc:
                raise StoreError(f"PostgreSQL span store {self._shown} cannot be reached "
                                 f"(no connection within {_POOL_WAIT_S:.0f} s)") from exc
            except psycopg.Error as exc:
                raise StoreError(f"reading the PostgreSQL span store {self._shown} failed: "
                                 f"{str(exc).strip()}") from exc
        finally:
            if self._on_operation is not None:
                self._on_operation("read", status)

    def explain(self, sql: str, params: tuple[object, ...]) -> tuple[str, ...]:
        """``EXPLAIN`` lines of a read-side statement (written with ``?``), for plan checks."""
        with self._connection() as conn:
            rows = conn.execute(f"EXPLAIN {self.dialect.sql(sql)}", params).fetchall()  # type: ignore[call-overload]
        return tuple(str(row[0]) for row in rows)

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False
