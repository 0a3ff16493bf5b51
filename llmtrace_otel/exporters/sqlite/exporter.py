"""SQLiteSpanExporter: the embedded default sink, one row per span in the ``spans`` table.

Run it behind a ``BatchSpanProcessor``: :meth:`SQLiteSpanExporter.export` then runs on the
processor's worker thread, never on the event loop. The connection is opened on the first
export (so constructing the exporter does no I/O) and every batch is written in one
transaction: the span rows in multi-row ``INSERT`` statements (``bulk.py``: a few SQLite steps
per batch instead of one per row, each of which gives up the GIL and, beside a busy event loop,
waits up to 5 ms for it back), then the batch's additions to the hourly rollup that stats read
(``rollup.py``: aggregated in Python, one multi-row upsert of a row per hour and group).
A re-export of a stored span id replaces the stored row (the last copy wins) and is counted
once: the plain ``INSERT`` fails on the duplicate, and the batch is retried after deleting
the stored rows, which takes them out of the rollup.

Telemetry never breaks traffic: an SQLite or file-system error makes ``export`` return
``FAILURE`` (the batch is dropped and counted in :attr:`SQLiteSpanExporter.failed`), logged
once per failure burst, and the next export reopens the database.

A database file that is replaced or removed while open (an operator deleting it to start
afresh, a restore from backup) is noticed before the next batch (one ``stat`` per batch)
and reopened: without that, an open connection keeps writing to the unlinked file and
every later span is lost while each export reports success.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from operator import itemgetter
from pathlib import Path
from typing import Final

from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_SYSTEM,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS

from llmtrace_otel.exporters.sqlite.bulk import insert_rows
from llmtrace_otel.exporters.sqlite.rollup import SOURCE_COLUMNS, add_to_rollup, replace_stored
from llmtrace_otel.exporters.sqlite.schema import (
    DEFAULT_BUSY_TIMEOUT_MS,
    StoreError,
    connect_writer,
)
from llmtrace_processors.attributes import (
    LLMTRACE_AGENT_ID,
    LLMTRACE_COST_USD,
    LLMTRACE_SECURITY_FINDING_EVENT,
    LLMTRACE_SECURITY_SCORE,
    LLMTRACE_TENANT_ID,
)
from llmtrace_processors.chain import is_call
from llmtrace_processors.genai_latest import GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS

__all__ = ["INSERT_COLUMNS", "SQLiteSpanExporter"]

_log = logging.getLogger(__name__)

#: The columns every insert writes, in the order of the row tuples.
INSERT_COLUMNS: Final = (
    "span_id",
    "trace_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time_ns",
    "end_time_ns",
    "duration_ms",
    "status_code",
    "status_message",
    "service_name",
    "operation",
    "provider",
    "request_model",
    "response_model",
    "response_id",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "ttft_ms",
    "stream",
    "error_type",
    "server_address",
    "http_status",
    "cost_usd",
    "tenant_id",
    "agent_id",
    "security_score",
    "attributes",
    "events",
    "links",
    "resource",
    "scope_name",
    "scope_version",
    "findings_count",
    "is_call",
)
_INSERT_HEAD: Final = f"INSERT INTO spans ({', '.join(INSERT_COLUMNS)})"
#: A span row's values the rollup is computed from.
_ROLLUP_SOURCE: Final = itemgetter(*(INSERT_COLUMNS.index(name) for name in SOURCE_COLUMNS))

_Row = tuple[object, ...]


def _ignore_operation(operation: str, status: str) -> None:
    return None

_Encode = Callable[[object], str]


def _text(value: object) -> str | None:
    return value if value.__class__ is str else None  # type: ignore[return-value]


def _int(value: object) -> int | None:
    if value.__class__ is int:
        return value  # type: ignore[return-value]
    if value.__class__ is float and math.isfinite(value) and value.is_integer():  # type: ignore[arg-type,attr-defined]
        return int(value)  # type: ignore[call-overload]
    return None


def _float(value: object) -> float | None:
    cls = value.__class__
    return float(value) if cls is float or cls is int else None  # type: ignore[arg-type]


def _flag(value: object) -> int | None:
    return 1 if value is True else 0 if value is False else None


def _plain(mapping: Mapping[str, object] | None) -> dict[str, object]:
    """A plain dict copy of an attribute mapping, at C speed where possible.

    ``ReadableSpan.attributes`` is a ``MappingProxyType`` over ``BoundedAttributes``; both
    have a public ``copy()`` that returns a dict (``dict(mapping)`` would go through
    ``__getitem__`` once per key in Python).
    """
    if not mapping:
        return {}
    copy = getattr(mapping, "copy", None)
    result = copy() if copy is not None else None
    return result if result.__class__ is dict else dict(mapping)  # type: ignore[return-value]


def _events_json(span: ReadableSpan, encode: _Encode) -> str:
    if not span.events:
        return "[]"
    return encode(
        [
            {
                "name": event.name,
                "timestamp_ns": event.timestamp,
                "attributes": _plain(event.attributes),
            }
            for event in span.events
        ]
    )


def _findings_count(span: ReadableSpan) -> int:
    events = span.events
    if not events:
        return 0
    return sum(1 for event in events if event.name == LLMTRACE_SECURITY_FINDING_EVENT)


def _links_json(span: ReadableSpan, encode: _Encode) -> str:
    if not span.links:
        return "[]"
    return encode(
        [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": _plain(link.attributes),
            }
            for link in span.links
        ]
    )


def _span_row(
    span: ReadableSpan, encode: _Encode, resources: dict[int, tuple[str | None, str]]
) -> _Row:
    """One ``spans`` row, in :data:`INSERT_COLUMNS` order.

    ``resources`` caches (service name, resource JSON) by resource identity for one batch:
    the spans of a process share one Resource object.
    """
    context = span.context
    if context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    attrs = _plain(span.attributes)
    get = attrs.get
    start = span.start_time
    end = span.end_time
    parent = span.parent
    status = span.status
    resource = span.resource
    cached = resources.get(id(resource))
    if cached is None:
        resource_attrs = _plain(resource.attributes)
        cached = (_text(resource_attrs.get(SERVICE_NAME)), encode(resource_attrs))
        resources[id(resource)] = cached
    provider = get(GEN_AI_PROVIDER_NAME)
    if provider is None:
        provider = get(GEN_AI_SYSTEM)
    ttfc = _float(get(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
    scope = span.instrumentation_scope
    return (
        format(context.span_id, "016x"),
        format(context.trace_id, "032x"),
        format(parent.span_id, "016x") if parent is not None else None,
        span.name,
        span.kind.name,
        start,
        end,
        (end - start) / 1e6 if start is not None and end is not None else None,
        status.status_code.name,
        status.description,
        cached[0],
        _text(get(GEN_AI_OPERATION_NAME)),
        _text(provider),
        _text(get(GEN_AI_REQUEST_MODEL)),
        _text(get(GEN_AI_RESPONSE_MODEL)),
        _text(get(GEN_AI_RESPONSE_ID)),
        _int(get(GEN_AI_USAGE_INPUT_TOKENS)),
        _int(get(GEN_AI_USAGE_OUTPUT_TOKENS)),
        _int(get(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        # Cache writes under either name: the latest conventions' or the previous one.
        _int(get(GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
                 get(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS))),
        _int(get(GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        ttfc * 1000.0 if ttfc is not None else None,
        _flag(get(GEN_AI_REQUEST_STREAM)),
        _text(get(ERROR_TYPE)),
        _text(get(SERVER_ADDRESS)),
        _int(get(HTTP_RESPONSE_STATUS_CODE)),
        _float(get(LLMTRACE_COST_USD)),
        _text(get(LLMTRACE_TENANT_ID)),
        _text(get(LLMTRACE_AGENT_ID)),
        _float(get(LLMTRACE_SECURITY_SCORE)),
        encode(attrs),
        _events_json(span, encode),
        _links_json(span, encode),
        cached[1],
        scope.name if scope is not None else None,
        scope.version if scope is not None else None,
        _findings_count(span),
        1 if is_call(attrs) else 0,
    )


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` now (``None``: nothing)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class SQLiteSpanExporter(SpanExporter):
    """Stores every exported span as one row of an SQLite database at ``path``.

    Thread-safe: exports, flushes and shutdown are serialised by one lock. :attr:`written`
    and :attr:`failed` count spans stored and spans dropped since construction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        on_operation: Callable[[str, str], None] | None = None,
    ) -> None:
        if busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
        self._path = Path(path)
        #: Told (operation, status) of every storage operation: ("open"|"write", "ok"|"error").
        self._on_operation = on_operation or _ignore_operation
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._closed = False
        self._written = 0
        self._failed = 0
        self._burst_dropped = 0  # spans dropped since the last successful export
        # Built once: json.dumps with non-default options constructs an encoder per call.
        self._encode: _Encode = json.JSONEncoder(
            separators=(",", ":"), check_circular=False, default=str
        ).encode

    @property
    def path(self) -> Path:
        return self._path

    @property
    def written(self) -> int:
        """Spans committed to the database."""
        return self._written

    @property
    def failed(self) -> int:
        """Spans dropped because their batch could not be written."""
        return self._failed

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        with self._lock:
            if self._closed:
                self._failed += len(spans)
                _log.warning(
                    "SQLite span exporter for %s is shut down; %d spans dropped",
                    self._path,
                    len(spans),
                )
                return SpanExportResult.FAILURE
            try:
                self._write(spans)
            except Exception as exc:  # noqa: BLE001 - telemetry must not break traffic
                self._on_operation("write", "error")
                self._on_failure(exc, len(spans))
                return SpanExportResult.FAILURE
            self._on_operation("write", "ok")
            self._written += len(spans)
            if self._burst_dropped:
                _log.warning(
                    "SQLite span export to %s recovered; %d spans were dropped while it failed",
                    self._path,
                    self._burst_dropped,
                )
                self._burst_dropped = 0
            return SpanExportResult.SUCCESS

    def _write(self, spans: Sequence[ReadableSpan]) -> None:
        encode = self._encode
        resources: dict[int, tuple[str | None, str]] = {}
        rows = [_span_row(span, encode, resources) for span in spans]
        conn = self._conn
        if conn is not None and _identity(self._path) != self._identity:
            _log.warning("SQLite database %s was replaced or removed while open; reopening it",
                         self._path)
            self._close_connection()
            conn = None
        if conn is None:
            try:
                conn = self._conn = connect_writer(
                    self._path, busy_timeout_ms=self._busy_timeout_ms
                )
            except Exception:
                self._on_operation("open", "error")
                raise
            self._on_operation("open", "ok")
            self._identity = _identity(self._path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                insert_rows(conn, _INSERT_HEAD, len(INSERT_COLUMNS), rows)
            except sqlite3.IntegrityError:
                # A span id that is stored already (a re-export) or twice in the batch: start
                # over, replacing the stored rows, so each span is in the rollup once.
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                rows = replace_stored(conn, rows)
                insert_rows(conn, _INSERT_HEAD, len(INSERT_COLUMNS), rows)
            add_to_rollup(conn, rows, _ROLLUP_SOURCE)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _on_failure(self, exc: Exception, count: int) -> None:
        self._failed += count
        if self._burst_dropped == 0:
            expected = isinstance(exc, sqlite3.Error | OSError | StoreError)
            _log.warning(
                "SQLite span export to %s failed, %d spans dropped: %s: %s "
                "(further failures are not logged until an export succeeds)",
                self._path,
                count,
                type(exc).__name__,
                exc,
                exc_info=None if expected else exc,
            )
        self._burst_dropped += count
        # Reopen on the next export: the file may have been replaced, the disk freed, ...
        self._close_connection()

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(sqlite3.Error):
                conn.close()

    def shutdown(self) -> None:
        """Close the database; later exports return ``FAILURE``. Idempotent."""
        with self._lock:
            self._closed = True
            self._close_connection()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait for an export in progress to commit; nothing else is buffered here."""
        if not self._lock.acquire(timeout=max(timeout_millis, 0) / 1000):
            return False
        self._lock.release()
        return True
