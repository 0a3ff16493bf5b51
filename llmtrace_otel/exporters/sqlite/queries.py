"""Read side of the SQLite span store, for the CLI (``llmtrace-otel traces``) and the HTTP API.

:class:`SpanStore` opens a read-only (``mode=ro``) connection per call, so it is safe to use
from any thread and never blocks the exporter (WAL readers do not block the writer). Every
filter is a bound parameter and each filtered listing is served by an index on
``start_time_ns`` (alone or after the filtered column), newest first.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from llmtrace_otel.exporters.sqlite.filters import Cursor, GroupBy, ListQuery, StatsQuery
from llmtrace_otel.exporters.sqlite.findings import FindingView, findings_of
from llmtrace_otel.exporters.sqlite.listing import MAX_TRACE_SPANS, list_sql, trace_sql
from llmtrace_otel.exporters.sqlite.schema import (
    DEFAULT_BUSY_TIMEOUT_MS,
    StoreError,
    connect_reader,
)
from llmtrace_otel.exporters.sqlite.stats import (
    StatsResult,
    aggregate_sql,
    rank_sql,
    run_stats,
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

STATUS_CODES: Final = frozenset({"UNSET", "OK", "ERROR"})

Attributes = Mapping[str, AttributeValue]


def iso_time(time_ns: int | None) -> str | None:
    """``2026-11-23T10:00:00.123Z`` (UTC, milliseconds) for ns since the epoch."""
    if time_ns is None:
        return None
    moment = datetime.fromtimestamp(time_ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class CallRow:
    """One call in a listing: the columns a person scans, not the full record."""

    span_id: str
    trace_id: str
    parent_span_id: str | None
    name: str
    start_time_ns: int | None
    duration_ms: float | None
    status_code: str
    status_message: str | None
    service_name: str | None
    operation: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    ttft_ms: float | None
    stream: bool | None
    error_type: str | None
    http_status: int | None
    cost_usd: float | None
    tenant_id: str | None
    agent_id: str | None
    security_score: float | None
    findings_count: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields, plus ``start_time`` as an ISO-8601 UTC string."""
        data: dict[str, object] = asdict(self)
        data["start_time"] = iso_time(self.start_time_ns)
        return data

    def as_table_row(self) -> tuple[str, ...]:
        """Cells for: time (UTC), operation, provider, model, status, in, out, ms, ttfc ms,
        trace id."""
        time = iso_time(self.start_time_ns)
        status = self.status_code
        if self.error_type:
            status = f"{status} {self.error_type}"
        return (
            time.replace("T", " ").rstrip("Z") if time else "-",
            self.operation or "-",
            self.provider or "-",
            self.response_model or self.request_model or "-",
            status,
            "-" if self.input_tokens is None else str(self.input_tokens),
            "-" if self.output_tokens is None else str(self.output_tokens),
            "-" if self.duration_ms is None else f"{self.duration_ms:.0f}",
            "-" if self.ttft_ms is None else f"{self.ttft_ms:.0f}",
            self.trace_id,
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    name: str
    timestamp_ns: int | None
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class LinkRecord:
    trace_id: str
    span_id: str
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """Everything stored for one span; attribute maps are read-only, sequences are tuples."""

    span_id: str
    trace_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_time_ns: int | None
    end_time_ns: int | None
    duration_ms: float | None
    status_code: str
    status_message: str | None
    service_name: str | None
    operation: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    response_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_creation_tokens: int | None
    reasoning_tokens: int | None
    ttft_ms: float | None
    stream: bool | None
    error_type: str | None
    server_address: str | None
    http_status: int | None
    cost_usd: float | None
    tenant_id: str | None
    agent_id: str | None
    security_score: float | None
    attributes: Attributes
    events: tuple[EventRecord, ...]
    links: tuple[LinkRecord, ...]
    resource: Attributes
    scope_name: str | None
    scope_version: str | None
    findings_count: int

    @property
    def findings(self) -> tuple[FindingView, ...]:
        """The ``llmtrace.security.finding`` events, as typed views."""
        return findings_of(self.events)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: attribute maps as dicts, events and links as lists of dicts."""
        data: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in ("attributes", "resource"):
                value = dict(value)
            elif field.name in ("events", "links"):
                value = [
                    {f.name: getattr(item, f.name) for f in fields(item)}
                    | {"attributes": dict(item.attributes)}
                    for item in value
                ]
            data[field.name] = value
        data["start_time"] = iso_time(self.start_time_ns)
        data["end_time"] = iso_time(self.end_time_ns)
        data["findings"] = [finding.as_dict() for finding in self.findings]
        return data


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of a newest-first listing; ``next_cursor`` is None on the last page."""

    items: tuple[CallRow, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """The stored spans of one trace, oldest first; ``truncated`` when more than
    ``MAX_TRACE_SPANS`` are stored."""

    trace_id: str
    spans: tuple[SpanRecord, ...]
    truncated: bool


_CALL_COLUMNS: Final = tuple(f.name for f in fields(CallRow))
_RECORD_COLUMNS: Final = tuple(f.name for f in fields(SpanRecord))
_CALL_STREAM: Final = _CALL_COLUMNS.index("stream")


def _attributes(raw: Any) -> Attributes:
    if not isinstance(raw, dict):
        return MappingProxyType({})
    return MappingProxyType(
        {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}
    )


def _decode(text: str | None, column: str, span_id: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StoreError(f"span {span_id}: column {column} holds invalid JSON: {exc}") from exc


def _record(row: tuple[Any, ...]) -> SpanRecord:
    values: dict[str, Any] = dict(zip(_RECORD_COLUMNS, row, strict=True))
    span_id = values["span_id"]
    values["attributes"] = _attributes(_decode(values["attributes"], "attributes", span_id))
    values["resource"] = _attributes(_decode(values["resource"], "resource", span_id))
    values["events"] = tuple(
        EventRecord(
            name=str(event.get("name", "")),
            timestamp_ns=event.get("timestamp_ns"),
            attributes=_attributes(event.get("attributes")),
        )
        for event in _decode(values["events"], "events", span_id) or ()
    )
    values["links"] = tuple(
        LinkRecord(
            trace_id=str(link.get("trace_id", "")),
            span_id=str(link.get("span_id", "")),
            attributes=_attributes(link.get("attributes")),
        )
        for link in _decode(values["links"], "links", span_id) or ()
    )
    if values["stream"] is not None:
        values["stream"] = bool(values["stream"])
    return SpanRecord(**values)


def _call(row: tuple[Any, ...]) -> CallRow:
    if row[_CALL_STREAM] is not None:
        row = (*row[:_CALL_STREAM], bool(row[_CALL_STREAM]), *row[_CALL_STREAM + 1 :])
    return CallRow(*row)


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
        f"SELECT {', '.join(_CALL_COLUMNS)} FROM spans{clause} "
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
    ) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms

    @property
    def path(self) -> Path:
        return self._path

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = connect_reader(self._path, busy_timeout_ms=self._busy_timeout_ms)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"reading {self._path} failed: {exc}") from exc
        finally:
            conn.close()

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
            return [_call(row) for row in conn.execute(sql, params)]

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
        sql = f"SELECT {', '.join(_RECORD_COLUMNS)} FROM spans WHERE span_id = ?"
        with self._connection() as conn:
            row = conn.execute(sql, (span_id.lower(),)).fetchone()
        return None if row is None else _record(row)

    def list_calls(self, query: ListQuery) -> CallPage:
        """One page of calls matching ``query.filter``, newest first (keyset pagination)."""
        sql, params = list_sql(query, _CALL_COLUMNS)
        with self._connection() as conn:
            rows = [_call(row) for row in conn.execute(sql, params)]
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
        sql, params = list_sql(query, _CALL_COLUMNS)
        return self._explain(sql, params)

    def get_trace(self, trace_id: str) -> TraceRecord | None:
        """Every stored span of ``trace_id`` (32 hex digits), or None when there is none."""
        trace_id = trace_id.lower()
        with self._connection() as conn:
            rows = conn.execute(trace_sql(_RECORD_COLUMNS), (trace_id,)).fetchall()
        if not rows:
            return None
        spans = tuple(_record(row) for row in rows[:MAX_TRACE_SPANS])
        return TraceRecord(trace_id, spans, len(rows) > MAX_TRACE_SPANS)

    def stats(self, query: StatsQuery) -> StatsResult:
        """Calls, errors, tokens, cost and latency percentiles (see ``stats.py``)."""
        with self._connection() as conn:
            return run_stats(conn, query)

    def explain_stats(self, query: StatsQuery) -> tuple[str, ...]:
        """``EXPLAIN QUERY PLAN`` lines of every statement :meth:`stats` runs."""
        lines: list[str] = []
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
