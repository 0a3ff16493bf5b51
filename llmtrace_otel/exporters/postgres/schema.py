"""The PostgreSQL span store's schema: DDL, versioned migrations, and connections.

The table ``llmtrace_schema`` marks a database as an llmtrace store and holds its schema
version (the SQLite store's ``application_id`` / ``user_version``). :data:`MIGRATIONS` is an
ordered tuple of ``(version, statements)``, like the SQLite one. :func:`migrate` runs in one
transaction (PostgreSQL's DDL is transactional) that first takes an advisory lock: when
several instances start against one database at once, one migrates and the others wait on
the lock, then find the schema current and write nothing. A crash half-way leaves the old
version. A database written by a newer llmtrace-otel, or one that has a ``spans`` table of
something else, is refused with :class:`StoreError` rather than misread or changed.

The columns are those of the SQLite store (one row per span, the same names and meanings),
with PostgreSQL types. ``spans`` is partitioned by day on ``start_time_ns``
(``partitions.py``): retention drops whole partitions instead of deleting rows, so the table
never bloats. Keys compared or ordered as text (ids, provider, model, tenant) use the "C"
collation, i.e. byte order: the same order as SQLite and as the read side's Python code.

Indexes (declared on the parent, so every partition has them) are the SQLite store's, for
the same filters of the viewer, API and CLI: the time index holds every column stats read
(``INCLUDE``: index-only scans), listings walk ``(column, start_time_ns, span_id)`` or a
partial index backwards and stop after a page.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg import sql

from llmtrace_otel.exporters.postgres.histogram import MERGE_FUNCTION
from llmtrace_otel.exporters.sqlite.schema import StoreError

__all__ = [
    "APPLICATION",
    "MIGRATIONS",
    "MIN_SERVER_VERSION",
    "SCHEMA_LOCK",
    "SCHEMA_VERSION",
    "check_version",
    "migrate",
]

APPLICATION: Final = "llmtrace-otel span store"
#: ``pg_advisory_xact_lock`` key of migrations: the ASCII bytes "LLMT".
SCHEMA_LOCK: Final = 0x4C4C4D54
#: 15: ``UNIQUE NULLS NOT DISTINCT`` (the rollup's key has NULLs).
MIN_SERVER_VERSION: Final = 150000

_SPANS_V1: Final = """
CREATE TABLE spans (
    span_id               text COLLATE "C" NOT NULL,
    trace_id              text COLLATE "C" NOT NULL,
    parent_span_id        text COLLATE "C",
    name                  text NOT NULL,
    kind                  text NOT NULL,
    start_time_ns         bigint,
    end_time_ns           bigint,
    duration_ms           double precision,
    status_code           text NOT NULL CHECK (status_code IN ('UNSET', 'OK', 'ERROR')),
    status_message        text,
    service_name          text,
    operation             text,
    provider              text COLLATE "C",
    request_model         text COLLATE "C",
    response_model        text COLLATE "C",
    response_id           text,
    input_tokens          bigint,
    output_tokens         bigint,
    cache_read_tokens     bigint,
    cache_creation_tokens bigint,
    reasoning_tokens      bigint,
    ttft_ms               double precision,
    stream                smallint CHECK (stream IN (0, 1)),
    error_type            text,
    server_address        text,
    http_status           bigint,
    cost_usd              double precision,
    tenant_id             text COLLATE "C",
    agent_id              text,
    security_score        double precision,
    attributes            text NOT NULL,
    events                text NOT NULL,
    links                 text NOT NULL,
    resource              text NOT NULL,
    scope_name            text,
    scope_version         text,
    findings_count        integer NOT NULL DEFAULT 0,
    -- a GenAI call span (processors/chain.py is_call): listed, counted, rolled up
    is_call               smallint NOT NULL DEFAULT 0 CHECK (is_call IN (0, 1))
) PARTITION BY RANGE (start_time_ns)
"""

_ROLLUP_V1: Final = """
CREATE TABLE span_rollup (
    hour_ns        bigint NOT NULL,
    provider       text COLLATE "C",
    request_model  text COLLATE "C",
    response_model text COLLATE "C",
    tenant_id      text COLLATE "C",
    status_code    text NOT NULL,
    has_findings   smallint NOT NULL CHECK (has_findings IN (0, 1)),
    calls          bigint NOT NULL,
    input_tokens   bigint NOT NULL,
    output_tokens  bigint NOT NULL,
    cost_usd       double precision NOT NULL,
    latency_count  bigint NOT NULL,
    latency_sum_ms double precision NOT NULL,
    latency_hist   bigint[] NOT NULL,
    ttft_count     bigint NOT NULL,
    ttft_sum_ms    double precision NOT NULL
)
"""

# The events / attributes columns are JSON text written by Python's encoder, which may hold
# what PostgreSQL's json type refuses (a \u0000 escape, a lone surrogate). The read side's
# finding summary unnests events through this: NULs read as U+FFFD, an unreadable document as
# an empty array (those events are then not counted there; the span itself is unaffected).
_JSON_FUNCTION: Final = r"""
CREATE FUNCTION llmtrace_json(document text) RETURNS json
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN replace(document, '\u0000', '\ufffd')::json;
EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
    RETURN '[]'::json;
END
$$
"""

#: Ordered ``(version, statements)`` steps; all steps above the found version run in one
#: transaction.
MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            _SPANS_V1,
            # Spans outside every daily partition (no start time, or a day not created yet:
            # partitions.py moves them when it creates that day).
            "CREATE TABLE spans_default PARTITION OF spans DEFAULT",
            # A re-export of a stored span replaces it (the exporter's slow path).
            "CREATE UNIQUE INDEX spans_span_id ON spans (span_id, start_time_ns)",
            "CREATE INDEX idx_spans_trace ON spans (trace_id)",
            "CREATE INDEX idx_spans_start ON spans (start_time_ns, span_id) INCLUDE (provider, "
            "request_model, response_model, tenant_id, status_code, findings_count, "
            "security_score, duration_ms, ttft_ms, input_tokens, output_tokens, cost_usd, is_call)",
            "CREATE INDEX idx_spans_provider_start ON spans (provider, start_time_ns, span_id)",
            "CREATE INDEX idx_spans_model_start ON spans (request_model, start_time_ns, span_id)",
            # the model filter matches the request or the response model (filters.py)
            "CREATE INDEX idx_spans_response_model_start ON spans (response_model, "
            "start_time_ns, span_id)",
            "CREATE INDEX idx_spans_tenant_start ON spans (tenant_id, start_time_ns, span_id)",
            "CREATE INDEX idx_spans_errors_start ON spans (start_time_ns, span_id) "
            "WHERE status_code = 'ERROR'",
            "CREATE INDEX idx_spans_findings_start ON spans (start_time_ns, span_id) "
            "WHERE findings_count > 0",
            "CREATE INDEX idx_spans_scored_start ON spans (start_time_ns, span_id) "
            "WHERE security_score IS NOT NULL",
            _ROLLUP_V1,
            "CREATE UNIQUE INDEX span_rollup_key ON span_rollup (hour_ns, provider, "
            "request_model, response_model, tenant_id, status_code, has_findings) "
            "NULLS NOT DISTINCT",
            MERGE_FUNCTION,
            _JSON_FUNCTION,
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]

_Connection = psycopg.Connection[Any]


def _where(conn: _Connection) -> str:
    info = conn.info
    return f"database {info.dbname!r} on {info.host}:{info.port}"


def _found_version(conn: _Connection) -> int:
    """The schema version of the connected database (0: none yet); StoreError for a
    database that holds something else or was written by a newer llmtrace-otel."""
    # pg_class through an ordinary query (a fresh snapshot per statement), not to_regclass():
    # its catalog cache can miss a table another instance created while we waited on the lock.
    names = {name for (name,) in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname IN ('llmtrace_schema', 'spans')")}
    if "llmtrace_schema" not in names:
        if "spans" in names:
            raise StoreError(
                f"{_where(conn)} already has a table named spans and no llmtrace_schema "
                "marker: it is not an llmtrace span store; refusing to touch it. Point "
                "storage.url at another database (or schema, with ?options=-csearch_path=...)."
            )
        return 0
    row = conn.execute("SELECT application, version FROM llmtrace_schema").fetchone()
    if row is None or row[0] != APPLICATION:
        raise StoreError(f"{_where(conn)}: llmtrace_schema does not name an llmtrace span "
                         "store; refusing to touch it")
    version = int(row[1])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{_where(conn)} has schema version {version}, newer than the {SCHEMA_VERSION} "
            "this llmtrace-otel knows; it was written by a newer release. Upgrade "
            "llmtrace-otel or use another database."
        )
    return version


def _check_server(conn: _Connection) -> None:
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        raise StoreError(
            f"{_where(conn)} runs PostgreSQL {version // 10000}; the span store needs "
            f"{MIN_SERVER_VERSION // 10000} or newer"
        )


def migrate(conn: _Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION` under the schema's advisory lock; return
    the version this call found (under the lock, when it took it): below
    :data:`SCHEMA_VERSION` only for the one caller that migrated. ``conn`` must be in
    autocommit mode with no transaction open.

    A database already current is only read (one statement, no lock).
    """
    _check_server(conn)
    if _found_version(conn) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        current = _found_version(conn)  # again, under the lock: another instance may have
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(sql.SQL(statement))  # type: ignore[arg-type]
        if current == 0:
            conn.execute("CREATE TABLE llmtrace_schema (application text NOT NULL, "
                         "version integer NOT NULL)")
            conn.execute("INSERT INTO llmtrace_schema VALUES (%s, %s)",
                         (APPLICATION, SCHEMA_VERSION))
        elif current < SCHEMA_VERSION:
            conn.execute("UPDATE llmtrace_schema SET version = %s", (SCHEMA_VERSION,))
    return current


def check_version(conn: _Connection) -> None:
    """For readers: StoreError unless the database is a current llmtrace store."""
    version = _found_version(conn)
    if version == 0:
        raise StoreError(f"{_where(conn)} holds no llmtrace span store yet (a proxy with "
                         "this storage.url creates it when it starts)")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{_where(conn)} has schema version {version}, older than "
                         f"{SCHEMA_VERSION}; start a proxy with this storage.url once to "
                         "migrate it")
