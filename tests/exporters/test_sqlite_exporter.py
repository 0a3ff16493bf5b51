"""SQLiteSpanExporter + SpanStore with the real OTel SDK: write, read back, fail safely."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
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
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.util.types import AttributeValue

from llmtrace_otel.exporters.sqlite import (
    SCHEMA_VERSION,
    SpanStore,
    SQLiteSpanExporter,
    StoreError,
)
from llmtrace_otel.exporters.sqlite.exporter import INSERT_COLUMNS
from llmtrace_otel.exporters.sqlite.schema import APPLICATION_ID, connect_writer, migrate
from llmtrace_processors.attributes import (
    LLMTRACE_AGENT_ID,
    LLMTRACE_COST_USD,
    LLMTRACE_SECURITY_SCORE,
    LLMTRACE_TENANT_ID,
)

EXPORTER_LOGGER = "llmtrace_otel.exporters.sqlite.exporter"
T0 = 1_700_000_000_000_000_000  # a fixed start time (ns) for deterministic ordering


def finished_spans(build: Callable[[Tracer], object]) -> tuple[ReadableSpan, ...]:
    """Spans ended by ``build``, collected with a real provider and an in-memory exporter."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "test-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("tests.sqlite", "1.2.3"))
    provider.shutdown()
    return memory.get_finished_spans()


def call_span(
    tracer: Tracer,
    *,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    start_ns: int = T0,
    tenant: str | None = None,
    error: str | None = None,
) -> None:
    """One proxied chat call, as the proxy's recorder builds it."""
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: "chat",
        GEN_AI_PROVIDER_NAME: provider,
        GEN_AI_REQUEST_MODEL: model,
        GEN_AI_REQUEST_STREAM: False,
        SERVER_ADDRESS: "upstream.test",
    }
    if tenant is not None:
        attributes[LLMTRACE_TENANT_ID] = tenant
    span = tracer.start_span(
        f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
    )
    if error is None:
        span.set_attributes({HTTP_RESPONSE_STATUS_CODE: 200, GEN_AI_USAGE_INPUT_TOKENS: 10})
    else:
        span.set_attributes({HTTP_RESPONSE_STATUS_CODE: 429, ERROR_TYPE: error})
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=start_ns + 5_000_000)


def export_all(path: Path, spans: Sequence[ReadableSpan]) -> SQLiteSpanExporter:
    exporter = SQLiteSpanExporter(path)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    return exporter


# --- the real pipeline: TracerProvider -> BatchSpanProcessor -> SQLite -> SpanStore ----------


def test_genai_spans_round_trip_through_batch_span_processor(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "spans.db"  # parent directories do not exist yet
    exporter = SQLiteSpanExporter(db)
    assert not db.parent.exists(), "constructing the exporter must not touch the disk"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "proxy-under-test"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.sqlite", "1.2.3")

    with tracer.start_as_current_span("POST /v1/chat/completions", kind=SpanKind.SERVER) as root:
        other = tracer.start_span("earlier work")
        other.end()
        call = tracer.start_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            context=set_span_in_context(root),
            links=[Link(other.get_span_context(), {"reason": "retry-of"})],
            attributes={
                GEN_AI_OPERATION_NAME: "chat",
                GEN_AI_PROVIDER_NAME: "openai",
                GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                GEN_AI_REQUEST_STREAM: True,
                SERVER_ADDRESS: "api.openai.test",
                SERVER_PORT: 443,
                LLMTRACE_TENANT_ID: "acme",
                LLMTRACE_AGENT_ID: "support-bot",
            },
        )
        call.add_event("llmtrace.security.finding", {"kind": "pii.email", "score": 0.8})
        call.set_attributes(
            {
                HTTP_RESPONSE_STATUS_CODE: 200,
                GEN_AI_RESPONSE_ID: "chatcmpl-123",
                GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
                GEN_AI_RESPONSE_FINISH_REASONS: ("stop", "length"),
                GEN_AI_USAGE_INPUT_TOKENS: 120,
                GEN_AI_USAGE_OUTPUT_TOKENS: 48,
                GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 64,
                GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 16,
                GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 8,
                GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25,  # seconds
                LLMTRACE_COST_USD: 0.00042,
                LLMTRACE_SECURITY_SCORE: 0.1,
            }
        )
        call.end()
    assert provider.force_flush()
    assert exporter.written == 3 and exporter.failed == 0

    store = SpanStore(db)
    assert store.count() == 3
    record = store.get_span(format(call.get_span_context().span_id, "016x"))
    assert record is not None
    assert record.trace_id == format(root.get_span_context().trace_id, "032x")
    assert record.parent_span_id == format(root.get_span_context().span_id, "016x")
    assert len(record.trace_id) == 32 and len(record.span_id) == 16
    assert record.name == "chat gpt-4o-mini"
    assert record.kind == "CLIENT"
    assert record.status_code == "UNSET" and record.status_message is None
    assert record.service_name == "proxy-under-test"
    assert record.start_time_ns is not None and record.end_time_ns is not None
    assert record.duration_ms == pytest.approx((record.end_time_ns - record.start_time_ns) / 1e6)
    assert (record.operation, record.provider) == ("chat", "openai")
    assert (record.request_model, record.response_model) == (
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert record.response_id == "chatcmpl-123"
    assert (record.input_tokens, record.output_tokens) == (120, 48)
    assert (record.cache_read_tokens, record.cache_creation_tokens) == (64, 16)
    assert record.reasoning_tokens == 8
    assert record.ttft_ms == pytest.approx(250.0)
    assert record.stream is True
    assert record.error_type is None
    assert (record.server_address, record.http_status) == ("api.openai.test", 200)
    assert record.cost_usd == pytest.approx(0.00042)
    assert (record.tenant_id, record.agent_id) == ("acme", "support-bot")
    assert record.security_score == pytest.approx(0.1)
    assert (record.scope_name, record.scope_version) == ("tests.sqlite", "1.2.3")

    assert record.attributes[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop", "length")
    assert record.attributes[SERVER_PORT] == 443
    assert dict(record.attributes) == dict(call.attributes)  # type: ignore[attr-defined]
    assert len(record.events) == 1
    event = record.events[0]
    assert event.name == "llmtrace.security.finding"
    assert event.timestamp_ns == call.events[0].timestamp  # type: ignore[attr-defined]
    assert dict(event.attributes) == {"kind": "pii.email", "score": 0.8}
    assert len(record.links) == 1
    assert record.links[0].span_id == format(other.get_span_context().span_id, "016x")
    assert dict(record.links[0].attributes) == {"reason": "retry-of"}
    assert record.resource[SERVICE_NAME] == "proxy-under-test"
    json.dumps(record.as_dict())  # the HTTP API can serve it as is

    # The stored text is compact JSON with tuples as arrays.
    with sqlite3.connect(db) as raw:
        attributes_json, events_json = raw.execute(
            "SELECT attributes, events FROM spans WHERE span_id = ?", (record.span_id,)
        ).fetchone()
    assert json.loads(attributes_json)[GEN_AI_RESPONSE_FINISH_REASONS] == ["stop", "length"]
    assert ", " not in attributes_json and '": ' not in attributes_json
    assert json.loads(events_json) == [
        {
            "name": "llmtrace.security.finding",
            "timestamp_ns": event.timestamp_ns,
            "attributes": {"kind": "pii.email", "score": 0.8},
        }
    ]

    root_record = store.get_span(format(root.get_span_context().span_id, "016x"))
    assert root_record is not None
    assert root_record.parent_span_id is None and root_record.kind == "SERVER"
    assert root_record.provider is None and root_record.input_tokens is None
    assert root_record.stream is None and root_record.ttft_ms is None
    assert root_record.events == () and root_record.links == ()
    provider.shutdown()


def test_error_status_and_legacy_provider_attribute(tmp_path: Path) -> None:
    def build(tracer: Tracer) -> None:
        call_span(tracer, error="rate_limit_exceeded")
        legacy = tracer.start_span("chat claude", attributes={GEN_AI_SYSTEM: "anthropic"})
        legacy.end()

    failed, legacy = finished_spans(build)
    db = tmp_path / "spans.db"
    export_all(db, [failed, legacy])
    store = SpanStore(db)

    error = store.get_span(format(failed.context.span_id, "016x"))  # type: ignore[union-attr]
    assert error is not None
    assert (error.status_code, error.status_message) == ("ERROR", "rate_limit_exceeded")
    assert (error.error_type, error.http_status) == ("rate_limit_exceeded", 429)
    assert error.duration_ms == pytest.approx(5.0)
    assert error.stream is False

    old = store.get_span(format(legacy.context.span_id, "016x"))  # type: ignore[union-attr]
    assert old is not None and old.provider == "anthropic"
    assert store.get_span("0" * 16) is None


def test_attribute_values_of_the_wrong_type_become_null_not_a_failed_batch(tmp_path: Path) -> None:
    def build(tracer: Tracer) -> None:
        span = tracer.start_span(
            "odd",
            attributes={
                GEN_AI_PROVIDER_NAME: ("openai", "azure"),  # a sequence where text is expected
                GEN_AI_USAGE_INPUT_TOKENS: "12",  # text where an int is expected
                GEN_AI_USAGE_OUTPUT_TOKENS: 7.0,  # an integral float is accepted
                GEN_AI_REQUEST_STREAM: "yes",
                GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 1,  # an int number of seconds
            },
        )
        span.end()

    (span,) = finished_spans(build)
    db = tmp_path / "spans.db"
    export_all(db, [span])
    record = SpanStore(db).get_span(format(span.context.span_id, "016x"))  # type: ignore[union-attr]
    assert record is not None
    assert record.provider is None and record.input_tokens is None and record.stream is None
    assert record.output_tokens == 7
    assert record.ttft_ms == pytest.approx(1000.0)
    assert record.attributes[GEN_AI_PROVIDER_NAME] == ("openai", "azure")


# --- idempotence, schema, migrations -------------------------------------------------------


def test_re_exporting_the_same_spans_is_idempotent(tmp_path: Path) -> None:
    spans = finished_spans(lambda tracer: [call_span(tracer, start_ns=T0 + i) for i in range(5)])
    db = tmp_path / "spans.db"
    exporter = export_all(db, spans)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert exporter.export(spans[:2]) is SpanExportResult.SUCCESS
    assert SpanStore(db).count() == 5
    assert (exporter.written, exporter.failed) == (12, 0)
    assert exporter.export([]) is SpanExportResult.SUCCESS


def test_insert_columns_match_the_table(tmp_path: Path) -> None:
    conn = connect_writer(tmp_path / "spans.db")
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(spans)")]
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(spans)")}
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
        busy = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    finally:
        conn.close()
    assert tuple(columns) == INSERT_COLUMNS
    assert {
        "idx_spans_start",
        "idx_spans_provider_start",
        "idx_spans_model_start",
        "idx_spans_trace",
        "idx_spans_tenant_start",
    } <= indexes
    assert (journal, synchronous, foreign_keys) == ("wal", 1, 1)
    assert busy > 0


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    first = connect_writer(db)
    schema_query = "SELECT type, name, sql FROM sqlite_schema ORDER BY name"
    schema_before = first.execute(schema_query).fetchall()
    first.close()

    second = connect_writer(db)
    try:
        assert migrate(second, db) == SCHEMA_VERSION  # found current: no step ran
        assert second.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert second.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        schema_after = second.execute(
            "SELECT type, name, sql FROM sqlite_schema ORDER BY name"
        ).fetchall()
    finally:
        second.close()
    assert schema_after == schema_before
    # An exporter opening an existing, current database keeps what is there.
    spans = finished_spans(call_span)
    export_all(db, spans).shutdown()
    export_all(db, finished_spans(call_span)).shutdown()
    assert SpanStore(db).count() == 2


def test_a_database_from_a_newer_release_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "spans.db"
    connect_writer(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(StoreError, match=rf"{db}.*newer"):
        connect_writer(db)
    with pytest.raises(StoreError, match=rf"{db}.*newer"):
        SpanStore(db).count()

    exporter = SQLiteSpanExporter(db)
    spans = finished_spans(call_span)
    with caplog.at_level(logging.WARNING, logger=EXPORTER_LOGGER):
        assert exporter.export(spans) is SpanExportResult.FAILURE
    assert exporter.failed == 1 and exporter.written == 0
    assert "newer" in caplog.text and str(db) in caplog.text


def test_files_that_are_not_llmtrace_stores_are_clear_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(StoreError, match=rf"{missing}.*does not exist"):
        SpanStore(missing).recent_calls()

    text = tmp_path / "notes.txt"
    text.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreError, match=rf"{text} is not an llmtrace span database"):
        SpanStore(text).count()

    foreign = tmp_path / "other-app.db"
    with sqlite3.connect(foreign) as raw:
        raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreError, match=rf"{foreign} is not an llmtrace span database"):
        SpanStore(foreign).count()
    with pytest.raises(StoreError, match="refusing to touch it"):
        connect_writer(foreign)
    with sqlite3.connect(foreign) as raw:  # and it was left alone
        assert raw.execute("SELECT name FROM sqlite_schema").fetchall() == [("customers",)]

    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match=rf"{empty} is an empty SQLite file"):
        SpanStore(empty).count()

    with pytest.raises(StoreError, match="not a regular file"):
        SpanStore(tmp_path).count()


# --- failures never raise ------------------------------------------------------------------


def test_unwritable_location_fails_without_raising_and_logs_once_per_burst(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where a directory should be")
    exporter = SQLiteSpanExporter(blocker / "spans.db")
    batches = [finished_spans(call_span) for _ in range(4)]

    with caplog.at_level(logging.DEBUG, logger=EXPORTER_LOGGER):
        for batch in batches[:3]:
            assert exporter.export(batch) is SpanExportResult.FAILURE
    failures = [r for r in caplog.records if r.name == EXPORTER_LOGGER]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert str(blocker) in failures[0].getMessage()
    assert (exporter.written, exporter.failed) == (0, 3)

    # The obstacle goes away: the next export reopens, succeeds and says how much was lost.
    caplog.clear()
    blocker.unlink()
    with caplog.at_level(logging.WARNING, logger=EXPORTER_LOGGER):
        assert exporter.export(batches[3]) is SpanExportResult.SUCCESS
    assert "recovered" in caplog.text and "3 spans were dropped" in caplog.text
    assert (exporter.written, exporter.failed) == (1, 3)
    assert SpanStore(blocker / "spans.db").count() == 1


def test_shutdown_closes_and_later_exports_fail(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    exporter = export_all(db, finished_spans(call_span))
    assert exporter.force_flush() is True
    exporter.shutdown()
    exporter.shutdown()  # idempotent
    assert exporter.export(finished_spans(call_span)) is SpanExportResult.FAILURE
    assert exporter.failed == 1
    assert not Path(f"{db}-wal").exists(), "closing the last connection checkpoints the WAL"
    assert SpanStore(db).count() == 1


# --- concurrency (WAL) ---------------------------------------------------------------------


def test_an_open_read_transaction_does_not_block_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    exporter = export_all(db, finished_spans(call_span))
    reader = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM spans").fetchone()[0] == 1
        more = finished_spans(lambda tracer: [call_span(tracer) for _ in range(10)])
        assert exporter.export(more) is SpanExportResult.SUCCESS
        # The reader keeps its snapshot until it ends its transaction.
        assert reader.execute("SELECT count(*) FROM spans").fetchone()[0] == 1
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM spans").fetchone()[0] == 11
    finally:
        reader.close()
        exporter.shutdown()


def test_concurrent_reader_while_writer_writes(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    batches = [
        finished_spans(lambda tracer: [call_span(tracer, start_ns=T0 + i) for i in range(200)])
        for _ in range(15)
    ]
    exporter = export_all(db, batches[0])
    store = SpanStore(db)
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not done.is_set():
                seen.append(store.count())
                rows = store.recent_calls(50, provider="openai")
                assert len(rows) == 50
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        results = [exporter.export(batch) for batch in batches[1:]]
    finally:
        done.set()
        reader.join(timeout=30)
    assert not errors, errors
    assert results == [SpanExportResult.SUCCESS] * (len(batches) - 1)
    assert seen and seen == sorted(seen), "each read sees a committed, growing snapshot"
    assert store.count() == 200 * len(batches)
    exporter.shutdown()


# --- read side: filters, order, plans ------------------------------------------------------


@pytest.fixture
def populated(tmp_path: Path) -> tuple[SpanStore, tuple[ReadableSpan, ...]]:
    def build(tracer: Tracer) -> None:
        call_span(tracer, provider="openai", model="gpt-4o-mini", start_ns=T0 + 1, tenant="a")
        call_span(tracer, provider="anthropic", model="claude-haiku", start_ns=T0 + 2)
        call_span(tracer, provider="openai", model="gpt-4.1", start_ns=T0 + 3, tenant="b")
        call_span(tracer, provider="openai", model="gpt-4o-mini", start_ns=T0 + 4, error="boom")
        call_span(tracer, provider="anthropic", model="claude-haiku", start_ns=T0 + 5)

    spans = finished_spans(build)
    db = tmp_path / "spans.db"
    export_all(db, spans).shutdown()
    return SpanStore(db), spans


def starts(rows: Sequence[object]) -> list[int]:
    return [row.start_time_ns - T0 for row in rows]  # type: ignore[attr-defined]


def test_recent_calls_newest_first_with_limit(
    populated: tuple[SpanStore, tuple[ReadableSpan, ...]],
) -> None:
    store, _ = populated
    assert starts(store.recent_calls()) == [5, 4, 3, 2, 1]
    assert starts(store.recent_calls(2)) == [5, 4]
    assert store.recent_calls(0) == []
    with pytest.raises(ValueError, match="limit"):
        store.recent_calls(-1)


def test_recent_calls_filters_filter(
    populated: tuple[SpanStore, tuple[ReadableSpan, ...]],
) -> None:
    store, spans = populated
    assert starts(store.recent_calls(provider="openai")) == [4, 3, 1]
    assert starts(store.recent_calls(provider="anthropic")) == [5, 2]
    assert store.recent_calls(provider="cohere") == []
    assert starts(store.recent_calls(model="gpt-4o-mini")) == [4, 1]
    assert starts(store.recent_calls(provider="openai", model="gpt-4.1")) == [3]
    assert starts(store.recent_calls(since_ns=T0 + 3)) == [5, 4, 3]
    assert starts(store.recent_calls(provider="openai", since_ns=T0 + 2)) == [4, 3]
    assert starts(store.recent_calls(status="error")) == [4]
    assert starts(store.recent_calls(status="UNSET")) == [5, 3, 2, 1]
    assert store.recent_calls(status="OK") == []
    with pytest.raises(ValueError, match="status must be one of ERROR, OK, UNSET"):
        store.recent_calls(status="failed")
    trace_id = format(spans[2].context.trace_id, "032x")  # type: ignore[union-attr]
    assert starts(store.recent_calls(trace_id=trace_id.upper())) == [3]
    # Bound parameters: a quote in a filter is a value, not SQL.
    assert store.recent_calls(provider="x' OR '1'='1") == []


def test_call_rows_serve_the_cli(populated: tuple[SpanStore, tuple[ReadableSpan, ...]]) -> None:
    store, _ = populated
    rows = store.recent_calls(status="ERROR")
    (row,) = rows
    data = row.as_dict()
    json.dumps(data)
    assert data["provider"] == "openai" and data["error_type"] == "boom"
    assert str(data["start_time"]).endswith("Z")
    cells = row.as_table_row()
    # time, operation, provider, model, status, in, out, cost, ms, ttfc, trace
    assert len(cells) == 11
    assert cells[1:5] == ("chat", "openai", "gpt-4o-mini", "error boom")
    assert cells[7] == "-" and cells[8] == "5" and cells[9] == "-" and cells[10] == row.trace_id
    with pytest.raises(AttributeError):
        row.provider = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "idx_spans_start"),
        ({"provider": "openai"}, "idx_spans_provider_start"),
        ({"provider": "openai", "since_ns": T0}, "idx_spans_provider_start"),
        ({"model": "gpt-4o-mini"}, "idx_spans_model_start"),
        ({"since_ns": T0}, "idx_spans_start"),
        ({"trace_id": "ab" * 16}, "idx_spans_trace"),
    ],
)
def test_recent_calls_use_an_index(
    populated: tuple[SpanStore, tuple[ReadableSpan, ...]],
    filters: dict[str, object],
    index: str,
) -> None:
    store, _ = populated
    plan = store.explain_recent_calls(10, **filters)  # type: ignore[arg-type]
    assert any(index in line for line in plan), plan
    assert not any(line.startswith("SCAN") and "INDEX" not in line for line in plan), plan
    if "trace_id" not in filters:  # a trace is a handful of rows; sorting them is fine
        # Never a full sort. "TEMP B-TREE FOR RIGHT PART OF ORDER BY" (the tie-breaker among
        # rows with an equal start time, walked in index order) is fine: it sorts ties only.
        assert not any("TEMP B-TREE FOR ORDER BY" in line for line in plan), plan
