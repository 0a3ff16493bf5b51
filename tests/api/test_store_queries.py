"""The read side's SQL on stores written by the real exporter: plans, keyset pages, exact
percentiles, the v1 -> v2 migration, and the shared parameter parser."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmtrace_otel.exporters.sqlite import (
    SCHEMA_VERSION,
    Cursor,
    QueryError,
    SpanStore,
    SQLiteSpanExporter,
    parse_list_query,
    parse_stats_query,
)
from llmtrace_otel.exporters.sqlite.listing import list_sql
from llmtrace_otel.exporters.sqlite.records import CALL_COLUMNS
from llmtrace_otel.exporters.sqlite.schema import MIGRATIONS, connect_writer
from llmtrace_processors.attributes import (
    LLMTRACE_SECURITY_FINDING_EVENT,
    LLMTRACE_SECURITY_SCORE,
    LLMTRACE_TENANT_ID,
)

T0 = 1_790_000_000 * 10**9
HOUR = 3600 * 10**9
MODELS = ("gpt-4o-mini", "gpt-4.1", "claude-haiku-4-5")


def make_spans(count: int, seed: int = 3) -> Sequence[ReadableSpan]:
    """``count`` calls over ``count`` minutes, random durations (some equal: ties), every
    7th an error, every 11th with findings, every 5th with a tenant."""
    rng = random.Random(seed)
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for i in range(count):
        start = T0 + i * 60 * 10**9
        model = MODELS[i % 3]
        span = tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, start_time=start,
                                 attributes={GEN_AI_OPERATION_NAME: "chat",
                                             GEN_AI_PROVIDER_NAME: "openai",
                                             GEN_AI_REQUEST_MODEL: model})
        if i % 5 == 0:
            span.set_attribute(LLMTRACE_TENANT_ID, f"t{i % 2}")
        if i % 11 == 0:
            span.set_attribute(LLMTRACE_SECURITY_SCORE, 0.5 + (i % 5) / 10)
            for _ in range(1 + i % 3):
                span.add_event(LLMTRACE_SECURITY_FINDING_EVENT, {"type": "pii.email"})
        if i % 7 == 0:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=start + rng.choice((5, 5, 17, 250, 999, 1000)) * 10**6
                 + rng.randint(0, 3) * 10**6)
    return memory.get_finished_spans()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[SpanStore, Sequence[ReadableSpan]]:
    spans = make_spans(700)
    db = tmp_path_factory.mktemp("store") / "spans.db"
    exporter = SQLiteSpanExporter(db)
    for offset in range(0, len(spans), 128):
        exporter.export(spans[offset:offset + 128])
    exporter.shutdown()
    return SpanStore(db), spans


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)), 1) - 1]


def durations(spans: Sequence[ReadableSpan], keep: object = None) -> list[float]:
    return [(s.end_time - s.start_time) / 1e6 for s in spans  # type: ignore[operator]
            if keep is None or keep(s)]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({}, "idx_spans_start"),
        ({"cursor": Cursor(T0 + 5 * HOUR, "ff" * 8).encode()}, "idx_spans_start"),
        ({"provider": "openai"}, "idx_spans_provider_start"),
        ({"tenant": "t1"}, "idx_spans_tenant_start"),
        ({"status": "error"}, "idx_spans_errors_start"),
        ({"has_findings": "true"}, "idx_spans_findings_start"),
        ({"min_score": "0.7"}, "idx_spans_scored_start"),
    ],
)
def test_every_listing_walks_an_index_and_never_sorts_everything(
    corpus: tuple[SpanStore, Sequence[ReadableSpan]], params: dict[str, str], index: str
) -> None:
    store, _ = corpus
    plan = store.explain_list_calls(parse_list_query(params, T0))
    assert any(index in line for line in plan), plan
    assert not any(line.startswith("SCAN spans") and "INDEX" not in line for line in plan), plan
    assert not any("TEMP B-TREE FOR ORDER BY" in line for line in plan), plan


def test_a_model_listing_walks_the_request_and_the_response_model_indexes(
    corpus: tuple[SpanStore, Sequence[ReadableSpan]]
) -> None:
    store, _ = corpus
    query = parse_list_query({"model": "gpt-4.1", "since": "2026-09-21T00:00:00Z"}, T0)
    plan = store.explain_list_calls(query)
    for index in ("idx_spans_model_start", "idx_spans_response_model_start"):
        assert any(line.startswith(f"SEARCH spans USING INDEX {index}") for line in plan), plan
    assert not any(line.startswith("SCAN spans") for line in plan), plan
    # Each branch stops after limit + 1 rows (LIMIT inside it); only those are merged.
    sql, _ = list_sql(query, CALL_COLUMNS)
    assert sql.count("LIMIT ?") == 3


@pytest.mark.parametrize("group_by", ["none", "model", "tenant", "hour", "day"])
def test_stats_read_only_the_covering_index(
    corpus: tuple[SpanStore, Sequence[ReadableSpan]], group_by: str
) -> None:
    store, _ = corpus
    plan = store.explain_stats(parse_stats_query({"group_by": group_by, "since": "7d"},
                                                 T0 + 700 * 60 * 10**9))
    searches = [line for line in plan if line.startswith(("SEARCH", "SCAN"))]
    assert searches and all("COVERING INDEX idx_spans_start" in line for line in searches), plan


def test_keyset_pages_partition_the_filtered_listing(
    corpus: tuple[SpanStore, Sequence[ReadableSpan]],
) -> None:
    store, spans = corpus
    for params in ({}, {"model": "gpt-4.1"}, {"status": "error"}, {"has_findings": "true"}):
        seen: list[str] = []
        cursor: str | None = None
        while True:
            query = parse_list_query({**params, "limit": "37",
                                      **({"cursor": cursor} if cursor else {})}, T0)
            page = store.list_calls(query)
            seen += [row.span_id for row in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        everything = store.list_calls(parse_list_query({**params, "limit": "500"}, T0)).items
        if len(everything) < 500:
            assert seen == [row.span_id for row in everything]
        assert len(seen) == len(set(seen))
    assert len(seen) == sum(1 for s in spans if any(
        e.name == LLMTRACE_SECURITY_FINDING_EVENT for e in s.events))


@pytest.mark.parametrize("group_by", ["none", "model", "tenant", "hour"])
def test_stats_are_exact(corpus: tuple[SpanStore, Sequence[ReadableSpan]],
                         group_by: str) -> None:
    store, spans = corpus
    query = parse_stats_query({"group_by": group_by, "since": "2026-09-21T15:00:00Z"}, T0)
    since = 1_790_002_800 * 10**9  # 2026-09-21T15:00:00Z
    in_range = [s for s in spans if s.start_time >= since]  # type: ignore[operator]
    assert 0 < len(in_range) < len(spans)  # the time filter matters
    result = store.stats(query)
    assert result.totals.calls == len(in_range)
    assert result.totals.errors == sum(1 for s in in_range if not s.status.is_ok)
    assert result.totals.latency_p50_ms == pytest.approx(nearest_rank(durations(in_range), 0.5))
    assert result.totals.latency_p95_ms == pytest.approx(nearest_rank(durations(in_range), 0.95))
    if group_by == "none":
        assert result.groups == ()
        return

    def key(span: ReadableSpan) -> str | None:
        attrs = span.attributes or {}
        if group_by == "model":
            return str(attrs[GEN_AI_REQUEST_MODEL])
        if group_by == "tenant":
            value = attrs.get(LLMTRACE_TENANT_ID)
            return None if value is None else str(value)
        hour = span.start_time // HOUR * HOUR // 10**9  # type: ignore[operator]
        return datetime.fromtimestamp(hour, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    expected: dict[str | None, list[ReadableSpan]] = {}
    for span in in_range:
        expected.setdefault(key(span), []).append(span)
    assert {g.key for g in result.groups} == set(expected)
    for group in result.groups:
        members = expected[group.key]
        assert group.calls == len(members), group.key
        assert group.latency_p50_ms == pytest.approx(nearest_rank(durations(members), 0.5))
        assert group.latency_p95_ms == pytest.approx(nearest_rank(durations(members), 0.95))
    if group_by == "hour":
        keys = [g.key for g in result.groups]
        assert keys == sorted(keys)  # type: ignore[type-var]
    else:
        calls = [g.calls for g in result.groups]
        assert calls == sorted(calls, reverse=True)


def test_nearest_rank_on_tiny_groups(tmp_path: Path) -> None:
    for n in (1, 2, 3, 19, 20, 21):
        spans = make_spans(n, seed=n)
        db = tmp_path / f"{n}.db"
        SQLiteSpanExporter(db).export(spans)
        totals = SpanStore(db).stats(parse_stats_query({}, T0)).totals
        assert totals.latency_p50_ms == pytest.approx(nearest_rank(durations(spans), 0.5)), n
        assert totals.latency_p95_ms == pytest.approx(nearest_rank(durations(spans), 0.95)), n


def test_v1_store_migrates_and_backfills_findings(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("PRAGMA application_id = 1280068948")
    base = ("'t', 'n', 'CLIENT', 'UNSET', '{}', '[]', '{}'")
    conn.execute(f"INSERT INTO spans (span_id, trace_id, name, kind, status_code, attributes, "
                 f"links, resource, events, start_time_ns) VALUES ('a', {base}, "
                 f"'[{{\"name\":\"{LLMTRACE_SECURITY_FINDING_EVENT}\"}},"
                 f"{{\"name\":\"other\"}},{{\"name\":\"{LLMTRACE_SECURITY_FINDING_EVENT}\"}}]',"
                 " 1)")
    conn.execute(f"INSERT INTO spans (span_id, trace_id, name, kind, status_code, attributes, "
                 f"links, resource, events, start_time_ns) VALUES ('b', {base}, '[]', 2)")
    conn.close()
    connect_writer(db).close()
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert dict(check.execute("SELECT span_id, findings_count FROM spans")) == {"a": 2, "b": 0}
    check.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T10:00:00Z", 1_795_428_000 * 10**9),
        ("2026-11-23T12:00:00+02:00", 1_795_428_000 * 10**9),
        ("2026-11-23", 1_795_392_000 * 10**9),
        ("2026-11-23T10:00:00.250Z", 1_795_428_000 * 10**9 + 250_000_000),
        ("90s", 1_795_428_000 * 10**9 - 90 * 10**9),
        ("1.5h", 1_795_428_000 * 10**9 - 5400 * 10**9),
        ("2w", 1_795_428_000 * 10**9 - 14 * 86400 * 10**9),
    ],
)
def test_time_parameters(text: str, expected: int) -> None:
    query = parse_list_query({"since": text}, 1_795_428_000 * 10**9)
    assert query.filter.since_ns == expected


def test_cursor_round_trip_and_tampering() -> None:
    cursor = Cursor(T0, "0123456789abcdef")
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "x" * 65, "AAAA", Cursor(T0, "0123").encode()[:-2] + "zz"):
        with pytest.raises(QueryError) as info:
            Cursor.decode(bad)
        assert info.value.param == "cursor"
