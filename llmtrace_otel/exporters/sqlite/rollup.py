"""The hourly rollup of stored calls (schema v3, keyed by response model too since v4): what
stats read instead of every call.

``span_rollup`` holds one row per UTC hour and group: (``hour_ns``, provider, request model,
response model, tenant, status code, has findings), i.e. every column a stats filter or grouping
other than ``min_score`` reads (the ``model`` filter matches the request or the response
model). Each row keeps the call count, token and cost sums, the count and sum of
durations with a latency histogram (``histogram.py``), and the count and sum of times to first
chunk. A missing provider, model or tenant is stored as the empty *blob* ``X''``: a primary
key cannot hold NULL, and a blob never equals any text, so an equality filter never matches it
and it cannot collide with a real value (the read side maps it back to null).

How it stays equal to ``spans``:

- **Inserts.** The exporter adds each batch in the same transaction as its span rows
  (:func:`add_to_rollup`): the batch is aggregated in Python, then a multi-row
  ``INSERT ... ON CONFLICT DO UPDATE`` adds a row per (hour, group). Span ids must be new:
  the exporter inserts with a plain ``INSERT`` and, when a span id is already stored (a
  re-export) or repeated in the batch, deletes the stored rows first
  (:func:`replace_stored`), so a row is counted once however often it is exported.
- **Deletes and updates** of ``spans`` rows (retention, a replacement) are applied by the
  triggers ``span_rollup_delete`` / ``span_rollup_update``: the old row's contribution is
  subtracted (and the new one's added). They call SQL functions that
  :func:`~llmtrace_otel.exporters.sqlite.histogram.register_functions` adds, which
  :func:`~llmtrace_otel.exporters.sqlite.schema.connect_writer` does: delete spans through
  such a connection. Elsewhere (the ``sqlite3`` shell) the statement fails with "no such
  function" and changes nothing; it never leaves the rollup wrong. ``INSERT OR REPLACE`` by
  another program would (SQLite fires no delete trigger for a REPLACE): do not write spans
  that way.
- **Backfill.** The v3 migration (and v4, which rebuilds the table with the response model in
  its key) lists every hour that has spans in ``span_rollup_pending``;
  :func:`backfill` then recomputes those hours from ``spans``, a chunk of about
  :data:`BACKFILL_CHUNK_SPANS` calls per transaction, so the write lock is held briefly and the
  exporter keeps writing in between. Recomputing an hour under the write lock is right whatever
  the exporter added to it before, and the read side answers exactly (without the rollup)
  while any hour it needs is still pending. A crash between chunks leaves the rest pending; the
  next writer to open the store finishes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

from llmtrace_otel.exporters.sqlite.bulk import insert_rows
from llmtrace_otel.exporters.sqlite.histogram import bucket_of, encode_counts

__all__ = [
    "BACKFILL_CHUNK_SPANS",
    "HOUR_NS",
    "MIGRATION_V3",
    "MIGRATION_V4",
    "ROLLUP_V5",
    "NO_VALUE",
    "ROLLUP_COLUMNS",
    "SOURCE_COLUMNS",
    "RollupBatch",
    "add_to_rollup",
    "backfill",
    "floor_hour",
    "pending_hours",
    "replace_stored",
]

HOUR_NS: Final = 3600 * 10**9
#: How a missing provider, model or tenant is stored in the rollup's key.
NO_VALUE: Final = b""
BACKFILL_CHUNK_SPANS: Final = 50_000
_V4_SOURCE_COLUMNS: Final = (
    "start_time_ns",
    "provider",
    "request_model",
    "response_model",
    "tenant_id",
    "status_code",
    "findings_count",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms",
    "ttft_ms",
)
#: The ``spans`` columns the rollup is computed from, in the order :class:`RollupBatch` reads
#: (schema v5 adds ``is_call``: only calls are rolled up).
SOURCE_COLUMNS: Final = (*_V4_SOURCE_COLUMNS, "is_call")
_KEY_COLUMNS: Final = (
    "hour_ns",
    "provider",
    "request_model",
    "response_model",
    "tenant_id",
    "status_code",
    "has_findings",
)
#: The columns of ``span_rollup``, in the order of :meth:`RollupBatch.rows`.
ROLLUP_COLUMNS: Final = (
    *_KEY_COLUMNS,
    "calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_count",
    "latency_sum_ms",
    "latency_hist",
    "ttft_count",
    "ttft_sum_ms",
)
_DELETE_CHUNK: Final = 500  # bound parameters per DELETE ... IN (...)
_R = TypeVar("_R", bound=Sequence[object])

_TABLE: Final = """
CREATE TABLE span_rollup (
    hour_ns        INTEGER NOT NULL,  -- UTC hour (floor of start_time_ns)
    provider       TEXT NOT NULL,     -- X'' (empty blob) when the span has none
    request_model  TEXT NOT NULL,     -- X'' when none
    response_model TEXT NOT NULL,     -- X'' when none
    tenant_id      TEXT NOT NULL,     -- X'' when none
    status_code    TEXT NOT NULL,
    has_findings   INTEGER NOT NULL CHECK (has_findings IN (0, 1)),
    calls          INTEGER NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_usd       REAL NOT NULL,
    latency_count  INTEGER NOT NULL,  -- calls with a duration
    latency_sum_ms REAL NOT NULL,
    latency_hist   BLOB NOT NULL,     -- histogram.py
    ttft_count     INTEGER NOT NULL,
    ttft_sum_ms    REAL NOT NULL,
    PRIMARY KEY (hour_ns, provider, request_model, response_model, tenant_id, status_code,
                 has_findings)
) WITHOUT ROWID
"""


def _hour_sql(column: str) -> str:
    """Floor of a time to its UTC hour in SQL (``%`` truncates, so fold negatives up)."""
    return f"({column} - (({column} % {HOUR_NS}) + {HOUR_NS}) % {HOUR_NS})"


def _key_where(row: str) -> str:
    return " AND ".join((
        f"hour_ns = {_hour_sql(f'{row}.start_time_ns')}",
        f"provider = coalesce({row}.provider, X'')",
        f"request_model = coalesce({row}.request_model, X'')",
        f"response_model = coalesce({row}.response_model, X'')",
        f"tenant_id = coalesce({row}.tenant_id, X'')",
        f"status_code = {row}.status_code",
        f"has_findings = ({row}.findings_count > 0)",
    ))


def _subtract_old(calls_only: bool) -> str:
    only = " AND old.is_call = 1" if calls_only else ""
    return (
        "UPDATE span_rollup SET calls = calls - 1, "
        "input_tokens = input_tokens - coalesce(old.input_tokens, 0), "
        "output_tokens = output_tokens - coalesce(old.output_tokens, 0), "
        "cost_usd = cost_usd - coalesce(old.cost_usd, 0.0), "
        "latency_count = latency_count - (old.duration_ms IS NOT NULL), "
        "latency_sum_ms = latency_sum_ms - coalesce(old.duration_ms, 0.0), "
        "latency_hist = llmtrace_hist_remove(latency_hist, old.duration_ms), "
        "ttft_count = ttft_count - (old.ttft_ms IS NOT NULL), "
        "ttft_sum_ms = ttft_sum_ms - coalesce(old.ttft_ms, 0.0) "
        f"WHERE {_key_where('old')}{only};\n"
        f"DELETE FROM span_rollup WHERE {_key_where('old')} AND calls <= 0;"
    )


def _add_new(calls_only: bool) -> str:
    only = " AND new.is_call = 1" if calls_only else ""
    return (
        f"INSERT INTO span_rollup ({', '.join(ROLLUP_COLUMNS)}) SELECT "
        f"{_hour_sql('new.start_time_ns')}, coalesce(new.provider, X''), "
        "coalesce(new.request_model, X''), coalesce(new.response_model, X''), "
        "coalesce(new.tenant_id, X''), new.status_code, "
        "new.findings_count > 0, 1, coalesce(new.input_tokens, 0), "
        "coalesce(new.output_tokens, 0), coalesce(new.cost_usd, 0.0), "
        "new.duration_ms IS NOT NULL, coalesce(new.duration_ms, 0.0), "
        "llmtrace_hist_add(X'', new.duration_ms), new.ttft_ms IS NOT NULL, "
        f"coalesce(new.ttft_ms, 0.0) WHERE new.start_time_ns IS NOT NULL{only} "
        f"ON CONFLICT ({', '.join(_KEY_COLUMNS)}) DO UPDATE SET calls = calls + 1, "
        "input_tokens = input_tokens + excluded.input_tokens, "
        "output_tokens = output_tokens + excluded.output_tokens, "
        "cost_usd = cost_usd + excluded.cost_usd, "
        "latency_count = latency_count + excluded.latency_count, "
        "latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms, "
        "latency_hist = llmtrace_hist_add(latency_hist, new.duration_ms), "
        "ttft_count = ttft_count + excluded.ttft_count, "
        "ttft_sum_ms = ttft_sum_ms + excluded.ttft_sum_ms;"
    )


def _triggers(calls_only: bool) -> tuple[str, str]:
    """The triggers that keep the rollup in step with deleted and updated spans (of calls
    only from schema v5, when ``spans`` has ``is_call``)."""
    columns = SOURCE_COLUMNS if calls_only else _V4_SOURCE_COLUMNS
    return (
        "CREATE TRIGGER span_rollup_delete AFTER DELETE ON spans "
        f"WHEN old.start_time_ns IS NOT NULL BEGIN\n{_subtract_old(calls_only)}\nEND",
        f"CREATE TRIGGER span_rollup_update AFTER UPDATE OF {', '.join(columns)} ON spans "
        f"BEGIN\n{_subtract_old(calls_only)}\n{_add_new(calls_only)}\nEND",
    )


_FIRST_HOUR: Final = _hour_sql("min(start_time_ns)")
# Every hour that has spans, found by skipping through the time index (one seek per hour, not
# a scan of every row): the backfill's to-do list.
_LIST_HOURS: Final = (
    "INSERT INTO span_rollup_pending (hour_ns) WITH RECURSIVE hours(hour_ns) AS ("
    f"SELECT (SELECT {_FIRST_HOUR} FROM spans) UNION ALL "
    f"SELECT (SELECT {_FIRST_HOUR} FROM spans WHERE start_time_ns >= hours.hour_ns + {HOUR_NS})"
    " FROM hours WHERE hours.hour_ns IS NOT NULL) "
    "SELECT hour_ns FROM hours WHERE hour_ns IS NOT NULL"
)
#: Schema v3: the rollup table, its maintenance triggers and the backfill's to-do list. (A new
#: store gets the current table here; v4 and v5 then rebuild it and its triggers, which costs
#: nothing on an empty store.)
MIGRATION_V3: Final = (
    _TABLE,
    "CREATE TABLE span_rollup_pending (hour_ns INTEGER PRIMARY KEY NOT NULL)",
    _LIST_HOURS,
    *_triggers(calls_only=False),
)
#: Schema v4: the ``model`` filter also matches the response model (the model a listing
#: shows), so the rollup gets the response model in its key: the table and its triggers are
#: rebuilt and every hour is listed for the backfill again (stats are exact until it is done).
MIGRATION_V4: Final = (
    "DROP TRIGGER span_rollup_delete",
    "DROP TRIGGER span_rollup_update",
    "DROP TABLE span_rollup",
    _TABLE,
    "DELETE FROM span_rollup_pending",
    _LIST_HOURS,
    *_triggers(calls_only=False),
)
#: Schema v5, the rollup's part: calls only (``spans.is_call``): triggers that count calls,
#: every hour computed again.
ROLLUP_V5: Final = (
    "DROP TRIGGER span_rollup_delete",
    "DROP TRIGGER span_rollup_update",
    *_triggers(calls_only=True),
    "DELETE FROM span_rollup",
    "DELETE FROM span_rollup_pending",
    _LIST_HOURS,
)

_INSERT_HEAD: Final = f"INSERT INTO span_rollup ({', '.join(ROLLUP_COLUMNS)})"
_UPSERT_TAIL: Final = (
    f" ON CONFLICT ({', '.join(_KEY_COLUMNS)}) DO UPDATE SET "
    "calls = calls + excluded.calls, "
    "input_tokens = input_tokens + excluded.input_tokens, "
    "output_tokens = output_tokens + excluded.output_tokens, "
    "cost_usd = cost_usd + excluded.cost_usd, "
    "latency_count = latency_count + excluded.latency_count, "
    "latency_sum_ms = latency_sum_ms + excluded.latency_sum_ms, "
    "latency_hist = llmtrace_hist_merge(latency_hist, excluded.latency_hist), "
    "ttft_count = ttft_count + excluded.ttft_count, "
    "ttft_sum_ms = ttft_sum_ms + excluded.ttft_sum_ms"
)
_SOURCE_SQL: Final = (
    f"SELECT {', '.join(SOURCE_COLUMNS)} FROM spans INDEXED BY idx_spans_start "
    "WHERE start_time_ns >= ? AND start_time_ns < ? AND is_call = 1"
)


def _key_value(value: str | None) -> str | bytes:
    return NO_VALUE if value is None else value


def floor_hour(time_ns: int) -> int:
    return time_ns - time_ns % HOUR_NS


class RollupBatch:
    """Calls aggregated by (hour, group) in Python: what one batch adds to the rollup.

    :meth:`add` takes rows of :data:`SOURCE_COLUMNS` values (rows without a start time, and
    spans that are not calls, are skipped: stats never count them); :meth:`rows` gives
    ``span_rollup`` rows.
    """

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[tuple[Any, ...], list[Any]] = {}

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        groups = self._groups
        for (start, provider, model, response_model, tenant, status, findings, inp, out, cost,
             dur, ttft, call) in rows:
            if start is None or not call:
                continue
            key = (start - start % HOUR_NS, provider, model, response_model, tenant, status,
                   findings > 0)
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = [0, 0, 0, 0.0, 0, 0.0, {}, 0, 0.0]
            acc[0] += 1
            if inp is not None:
                acc[1] += inp
            if out is not None:
                acc[2] += out
            if cost is not None:
                acc[3] += cost
            if dur is not None:
                acc[4] += 1
                acc[5] += dur
                counts = acc[6]
                bucket = bucket_of(dur)
                counts[bucket] = counts.get(bucket, 0) + 1
            if ttft is not None:
                acc[7] += 1
                acc[8] += ttft

    def rows(self) -> list[tuple[Any, ...]]:
        return [
            (hour, _key_value(provider), _key_value(model), _key_value(response_model),
             _key_value(tenant), status, int(findings), calls, inp, out, cost, lat_n, lat_sum,
             encode_counts(counts), ttft_n, ttft_sum)
            for (hour, provider, model, response_model, tenant, status, findings),
            (calls, inp, out, cost, lat_n, lat_sum, counts, ttft_n, ttft_sum)
            in self._groups.items()
        ]


def add_to_rollup(
    conn: sqlite3.Connection,
    rows: Iterable[Sequence[object]],
    pick: Callable[[Sequence[object]], Sequence[Any]],
) -> None:
    """Add inserted span rows to the rollup, on ``conn``'s open write transaction.

    ``pick`` turns one span row into its :data:`SOURCE_COLUMNS` values (an ``itemgetter``).
    """
    batch = RollupBatch()
    batch.add(map(pick, rows))
    insert_rows(conn, _INSERT_HEAD, len(ROLLUP_COLUMNS), batch.rows(), _UPSERT_TAIL)


def replace_stored(conn: sqlite3.Connection, rows: Sequence[_R]) -> list[_R]:
    """Make every span id of ``rows`` (first column) new, on an open write transaction.

    Keeps the last row of an id repeated in the batch, and deletes the stored rows of ids
    already in the table (the delete trigger takes them out of the rollup), so that inserting
    the returned rows and adding them to the rollup counts each span exactly once.
    """
    latest = {row[0]: row for row in rows}
    ids = list(latest)
    for offset in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[offset : offset + _DELETE_CHUNK]
        conn.execute(f"DELETE FROM spans WHERE span_id IN ({', '.join('?' * len(chunk))})",
                     chunk)
    return list(latest.values())


def pending_hours(conn: sqlite3.Connection) -> int:
    """Hours the backfill has still to compute."""
    return int(conn.execute("SELECT count(*) FROM span_rollup_pending").fetchone()[0])


def _rebuild(conn: sqlite3.Connection, start_ns: int, end_ns: int) -> None:
    """Recompute the rollup of the hours in [start_ns, end_ns) from ``spans``."""
    conn.execute("DELETE FROM span_rollup WHERE hour_ns >= ? AND hour_ns < ?", (start_ns, end_ns))
    batch = RollupBatch()
    batch.add(conn.execute(_SOURCE_SQL, (start_ns, end_ns)))
    insert_rows(conn, _INSERT_HEAD, len(ROLLUP_COLUMNS), batch.rows())
    conn.execute("DELETE FROM span_rollup_pending WHERE hour_ns >= ? AND hour_ns < ?",
                 (start_ns, end_ns))


def _next_chunk(conn: sqlite3.Connection, chunk_spans: int) -> tuple[int, int] | None:
    first = conn.execute("SELECT min(hour_ns) FROM span_rollup_pending").fetchone()[0]
    if first is None:
        return None
    start = int(first)
    # Whole hours holding about chunk_spans calls (at least one hour, however full).
    edge = conn.execute(
        "SELECT start_time_ns FROM spans WHERE start_time_ns >= ? ORDER BY start_time_ns "
        "LIMIT 1 OFFSET ?", (start, chunk_spans)).fetchone()
    if edge is None:
        last = conn.execute("SELECT max(hour_ns) FROM span_rollup_pending").fetchone()[0]
        return start, int(last) + HOUR_NS
    return start, max(start + HOUR_NS, floor_hour(int(edge[0])))


def backfill(conn: sqlite3.Connection, *, chunk_spans: int = BACKFILL_CHUNK_SPANS) -> int:
    """Compute every pending hour, one chunk per ``BEGIN IMMEDIATE`` transaction; returns the
    number of chunks. ``conn`` must be in autocommit mode and have no open transaction."""
    chunks = 0
    while conn.execute("SELECT 1 FROM span_rollup_pending LIMIT 1").fetchone() is not None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            chunk = _next_chunk(conn, chunk_spans)  # again, under the lock
            if chunk is not None:
                _rebuild(conn, *chunk)
                chunks += 1
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return chunks
