"""The hourly rollup (schema v3): histogram maths, and the rollup table staying equal to a
recomputation from ``spans`` through exports, re-exports, deletes, updates, the migration from
v2 and its chunked, resumable backfill. Every store is written by the real exporter."""

from __future__ import annotations

import math
import os
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
)
from opentelemetry.trace import Status, StatusCode

from llmtrace_otel.exporters.sqlite import (
    SpanStore,
    SQLiteSpanExporter,
    parse_list_query,
    parse_stats_query,
)
from llmtrace_otel.exporters.sqlite.histogram import (
    BUCKETS,
    MIN_MS,
    RELATIVE_ERROR,
    bucket_of,
    counts_of,
    decode,
    encode,
    encode_counts,
    percentile_ms,
    register_functions,
    value_of_bucket,
)
from llmtrace_otel.exporters.sqlite.rollup import (
    ROLLUP_COLUMNS,
    SOURCE_COLUMNS,
    RollupBatch,
    backfill,
    pending_hours,
)
from llmtrace_otel.exporters.sqlite.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    connect_writer,
)
from llmtrace_processors.attributes import LLMTRACE_CALL_DUPLICATE_OF
from tests.support.call_spans import HOUR_NS, T0, dated, make_calls

_FLOATS = {ROLLUP_COLUMNS.index(name) for name in ("cost_usd", "latency_sum_ms", "ttft_sum_ms")}
_KEY = 7  # the first seven rollup columns are the key


# --- histogram ----------------------------------------------------------------------------


def test_a_bucket_reports_every_duration_in_it_within_the_stated_error() -> None:
    rng = random.Random(1)
    samples = [MIN_MS * 1.0001 ** k for k in range(0, 240_000, 7)]  # to 2.6e8 ms
    samples += [math.exp(rng.uniform(math.log(MIN_MS), math.log(3e8))) for _ in range(20_000)]
    worst = 0.0
    previous = 0
    for duration in sorted(samples):
        bucket = bucket_of(duration)
        assert previous <= bucket < BUCKETS - 1
        previous = bucket
        worst = max(worst, abs(value_of_bucket(bucket) - duration) / duration)
    assert worst <= RELATIVE_ERROR * (1 + 1e-9)
    assert worst > RELATIVE_ERROR * 0.99  # the bound is tight, not loose
    assert RELATIVE_ERROR < 0.05
    assert [bucket_of(d) for d in (0.0, -3.0, MIN_MS / 2, math.nan)] == [0, 0, 0, 0]
    assert value_of_bucket(0) == 0.0
    assert bucket_of(1e12) == bucket_of(math.inf) == BUCKETS - 1


def test_histograms_encode_compactly_and_merge_by_addition() -> None:
    rng = random.Random(2)
    assert encode(0) == b"" and decode(b"") == 0 and decode(None) == 0
    for _ in range(200):
        counts = {rng.randrange(BUCKETS): rng.randrange(1, 2**40)
                  for _ in range(rng.randrange(1, 9))}
        blob = encode_counts(counts)
        assert blob[0] == min(counts) and len(blob) == 1 + 8 * (max(counts) - min(counts) + 1)
        expanded = counts_of(decode(blob))
        assert {b: c for b, c in enumerate(expanded) if c} == counts
        other = {rng.randrange(BUCKETS): rng.randrange(1, 2**40) for _ in range(3)}
        merged = counts_of(decode(blob) + decode(encode_counts(other)))
        assert all(merged[b] == counts.get(b, 0) + other.get(b, 0) for b in range(BUCKETS))


def test_sql_functions_add_remove_and_merge_without_borrowing() -> None:
    conn = sqlite3.connect(":memory:")
    register_functions(conn)

    def sql(expression: str, *args: object) -> Any:
        return conn.execute(f"SELECT {expression}", args).fetchone()[0]

    one = sql("llmtrace_hist_add(X'', ?)", 812.0)
    assert counts_of(decode(one))[bucket_of(812.0)] == 1
    two = sql("llmtrace_hist_merge(?, ?)", one, sql("llmtrace_hist_add(X'', ?)", 3.0))
    assert sum(counts_of(decode(two))) == 2
    # Removing from an empty bucket leaves every count alone.
    assert sql("llmtrace_hist_remove(?, ?)", two, 50.0) == two
    assert sql("llmtrace_hist_remove(llmtrace_hist_remove(?, 812.0), 3.0)", two) == b""
    assert sql("llmtrace_hist_add(?, NULL)", one) == one
    conn.close()


def test_nearest_rank_percentiles_from_a_histogram_are_within_the_bound() -> None:
    rng = random.Random(3)
    for n in (1, 2, 3, 20, 21, 1000, 5001):
        values = [rng.lognormvariate(6.0, 1.2) for _ in range(n)]
        counts: dict[int, int] = {}
        for value in values:
            counts[bucket_of(value)] = counts.get(bucket_of(value), 0) + 1
        ordered = sorted(values)
        ranks = ((n + 1) // 2, (95 * n + 99) // 100)
        got = percentile_ms(counts_of(decode(encode_counts(counts))), ranks)
        for rank, value in zip(ranks, got, strict=True):
            exact = ordered[rank - 1]
            assert value is not None and abs(value - exact) / exact <= RELATIVE_ERROR, (n, rank)
        assert percentile_ms(counts_of(0), (1,)) == [None]


# --- the rollup equals its spans ------------------------------------------------------------


def rollup(db: Path) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM span_rollup").fetchall()
    finally:
        conn.close()
    return {tuple(row[:_KEY]): tuple(row[_KEY:]) for row in rows}


def recomputed(db: Path) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """What the rollup must hold: every stored span aggregated from scratch."""
    conn = sqlite3.connect(db)
    try:
        batch = RollupBatch()
        batch.add(conn.execute(f"SELECT {', '.join(SOURCE_COLUMNS)} FROM spans"))
    finally:
        conn.close()
    return {tuple(row[:_KEY]): tuple(row[_KEY:]) for row in batch.rows()}


def assert_rollup_matches(db: Path) -> None:
    stored, expected = rollup(db), recomputed(db)
    assert set(stored) == set(expected)
    for key, values in expected.items():
        for index, (got, want) in enumerate(zip(stored[key], values, strict=True)):
            if index + _KEY in _FLOATS:
                assert got == pytest.approx(want, rel=1e-9, abs=1e-9), key
            else:
                assert got == want, (key, ROLLUP_COLUMNS[index + _KEY])


def export(db: Path, *batches: Sequence[ReadableSpan]) -> None:
    exporter = SQLiteSpanExporter(db)
    for batch in batches:
        assert exporter.export(batch) is SpanExportResult.SUCCESS
    exporter.shutdown()


def test_the_exporter_adds_every_batch_to_the_rollup(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    spans = make_calls(3000)
    export(db, *(spans[i:i + 173] for i in range(0, len(spans), 173)))
    assert_rollup_matches(db)
    stored = rollup(db)
    assert sum(values[0] for values in stored.values()) == 3000
    keys = list(stored)
    assert {key[1] for key in keys} == {"openai", "anthropic", "azure.ai.openai"}
    assert b"" in {key[4] for key in keys}  # calls without a tenant
    assert {key[5] for key in keys} == {"UNSET", "OK", "ERROR"}
    assert {key[6] for key in keys} == {0, 1}
    assert all(key[0] % HOUR_NS == 0 for key in keys)
    assert len({key[0] for key in keys}) == math.ceil(3000 * 37 / 3600) + 1


def _changed(span: ReadableSpan, model: str, duration_ns: int) -> ReadableSpan:
    """The same span id exported again with other content (the last copy must win)."""
    assert span.start_time is not None
    return ReadableSpan(name=span.name, context=span.context, parent=span.parent,
                        resource=span.resource,
                        attributes={**(span.attributes or {}), GEN_AI_REQUEST_MODEL: model},
                        events=span.events, links=span.links, kind=span.kind,
                        status=span.status, start_time=span.start_time,
                        end_time=span.start_time + duration_ns,
                        instrumentation_scope=span.instrumentation_scope)


def test_re_exports_count_once_and_the_last_copy_wins(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    spans = list(make_calls(900))
    export(db, spans[:500])
    export(db,
           spans[:500],  # the same batch again
           spans[450:700] + spans[600:650],  # overlapping, and ids repeated inside the batch
           [_changed(span, "re-exported", 123_000_000) for span in spans[100:130]],
           spans[700:])
    assert SpanStore(db).count() == 900
    assert_rollup_matches(db)
    stored = rollup(db)
    assert sum(values[0] for values in stored.values()) == 900
    assert sum(values[0] for key, values in stored.items() if key[2] == "re-exported") == 30
    totals = SpanStore(db).stats(parse_stats_query({}, T0), exact_below=0)
    assert totals.percentiles == "histogram" and totals.totals.calls == 900


def test_deletes_and_updates_through_a_writer_keep_the_rollup_exact(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    export(db, make_calls(2000))
    conn = connect_writer(db)
    try:
        # Retention-like: everything before a time in the middle of an hour.
        cut = T0 + 5 * HOUR_NS + HOUR_NS // 3
        conn.execute("DELETE FROM spans WHERE start_time_ns < ?", (cut,))
        conn.execute("UPDATE spans SET request_model = 'renamed' WHERE rowid % 10 = 0")
        conn.execute("UPDATE spans SET duration_ms = duration_ms * 3, input_tokens = NULL, "
                     "start_time_ns = start_time_ns + 7200000000000 WHERE rowid % 17 = 0")
        conn.execute("UPDATE spans SET attributes = '{}' WHERE rowid % 3 = 0")  # not rolled up
        remaining = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        hours = conn.execute("SELECT min(hour_ns) FROM span_rollup").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM span_rollup WHERE calls <= 0").fetchone() == (0,)
    finally:
        conn.close()
    assert 0 < remaining < 2000 and hours == cut - cut % HOUR_NS
    assert_rollup_matches(db)


def test_a_delete_on_a_connection_without_the_functions_fails_and_changes_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "spans.db"
    export(db, make_calls(50))
    before = rollup(db)
    raw = sqlite3.connect(db)
    with pytest.raises(sqlite3.OperationalError, match="no such function: llmtrace_hist"):
        raw.execute("DELETE FROM spans")
    raw.close()
    assert SpanStore(db).count() == 50 and rollup(db) == before


# --- migration and backfill ------------------------------------------------------------------


def v2_store(path: Path, spans: Sequence[ReadableSpan], scratch: Path,
             schema: int = 2) -> None:
    """A file at an older schema (v2 unless told) holding rows the exporter wrote."""
    export(scratch, spans)
    conn = sqlite3.connect(path, isolation_level=None)
    register_functions(conn)  # the v3 triggers
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for version, statements in MIGRATIONS:
        if version <= schema:
            for statement in statements:
                conn.execute(statement)
    conn.execute("ATTACH DATABASE ? AS written", (str(scratch),))
    columns = ", ".join(row[1] for row in conn.execute("PRAGMA main.table_info(spans)"))
    conn.execute(f"INSERT INTO spans ({columns}) SELECT {columns} FROM written.spans")
    conn.execute(f"PRAGMA user_version = {schema}")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE written")
    conn.close()


def test_a_v2_store_migrates_and_its_rollup_is_backfilled(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    v2_store(db, make_calls(4000), tmp_path / "scratch.db")
    assert {row[1] for row in sqlite3.connect(db).execute("SELECT * FROM sqlite_schema")} \
        .isdisjoint({"span_rollup", "span_rollup_pending"})
    conn = connect_writer(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert pending_hours(conn) == 0
    finally:
        conn.close()
    assert_rollup_matches(db)
    assert sum(values[0] for values in rollup(db).values()) == 4000
    before = (db.stat().st_mtime_ns, os.path.getsize(db))
    connect_writer(db).close()  # nothing pending: the next open writes nothing
    assert (db.stat().st_mtime_ns, os.path.getsize(db)) == before
    # New exports after the migration add to the backfilled hours.
    export(db, make_calls(300, start_ns=T0 + HOUR_NS // 2, seed=9))
    assert_rollup_matches(db)


def test_a_v3_store_gets_a_rollup_keyed_by_response_model_too(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    v2_store(db, make_calls(2000), tmp_path / "scratch.db", schema=3)
    assert rollup(db) == {}  # stale: the v4 migration rebuilds it from the spans
    connect_writer(db).close()
    assert_rollup_matches(db)
    assert {key[3] for key in rollup(db)} >= {dated("gpt-4o-mini"), "gpt-4o-mini", b""}
    store = SpanStore(db)
    for model in (dated("gpt-4o-mini"), "gpt-4o-mini"):
        query = parse_stats_query({"model": model, "group_by": "model"}, T0)
        from_rollup = store.stats(query, exact_below=0)
        exact = store.stats(query, use_rollup=False)
        assert from_rollup.percentiles == "histogram" and exact.percentiles == "exact"
        assert from_rollup.totals.calls == exact.totals.calls > 0
        assert from_rollup.totals.errors == exact.totals.errors
        assert [g.key for g in from_rollup.groups] == [g.key for g in exact.groups]


def not_calls() -> list[ReadableSpan]:
    """An application span, an httpx POST span and the second span of a call."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.calls")
    for name, attributes in (
            ("handle_request", {}),
            ("POST", {"http.request.method": "POST"}),
            ("anthropic.messages.create", {
                GEN_AI_OPERATION_NAME: "chat", GEN_AI_PROVIDER_NAME: "anthropic",
                GEN_AI_REQUEST_MODEL: "claude-haiku-4-5", GEN_AI_USAGE_INPUT_TOKENS: 12,
                LLMTRACE_CALL_DUPLICATE_OF: "00f067aa0ba902b7"})):
        span = tracer.start_span(name, start_time=T0 + 5 * 10**9, attributes=attributes)
        span.set_status(Status(StatusCode.ERROR, "x"))  # errors too: none is a call
        span.end(end_time=T0 + 6 * 10**9)
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.mark.parametrize("schema", [None, 3], ids=["new store", "v3 store migrated"])
def test_only_calls_are_counted_listed_and_rolled_up(tmp_path: Path, schema: int | None
                                                     ) -> None:
    db = tmp_path / "spans.db"
    spans = [*make_calls(40), *not_calls()]
    if schema is None:
        export(db, spans)
    else:
        v2_store(db, spans, tmp_path / "scratch.db", schema=schema)
        connect_writer(db).close()  # migrates: is_call backfilled, the rollup computed again
    assert_rollup_matches(db)
    assert sum(values[0] for values in rollup(db).values()) == 40
    store = SpanStore(db)
    now = T0 + 48 * HOUR_NS
    totals = store.stats(parse_stats_query({"since": "1970-01-01"}, now)).totals
    assert totals.calls == 40 and totals.errors == 5  # make_calls: every 9th call failed
    names = {item.name for item in store.list_calls(
        parse_list_query({"since": "1970-01-01", "limit": "500"}, now)).items}
    assert names.isdisjoint({"handle_request", "POST", "anthropic.messages.create"})
    assert store.count() == 43  # every span is kept, for its trace


def test_the_backfill_is_chunked_correct_under_concurrent_writes_and_resumable(
    tmp_path: Path,
) -> None:
    db = tmp_path / "spans.db"
    spans = list(make_calls(3000))
    export(db, spans)
    # A live exporter, and then hours made pending again with their rows wrong (as after a
    # crash in the middle of the backfill, or while it runs).
    exporter = SQLiteSpanExporter(db)
    assert exporter.export(make_calls(10, seed=11)) is SpanExportResult.SUCCESS
    other = connect_writer(db)
    other.execute("INSERT INTO span_rollup_pending (hour_ns) SELECT DISTINCT hour_ns "
                  "FROM span_rollup WHERE hour_ns < ?", (T0 + 20 * HOUR_NS,))
    other.execute("UPDATE span_rollup SET calls = calls + 5 WHERE hour_ns < ?",
                  (T0 + 10 * HOUR_NS,))
    other.execute("DELETE FROM span_rollup WHERE hour_ns < ? AND has_findings = 1",
                  (T0 + 20 * HOUR_NS,))
    pending = pending_hours(other)
    assert pending >= 20
    # Readers do not use the rollup for ranges that need a pending hour...
    store = SpanStore(db)
    query = parse_stats_query({"group_by": "model"}, T0)
    assert store.stats(query, exact_below=0).percentiles == "exact"
    assert store.stats(parse_stats_query({"since": "2026-09-22T12:00:00Z"}, T0),
                       exact_below=0).percentiles == "histogram"
    # ... while the exporter keeps writing into pending hours, re-exports and all.
    assert exporter.export(spans[:200] + list(make_calls(400, seed=12))) is \
        SpanExportResult.SUCCESS
    exporter.shutdown()
    chunks = backfill(other, chunk_spans=250)
    assert chunks >= 4 and pending_hours(other) == 0
    other.close()
    assert_rollup_matches(db)
    exact = store.stats(query, use_rollup=False)
    rolled = store.stats(query, exact_below=0)
    assert rolled.percentiles == "histogram"
    assert [(g.key, g.calls, g.errors) for g in rolled.groups] == \
        [(g.key, g.calls, g.errors) for g in exact.groups]


def test_an_interrupted_backfill_is_finished_by_the_next_writer(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    export(db, make_calls(1000))
    conn = connect_writer(db)
    conn.execute("DELETE FROM span_rollup")
    conn.execute("INSERT INTO span_rollup_pending (hour_ns) VALUES (?)",
                 (T0 - T0 % HOUR_NS,))  # as a crash between chunks leaves it
    conn.close()
    # Only the pending hour is recomputed; the others stay as they were (here: missing).
    connect_writer(db).close()
    assert set(rollup(db)) == {key for key in recomputed(db) if key[0] == T0 - T0 % HOUR_NS}
    conn = connect_writer(db)
    conn.execute("INSERT INTO span_rollup_pending (hour_ns) SELECT DISTINCT "
                 "start_time_ns - start_time_ns % ? FROM spans", (HOUR_NS,))
    conn.close()
    connect_writer(db).close()
    assert_rollup_matches(db)
