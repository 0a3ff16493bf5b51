"""PostgresSpanExporter: spans into the PostgreSQL store that several instances share.

Like the SQLite exporter it runs behind a ``BatchSpanProcessor`` (``ExportSink``: bounded
queue, drop accounting, circuit breaker, ``/health``): :meth:`export` runs on the processor's
worker thread, never on the event loop, and writes each batch in one transaction
(``writer.py``) on the exporter's own connection. Constructing it does no I/O.

**When the database goes away** (a restart, a fail-over, the network): the batch in hand is
kept and written again, with a growing pause (0.1 s to 2 s), for up to ``retry_s`` seconds
from the start of the outage, on a new connection each time. Meanwhile the sink's queue holds
what arrives, up to its bound, and counts the rest (``reason="queue_full"``); traffic never
waits. When the database is back the held batch and the queue are written: nothing is lost
but what was counted. An outage longer than ``retry_s`` fails the batch
(``reason="export_failed"``), and from then on each batch makes one attempt until one works
(the sink's breaker then stops trying for a while). ``/health`` says ``unavailable`` (and
why) for the whole outage.

**Errors that waiting does not fix** fail the batch at once, counted, with a clear log line:
a full disk, a read-only server (a hot standby, ``default_transaction_read_only``), missing
privileges. A batch refused for a value PostgreSQL cannot hold is cleaned and written again
(``writer.py``).

**Maintenance.** :meth:`start` (called when the pipeline is built, else by the first export)
starts one thread that migrates the schema (``schema.py``: several instances starting at once
wait for one) and creates and drops daily partitions (``partitions.py``), at start and then
hourly. A database that is down at start is retried every 5 s: the proxy starts and serves
traffic regardless, degraded, and says so on ``/health``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, Final

import psycopg
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from psycopg import errors

from llmtrace_otel.exporters.postgres.partitions import maintain
from llmtrace_otel.exporters.postgres.schema import migrate
from llmtrace_otel.exporters.postgres.url import check_url, conninfo, masked
from llmtrace_otel.exporters.postgres.writer import clean_rows, write_batch
from llmtrace_otel.exporters.sqlite.exporter import json_encoder, span_rows
from llmtrace_otel.exporters.sqlite.schema import StoreError

__all__ = ["DEFAULT_RETENTION_DAYS", "DEFAULT_RETRY_S", "PostgresSpanExporter"]

_log = logging.getLogger(__name__)
DEFAULT_RETRY_S: Final = 30.0
DEFAULT_RETENTION_DAYS: Final = 30
_MAINTENANCE_INTERVAL_S: Final = 3600.0
_MAINTENANCE_RETRY_S: Final = 5.0
_BACKOFF: Final = (0.1, 2.0)
#: SQLSTATEs after which waiting and reconnecting can work: connection exceptions (08),
#: shutdown / starting / crash recovery (57P01-57P03), too many connections (53300),
#: serialization failure and deadlock (40001, 40P01), a lock timeout (55P03).
_TRANSIENT_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01",
                                      "55P03"})
_READ_ONLY: Final = "25006"
_DISK_FULL: Final = "53100"


def _ignore_operation(operation: str, status: str) -> None:
    return None


def _transient(exc: BaseException, conn: psycopg.Connection[Any] | None) -> bool:
    """Would a new connection, a moment later, have a chance?"""
    if conn is not None and conn.broken:
        return True
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:  # no server answer: connecting failed, or the connection broke
            return isinstance(exc, psycopg.OperationalError)
        return state.startswith("08") or state in _TRANSIENT_STATES
    return isinstance(exc, OSError)


def _explain(exc: BaseException) -> str:
    """What went wrong, for the log and ``/health`` (the URL's password never appears)."""
    state = getattr(exc, "sqlstate", None)
    if state == _READ_ONLY:
        return ("the server is read-only (a hot standby, or default_transaction_read_only=on): "
                "spans cannot be stored there; point storage.url at the primary")
    if state == _DISK_FULL:
        return f"the database's disk is full: {str(exc).strip()}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class PostgresSpanExporter(SpanExporter):
    """Stores every exported span as one row of the PostgreSQL store at ``url``.

    Thread-safe: exports, flushes and shutdown are serialised by one lock. :attr:`written`
    and :attr:`failed` count spans stored and spans dropped since construction;
    :meth:`health` tells ``/health`` how the database is doing.
    """

    def __init__(
        self,
        url: str,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        retry_s: float = DEFAULT_RETRY_S,
        on_operation: Callable[[str, str], None] | None = None,
    ) -> None:
        check_url(url)
        if retention_days < 0 or not retry_s >= 0:
            raise ValueError(f"retention_days must be >= 0 and retry_s >= 0, got "
                             f"{retention_days}, {retry_s}")
        self._url = url
        self._shown = masked(url)
        self._retention_days = retention_days
        self._retry_s = retry_s
        self._on_operation = on_operation or _ignore_operation
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._maintenance: threading.Thread | None = None
        self._closed = False
        self._written = 0
        self._failed = 0
        self._burst_dropped = 0
        self._encode = json_encoder()
        # Health, read without the lock (plain attribute reads): state, since, error.
        self._state = "unknown"
        self._since = time.monotonic()
        self._error: str | None = None
        self._outage_start: float | None = None

    @property
    def url(self) -> str:
        """The URL with its password masked."""
        return self._shown

    @property
    def written(self) -> int:
        return self._written

    @property
    def failed(self) -> int:
        return self._failed

    def health(self) -> dict[str, object]:
        """``state``: unknown (nothing tried yet), ok, unavailable (the database cannot be
        reached; batches are held and retried) or failing (the last batch failed for a
        reason waiting does not fix); ``error`` says why."""
        report: dict[str, object] = {"backend": "postgresql", "database": self._shown,
                                     "state": self._state,
                                     "for_s": round(time.monotonic() - self._since, 1)}
        if self._error is not None:
            report["error"] = self._error
        return report

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self._state:
            self._since = time.monotonic()
        self._state, self._error = state, error

    # -- maintenance --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the maintenance thread (migrations, partitions, retention). Idempotent."""
        with self._lock:
            if self._maintenance is not None or self._closed:
                return
            self._maintenance = threading.Thread(target=self._maintain_forever, daemon=True,
                                                 name="llmtrace-postgres-maintenance")
            self._maintenance.start()

    def _maintain_forever(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.maintain()
            except Exception as exc:  # noqa: BLE001 - retried; the proxy keeps serving
                if not _transient(exc, None):
                    self._set_state("failing", str(exc) if isinstance(exc, StoreError)
                                    else _explain(exc))
                elif self._state in ("unknown", "ok"):
                    self._set_state("unavailable", _explain(exc))
                if not failing:
                    _log.warning("PostgreSQL span store %s cannot be prepared (schema, "
                                 "partitions): %s; spans are held and retried, /health shows "
                                 "it; trying again every %.0f s", self._shown, _explain(exc),
                                 _MAINTENANCE_RETRY_S)
                failing = True
                self._stop.wait(_MAINTENANCE_RETRY_S)
                continue
            if failing:
                _log.warning("PostgreSQL span store %s is ready again", self._shown)
            failing = False
            self._stop.wait(_MAINTENANCE_INTERVAL_S)

    def maintain(self) -> None:
        """Migrate, create the partitions ahead and apply retention, on a connection of its
        own (raises on failure)."""
        with psycopg.connect(conninfo(self._url, "llmtrace-otel maintenance"),
                             autocommit=True) as conn:
            migrate(conn)
            maintain(conn, retention_days=self._retention_days)

    # -- export -------------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        if self._maintenance is None:
            self.start()
        rows = span_rows(spans, self._encode)
        with self._lock:
            if self._closed:
                self._failed += len(spans)
                _log.warning("PostgreSQL span exporter for %s is shut down; %d spans dropped",
                             self._shown, len(spans))
                return SpanExportResult.FAILURE
            try:
                self._write_retrying(rows)
            except Exception as exc:  # noqa: BLE001 - telemetry must not break traffic
                self._on_operation("write", "error")
                self._on_failure(exc, len(spans))
                return SpanExportResult.FAILURE
            self._on_operation("write", "ok")
            self._written += len(spans)
            self._outage_start = None
            self._set_state("ok")
            if self._burst_dropped:
                _log.warning("PostgreSQL span export to %s recovered; %d spans were dropped "
                             "while it failed", self._shown, self._burst_dropped)
                self._burst_dropped = 0
            return SpanExportResult.SUCCESS

    def _write_retrying(self, rows: list[tuple[object, ...]]) -> None:
        """Write ``rows``; while the database cannot be reached, wait and try again on a new
        connection, within ``retry_s`` of the outage's start (raises when that is over)."""
        pause = _BACKOFF[0]
        cleaned = rerouted = False
        while True:
            try:
                self._write(rows)
                return
            except errors.CheckViolation:
                # A partition was attached while the batch was being routed (the maintenance
                # of another instance, or ours): the next attempt routes by the new set.
                if rerouted:
                    raise
                rerouted = True
                continue
            except (psycopg.DataError, UnicodeEncodeError):
                if cleaned:
                    raise
                rows, cleaned = clean_rows(rows), True  # a value PostgreSQL cannot hold
                continue
            except Exception as exc:
                transient = _transient(exc, self._conn)
                self._close_connection()
                if not transient:
                    self._outage_start = None  # the server answered: not an outage
                    raise
                now = time.monotonic()
                if self._outage_start is None:
                    self._outage_start = now
                    _log.warning("PostgreSQL span store %s is unavailable (%s); holding the "
                                 "batch and retrying for up to %.0f s", self._shown,
                                 _explain(exc), self._retry_s)
                self._set_state("unavailable", _explain(exc))
                if now - self._outage_start >= self._retry_s or self._stop.wait(pause):
                    raise
                pause = min(pause * 2, _BACKOFF[1])

    def _write(self, rows: list[tuple[object, ...]]) -> None:
        conn = self._conn
        if conn is None:
            try:
                conn = psycopg.connect(conninfo(self._url, "llmtrace-otel exporter"),
                                       autocommit=True)
                try:
                    migrate(conn)
                except BaseException:
                    conn.close()
                    raise
            except Exception:
                self._on_operation("open", "error")
                raise
            self._on_operation("open", "ok")
            self._conn = conn
        write_batch(conn, rows)

    def _on_failure(self, exc: BaseException, count: int) -> None:
        self._failed += count
        reason = _explain(exc)
        if not _transient(exc, None) or self._state != "unavailable":
            self._set_state("failing", reason)
        if not self._burst_dropped:
            expected = isinstance(exc, psycopg.Error | StoreError | OSError)
            _log.error("PostgreSQL span export to %s failed; %d spans dropped: %s (further "
                       "failures are not logged until an export succeeds)", self._shown,
                       count, reason, exc_info=None if expected else exc)
        self._burst_dropped += count

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):
                conn.close()

    def shutdown(self) -> None:
        """Stop retrying and maintaining, close the connection; later exports return
        ``FAILURE``. Idempotent."""
        self._stop.set()
        with self._lock:
            self._closed = True
            self._close_connection()
        thread = self._maintenance
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait for an export in progress to commit; nothing else is buffered here."""
        if not self._lock.acquire(timeout=max(timeout_millis, 0) / 1000):
            return False
        self._lock.release()
        return True
