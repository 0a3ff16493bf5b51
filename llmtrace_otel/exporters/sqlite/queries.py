"""Read side of the SQLite span store, for the CLI (``llmtrace-otel traces``) and the HTTP API.

:class:`SpanStore` opens a read-only (``mode=ro``) connection per call, so it is safe to use
from any thread and never blocks the exporter (WAL readers do not block the writer). Every
filter is a bound parameter and each filtered listing is served by an index on
``start_time_ns`` (alone or after the filtered column), newest first.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from llmtrace_otel.exporters.sqlite.filters import (
    CallFilter,
    Cursor,
    GroupBy,
    ListQuery,
    QueryError,
    StatsQuery,
)
from llmtrace_otel.exporters.sqlite.finding_stats import FindingSummary, finding_summary
from llmtrace_otel.exporters.sqlite.listing import MAX_TRACE_SPANS, list_sql, trace_sql
from llmtrace_otel.exporters.sqlite.records import (
    CALL_COLUMNS,
    RECORD_COLUMNS,
    STATUS_CODES,
    CallPage,
    CallRow,
    EventRecord,
    LinkRecord,
    SpanRecord,
    TraceRecord,
    call_from_row,
    iso_time,
    record_from_row,
)
from llmtrace_otel.exporters.sqlite.rollup_stats import (
    EXACT_BELOW,
    answer_stats,
    rollup_statements,
)
from llmtrace_otel.exporters.sqlite.schema import (
    DEFAULT_BUSY_TIMEOUT_MS,
    StoreError,
    connect_reader,
)
from llmtrace_otel.exporters.sqlite.stats import (
    StatsResult,
    aggregate_sql,
    rank_sql,
    sorted_durations_sql,
)

__all__ = [
    "STATUS_CODES",
    "CallPage",
    "CallRow",
    "EventRecord",
    "LinkRecord",
    "SpanRecord",
    "SpanStore",
    "TraceRecord",
    "iso_time",
]

def _recent_calls_sql(
    limit: int,
    provider: str | None,
    model: str | None,
    since_ns: int | None,
    trace_id: str | None,
    status: str | None,
) -> tuple[str, tuple[object, ...]]:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
    where: list[str] = []
    params: list[object] = []
    if provider is not None:
        where.append("provider = ?")
        params.append(provider)
    if model is not None:
        where.append("request_model = ?")
        params.append(model)
    if since_ns is not None:
        where.append("start_time_ns >= ?")
        params.append(int(since_ns))
    if trace_id is not None:
        where.append("trace_id = ?")
        params.append(trace_id.lower())
    if status is not None:
        code = status.upper()
        if code not in STATUS_CODES:
            raise ValueError(
                f"status must be one of {', '.join(sorted(STATUS_CODES))}, got {status!r}"
            )
        where.append("status_code = ?")
        params.append(code)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT {', '.join(CALL_COLUMNS)} FROM spans{clause} "
        "ORDER BY start_time_ns DESC, rowid DESC LIMIT ?"
    )
    params.append(limit)
    return sql, tuple(params)


class SpanStore:
    """Read-only access to the span database at ``path``.

    Constructing it does no I/O; each call opens a read-only connection, checks that the file
    is an llmtrace span store this code can read, and closes it again. Every failure is a
    :class:`StoreError` whose message names the file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        on_operation: Callable[[str, str], None] | None = None,
    ) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        #: Told ("read", "ok"|"error") after every read.
        self._on_operation = on_operation

    @property
    def path(self) -> Path:
        return self._path

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        status = "error"
        try:
            conn = connect_reader(self._path, busy_timeout_ms=self._busy_timeout_ms)
            try:
                yield conn
                status = "ok"
            except sqlite3.Error as exc:
                raise StoreError(f"reading {self._path} failed: {exc}") from exc
            finally:
                conn.close()
        finally:
            if self._on_operation is not None:
                self._on_operation("read", status)

    def recent_calls(
        self,
        limit: int = 20,
        *,
        provider: str | None = None,
        model: str | None = None,
        since_ns: int | None = None,
        trace_id: str | None = None,
        status: str | None = None,
    ) -> list[CallRow]:
        """The newest ``limit`` spans matching every given filter, newest first.

        ``model`` matches the requested model (``gen_ai.request.model``); ``since_ns`` is an
        inclusive lower bound on the start time (ns since the epoch); ``status`` is
        ``UNSET``, ``OK`` or ``ERROR`` (any case). Raises :class:`ValueError` for a bad
        ``limit`` or ``status``.
        """
        sql, params = _recent_calls_sql(limit, provider, model, since_ns, trace_id, status)
        with self._connection() as conn:
            return [call_from_row(row) for row in conn.execute(sql, params)]

    def explain_recent_calls(
        self,
        limit: int = 20,
        *,
        provider: str | None = None,
        model: str | None = None,
        since_ns: int | None = None,
        trace_id: str | None = None,
        status: str | None = None,
    ) -> tuple[str, ...]:
        """The ``EXPLAIN QUERY PLAN`` detail lines of the matching :meth:`recent_calls` query."""
        sql, params = _recent_calls_sql(limit, provider, model, since_ns, trace_id, status)
        with self._connection() as conn:
            return tuple(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    def get_span(self, span_id: str) -> SpanRecord | None:
        """The full record of one span (16 hex digits), or None when it is not stored."""
        sql = f"SELECT {', '.join(RECORD_COLUMNS)} FROM spans WHERE span_id = ?"
        with self._connection() as conn:
            row = conn.execute(sql, (span_id.lower(),)).fetchone()
        return None if row is None else record_from_row(row)

    def list_calls(self, query: ListQuery) -> CallPage:
        """One page of calls matching ``query.filter``, newest first (keyset pagination)."""
        sql, params = list_sql(query, CALL_COLUMNS)
        with self._connection() as conn:
            rows = [call_from_row(row) for row in conn.execute(sql, params)]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        cursor = None
        if more:
            last = rows[-1]
            assert last.start_time_ns is not None  # the listing excludes NULL start times
            cursor = Cursor(last.start_time_ns, last.span_id).encode()
        return CallPage(tuple(rows), cursor)

    def explain_list_calls(self, query: ListQuery) -> tuple[str, ...]:
        """The ``EXPLAIN QUERY PLAN`` detail lines of :meth:`list_calls`."""
        sql, params = list_sql(query, CALL_COLUMNS)
        return self._explain(sql, params)

    def get_trace(self, trace_id: str) -> TraceRecord | None:
        """Every stored span of ``trace_id`` (32 hex digits), or None when there is none."""
        trace_id = trace_id.lower()
        with self._connection() as conn:
            rows = conn.execute(trace_sql(RECORD_COLUMNS), (trace_id,)).fetchall()
        if not rows:
            return None
        spans = tuple(record_from_row(row) for row in rows[:MAX_TRACE_SPANS])
        return TraceRecord(trace_id, spans, len(rows) > MAX_TRACE_SPANS)

    def finding_summary(self, spec: CallFilter) -> FindingSummary:
        """Security findings of the calls ``spec`` selects, by severity and by type
        (``finding_stats.py``)."""
        with self._connection() as conn:
            return finding_summary(conn, spec)

    def resolve_trace_id(self, prefix: str) -> str:
        """The one stored trace id that starts with ``prefix`` (lower-case hex, as
        :func:`~llmtrace_otel.exporters.sqlite.filters.parse_trace_prefix` returns it).

        One range search of the trace index: ids starting with ``prefix`` sort from
        ``prefix`` up to, not including, ``prefix + "g"`` (``g`` follows every hex digit).
        Raises :class:`QueryError` when none or several traces match.
        """
        if len(prefix) == 32:
            return prefix
        sql = ("SELECT DISTINCT trace_id FROM spans WHERE trace_id >= ? AND trace_id < ? "
               "ORDER BY trace_id LIMIT 3")
        with self._connection() as conn:
            found = [row[0] for row in conn.execute(sql, (prefix, prefix + "g"))]
        if not found:
            raise QueryError("trace_id", f"no stored trace id starts with {prefix}")
        if len(found) > 1:
            shown = ", ".join(found[:2]) + (", ..." if len(found) > 2 else "")
            raise QueryError("trace_id", f"{prefix} is the start of more than one trace id "
                                         f"({shown}); give more digits")
        return str(found[0])

    def stats(self, query: StatsQuery, *, use_rollup: bool = True,
              exact_below: int = EXACT_BELOW) -> StatsResult:
        """Calls, errors, tokens, cost and latency percentiles: from the hourly rollup when it
        can answer (``rollup_stats.py``; ``percentiles="histogram"``), else exactly
        (``stats.py``). ``use_rollup=False`` always answers exactly."""
        with self._connection() as conn:
            return answer_stats(conn, query, use_rollup=use_rollup, exact_below=exact_below)

    def explain_stats(self, query: StatsQuery, *, use_rollup: bool = False) -> tuple[str, ...]:
        """``EXPLAIN QUERY PLAN`` lines of every statement :meth:`stats` runs exactly, or with
        ``use_rollup`` when it answers from the rollup (empty when it cannot)."""
        lines: list[str] = []
        if use_rollup:
            statements = rollup_statements(query) or []
        else:
            statements = [aggregate_sql(query, GroupBy.NONE), rank_sql(query, descending=False)]
            if query.group_by is not GroupBy.NONE:
                statements += [aggregate_sql(query, query.group_by),
                               sorted_durations_sql(query, query.group_by)]
        for sql, params in statements:
            if "OFFSET ?" in sql:
                params = (*params, 0)
            lines.extend(self._explain(sql, params))
        return tuple(lines)

    def _explain(self, sql: str, params: tuple[object, ...]) -> tuple[str, ...]:
        with self._connection() as conn:
            return tuple(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    def count(self) -> int:
        """Number of stored spans."""
        with self._connection() as conn:
            return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
