"""The SQLite span store's schema: DDL, versioned migrations and connection setup.

A database is recognised as ours by ``PRAGMA application_id`` (:data:`APPLICATION_ID`), and
its schema version is ``PRAGMA user_version``. :data:`MIGRATIONS` is an ordered tuple of
``(version, statements)``; :func:`migrate` applies every step above the current version in one
``BEGIN IMMEDIATE`` transaction (both pragmas live in the database header and roll back with
it), so a crash half-way leaves the database at the old version. Opening a database that is
already at :data:`SCHEMA_VERSION` writes nothing; a database written by a newer version of
llmtrace-otel is refused with :class:`StoreError` rather than misread.

The one step that is not a single transaction is the v3 rollup's backfill (``rollup.py``):
the migration lists the hours that have spans, then :func:`migrate` computes them in chunks
of ~50,000 calls per transaction, so that other writers wait for one chunk, not for the whole
store. Until an hour is computed, stats that need it are answered exactly without the rollup;
an interrupted backfill is resumed by the next :func:`migrate` (writes then, reads otherwise).

Every connection runs in WAL mode with ``synchronous=NORMAL`` (a committed batch survives a
process crash; a power loss may lose the last few batches, which is the right trade for
telemetry), a busy timeout so the writer and readers wait for each other instead of failing,
and foreign keys on.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Final

from llmtrace_otel.exporters.sqlite.histogram import register_functions
from llmtrace_otel.exporters.sqlite.rollup import MIGRATION_V3, MIGRATION_V4, ROLLUP_V5, backfill
from llmtrace_processors.attributes import (
    LLMTRACE_CALL_DUPLICATE_OF,
    LLMTRACE_SECURITY_FINDING_EVENT,
)
from llmtrace_processors.chain import CALL_OPERATIONS

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "StoreError",
    "connect_reader",
    "connect_writer",
    "migrate",
]

#: ``PRAGMA application_id`` of an llmtrace span store: the ASCII bytes "LLMT".
APPLICATION_ID: Final = 0x4C4C4D54
DEFAULT_BUSY_TIMEOUT_MS: Final = 5000
# Checkpoint the WAL every 4,000 pages (16 MiB at the default page size) instead of SQLite's
# 1,000: every batch dirties one random leaf page per random-key index (span_id, trace_id),
# and fewer, larger checkpoints measured ~15-20% more spans/s (bench/sqlite_write.py).
# journal_size_limit truncates the WAL back to 64 MiB after a checkpoint that a long-lived
# reader made it outgrow.
_WAL_AUTOCHECKPOINT_PAGES: Final = 4000
_JOURNAL_SIZE_LIMIT_BYTES: Final = 64 * 1024 * 1024


class StoreError(Exception):
    """The span store cannot be opened or used; the message names the file and the reason."""


_SPANS_V1: Final = """
CREATE TABLE spans (
    span_id               TEXT PRIMARY KEY NOT NULL,  -- 16 lowercase hex digits
    trace_id              TEXT NOT NULL,              -- 32 lowercase hex digits
    parent_span_id        TEXT,
    name                  TEXT NOT NULL,
    kind                  TEXT NOT NULL,              -- SpanKind name: CLIENT, SERVER, ...
    start_time_ns         INTEGER,
    end_time_ns           INTEGER,
    duration_ms           REAL,
    status_code           TEXT NOT NULL CHECK (status_code IN ('UNSET', 'OK', 'ERROR')),
    status_message        TEXT,
    service_name          TEXT,                       -- resource service.name
    operation             TEXT,                       -- gen_ai.operation.name
    provider              TEXT,                       -- gen_ai.provider.name, else gen_ai.system
    request_model         TEXT,
    response_model        TEXT,
    response_id           TEXT,
    input_tokens          INTEGER,
    output_tokens         INTEGER,
    cache_read_tokens     INTEGER,
    cache_creation_tokens INTEGER,
    reasoning_tokens      INTEGER,
    ttft_ms               REAL,                       -- gen_ai.response.time_to_first_chunk * 1000
    stream                INTEGER CHECK (stream IN (0, 1)),
    error_type            TEXT,
    server_address        TEXT,
    http_status           INTEGER,
    cost_usd              REAL,
    tenant_id             TEXT,
    agent_id              TEXT,
    security_score        REAL,
    attributes            TEXT NOT NULL,              -- JSON object of every span attribute
    events                TEXT NOT NULL,              -- JSON [{name, timestamp_ns, attributes}]
    links                 TEXT NOT NULL,              -- JSON [{trace_id, span_id, attributes}]
    resource              TEXT NOT NULL,              -- JSON object of resource attributes
    scope_name            TEXT,
    scope_version         TEXT
)
"""

# Migration steps are parameterless statements, so the event name (our own constant, never
# user input) is inlined as a quoted SQL literal.
_FINDING_LITERAL: Final = "'" + LLMTRACE_SECURITY_FINDING_EVENT.replace("'", "''") + "'"
_BACKFILL_FINDINGS_V2: Final = (
    "UPDATE spans SET findings_count = (SELECT count(*) FROM json_each(spans.events) "
    f"WHERE json_extract(json_each.value, '$.name') = {_FINDING_LITERAL}) "
    f"WHERE instr(events, {_FINDING_LITERAL}) > 0"
)

# Schema v4: which spans are calls (llmtrace_processors.chain.is_call), for rows written
# before the exporter stored it. Our own constants, inlined as quoted SQL literals.
_CALL_OPERATIONS_SQL: Final = ", ".join(f"'{name}'" for name in sorted(CALL_OPERATIONS))
_BACKFILL_IS_CALL: Final = (
    f"UPDATE spans SET is_call = 1 WHERE operation IN ({_CALL_OPERATIONS_SQL}) AND "
    f"json_extract(attributes, '$.\"{LLMTRACE_CALL_DUPLICATE_OF}\"') IS NULL"
)

#: Ordered ``(version, statements)`` steps; a step's statements run in one transaction.
MIGRATIONS: Final[tuple[tuple[int, tuple[str, ...]], ...]] = (
    (
        1,
        (
            _SPANS_V1,
            "CREATE INDEX idx_spans_start ON spans (start_time_ns)",
            "CREATE INDEX idx_spans_provider_start ON spans (provider, start_time_ns)",
            "CREATE INDEX idx_spans_model_start ON spans (request_model, start_time_ns)",
            "CREATE INDEX idx_spans_trace ON spans (trace_id)",
            "CREATE INDEX idx_spans_tenant_start ON spans (tenant_id, start_time_ns)",
        ),
    ),
    (
        2,
        (
            # Security findings arrive as span events; the count is kept in a column so the
            # "has findings" filter is an index lookup, not a JSON scan. ADD COLUMN with a
            # constant default rewrites nothing; the UPDATE backfills rows written by v1.
            "ALTER TABLE spans ADD COLUMN findings_count INTEGER NOT NULL DEFAULT 0",
            _BACKFILL_FINDINGS_V2,
            # The time index becomes covering for stats: after start_time_ns it holds every
            # column a stats filter, grouping or aggregate reads, so stats never touch the
            # wide rows. Start times grow, so new entries land at the right edge of the tree.
            "DROP INDEX idx_spans_start",
            "CREATE INDEX idx_spans_start ON spans (start_time_ns, provider, request_model, "
            "tenant_id, status_code, findings_count, security_score, duration_ms, ttft_ms, "
            "input_tokens, output_tokens, cost_usd)",
            # Partial indexes for the listing filters that select few rows (findings, errors,
            # scored spans): they hold only the matching rows, so they cost the writer
            # nothing for the others, and newest-first listings walk them in order.
            "CREATE INDEX idx_spans_findings_start ON spans (start_time_ns) "
            "WHERE findings_count > 0",
            "CREATE INDEX idx_spans_errors_start ON spans (start_time_ns) "
            "WHERE status_code = 'ERROR'",
            "CREATE INDEX idx_spans_scored_start ON spans (start_time_ns) "
            "WHERE security_score IS NOT NULL",
        ),
    ),
    # The hourly rollup stats read (rollup.py): table, triggers, and the list of hours whose
    # rows the backfill after the migration computes from existing spans.
    (3, MIGRATION_V3),
    (
        4,
        (
            # The model filter matches the request or the response model (a listing shows the
            # response model): an index for listings by response model, the response model in
            # the covering time index (exact stats filter on it without reading wide rows) and
            # in the rollup's key.
            "CREATE INDEX idx_spans_response_model_start ON spans (response_model, "
            "start_time_ns)",
            "DROP INDEX idx_spans_start",
            "CREATE INDEX idx_spans_start ON spans (start_time_ns, provider, request_model, "
            "tenant_id, status_code, findings_count, security_score, duration_ms, ttft_ms, "
            "input_tokens, output_tokens, cost_usd, response_model)",
            *MIGRATION_V4,
        ),
    ),
    # Calls are GenAI call spans (chat, completion, embeddings, generate_content) that are not
    # the second span of a call: application, HTTP client, agent and tool spans belong in
    # the trace view, not in call counts, error rates or percentiles (listing and stats
    # filter on is_call; the rollup holds calls only and is computed again).
    (
        5,
        (
            "ALTER TABLE spans ADD COLUMN is_call INTEGER NOT NULL DEFAULT 0",
            _BACKFILL_IS_CALL,
            "DROP INDEX idx_spans_start",
            "CREATE INDEX idx_spans_start ON spans (start_time_ns, provider, request_model, "
            "tenant_id, status_code, findings_count, security_score, duration_ms, ttft_ms, "
            "input_tokens, output_tokens, cost_usd, response_model, is_call)",
            *ROLLUP_V5,
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]


def _pragma_int(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return int(row[0])


def _check_identity(conn: sqlite3.Connection, path: Path) -> int:
    """Return the schema version of an llmtrace database (0 for a new, empty file).

    Raises :class:`StoreError` for a database that belongs to something else or was written
    by a newer llmtrace-otel.
    """
    app_id = _pragma_int(conn, "application_id")
    version = _pragma_int(conn, "user_version")
    if app_id == 0 and version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if tables:
            raise StoreError(
                f"{path} is not an llmtrace span database: it already holds {tables} other "
                "schema objects and no llmtrace marker (PRAGMA application_id); refusing to "
                "touch it. Point sqlite.path at a new file."
            )
        return 0
    if app_id != APPLICATION_ID:
        raise StoreError(
            f"{path} is not an llmtrace span database (PRAGMA application_id is {app_id}, "
            f"expected {APPLICATION_ID}). Point sqlite.path at a new file."
        )
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than the {SCHEMA_VERSION} this "
            "llmtrace-otel knows; it was written by a newer release. Upgrade llmtrace-otel "
            "or use another file."
        )
    return version


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database on ``conn`` to :data:`SCHEMA_VERSION`; return the version found.

    ``conn`` must be in autocommit mode (``isolation_level=None``). A database already at
    the current version is only read. Concurrent openers are safe: the version is read again
    under the write lock before any step runs.
    """
    found = _check_identity(conn, path)
    if found == SCHEMA_VERSION:
        _finish_backfill(conn)
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = _check_identity(conn, path)
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement)
            # PRAGMA arguments cannot be bound; both values are our own integers.
            conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    _finish_backfill(conn)
    return found


def _finish_backfill(conn: sqlite3.Connection) -> None:
    """Compute the rollup of hours the v3 migration (or an interrupted backfill) left pending,
    in short transactions of their own (rollup.py); reads only when nothing is pending."""
    backfill(conn)


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int, *, writer: bool) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if writer:
        register_functions(conn)  # the rollup's upserts and triggers call them
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT_BYTES}")
    else:
        conn.execute("PRAGMA query_only = ON")
    conn.execute("PRAGMA foreign_keys = ON")


def _create_private(file: Path) -> None:
    """Create the store (0600) and a missing directory (0700) readable by this user only:
    with capture on it holds prompts. SQLite gives its ``-wal`` and ``-shm`` files the
    database file's mode. An existing file or directory keeps the mode it has."""
    if not file.parent.exists():
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect_writer(
    path: str | os.PathLike[str], *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Open (creating it and its parent directory if needed) and migrate the store at ``path``.

    The connection is in autocommit mode (callers issue ``BEGIN``/``COMMIT``) and may be used
    from any thread, one at a time: the caller serialises access. It has the SQL functions
    the rollup's triggers call, so it may delete or update spans (rollup.py).
    Raises :class:`OSError`, :class:`sqlite3.Error` or :class:`StoreError`.
    """
    file = Path(path)
    _create_private(file)
    conn = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    try:
        _configure(conn, busy_timeout_ms, writer=True)
        migrate(conn, file)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_reader(
    path: str | os.PathLike[str], *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Open the store at ``path`` read-only (``mode=ro``) after checking it is ours and current.

    Raises :class:`StoreError` (naming the path) when the file is missing, is not an SQLite
    database, is not an llmtrace store, or has a schema this code cannot read.
    """
    file = Path(path)
    if not file.exists():
        raise StoreError(
            f"no llmtrace span database at {file}: the file does not exist (the proxy creates "
            "it when it stores its first span; check --db / sqlite.path)"
        )
    if not file.is_file():
        raise StoreError(f"{file} is not an llmtrace span database: it is not a regular file")
    uri = f"{file.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {file} read-only: {exc}") from exc
    try:
        _configure(conn, busy_timeout_ms, writer=False)
        version = _check_identity(conn, file)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{file} is not an llmtrace span database: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    if version != SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"{file} is an empty SQLite file, not an initialised llmtrace span database"
            if version == 0
            else f"{file} has schema version {version}, older than {SCHEMA_VERSION}; run the "
            "proxy against it once to migrate it"
        )
    return conn
