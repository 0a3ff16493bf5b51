"""The PostgreSQL store on a real server: migrations when several instances start at once,
daily partitions and retention, re-exports, values PostgreSQL refuses, query plans, and the
URL's password kept out of everything shown. (The query results themselves are checked on
both stores by tests/api.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
)

from llmtrace_otel.exporters.postgres.exporter import PostgresSpanExporter
from llmtrace_otel.exporters.postgres.partitions import day_bounds, maintain, partition_name
from llmtrace_otel.exporters.postgres.schema import SCHEMA_VERSION, migrate
from llmtrace_otel.exporters.postgres.store import PostgresSpanStore
from llmtrace_otel.exporters.sqlite import StoreError, parse_list_query, parse_stats_query
from llmtrace_otel.exporters.sqlite.listing import list_sql
from llmtrace_otel.exporters.sqlite.queries import stats_statements
from llmtrace_otel.exporters.sqlite.records import call_columns
from tests.support.call_spans import make_calls


def spans_at(days: list[date], per_day: int = 3, **attributes: object) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    for day in days:
        start = day_bounds(day)[0] + 3600 * 10**9
        for i in range(per_day):
            span = tracer.start_span("chat m", start_time=start + i * 10**9,
                                     attributes={GEN_AI_OPERATION_NAME: "chat",
                                                 GEN_AI_REQUEST_MODEL: "m", **attributes})
            span.end(end_time=start + i * 10**9 + 5 * 10**6)
    return list(memory.get_finished_spans())


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_instances_starting_at_once_migrate_once(postgres_url: str) -> None:
    found: list[int] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            barrier.wait()
            found.append(migrate(conn))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(found) == [0] + [SCHEMA_VERSION] * 5  # one migrated, five waited
    assert rows(postgres_url, "SELECT version FROM llmtrace_schema") == [(SCHEMA_VERSION,)]


def test_a_foreign_or_newer_database_is_refused(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE spans (id int)")
        with pytest.raises(StoreError, match="not an llmtrace span store"):
            migrate(conn)
        conn.execute("DROP TABLE spans")
        migrate(conn)
        conn.execute("UPDATE llmtrace_schema SET version = 99")
        with pytest.raises(StoreError, match="newer"):
            migrate(conn)


def test_partitions_ahead_retention_by_drop_and_the_default_partition(postgres_url: str) -> None:
    today = date(2027, 6, 15)  # not the real today: its partitions do not exist yet
    old, recent, future = today - timedelta(days=40), today - timedelta(days=1), \
        today + timedelta(days=9)
    exporter = PostgresSpanExporter(postgres_url, retention_days=0)
    exporter.maintain()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        created = maintain(conn, retention_days=30, today=today)
    assert created.created == tuple(partition_name(today + timedelta(days=n))
                                    for n in range(-1, 4))  # yesterday to 3 days ahead
    assert exporter.export(spans_at([old, recent, future])) is SpanExportResult.SUCCESS
    where = dict(rows(postgres_url, "SELECT tableoid::regclass::text, count(*) FROM spans "
                                    "GROUP BY 1"))
    assert where == {"spans_default": 6, partition_name(recent): 3}  # old and far future
    # The future day's partition is created later: its rows move there first.
    later = future - timedelta(days=3)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        result = maintain(conn, retention_days=30, today=later)
    assert partition_name(future) in result.created
    assert partition_name(recent) not in result.dropped
    where = dict(rows(postgres_url, "SELECT tableoid::regclass::text, count(*) FROM spans "
                                    "GROUP BY 1"))
    assert where == {partition_name(future): 3, partition_name(recent): 3}  # old: deleted
    # Retention drops whole partitions and the rollup of their hours, nothing else.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        result = maintain(conn, retention_days=1, today=recent + timedelta(days=2))
    assert partition_name(recent) in result.dropped
    store = PostgresSpanStore(postgres_url)
    try:
        assert store.count() == 3
        totals = store.stats(parse_stats_query({}, 0), exact_below=0).totals
        assert totals.calls == 3
        assert rows(postgres_url, "SELECT sum(calls) FROM span_rollup") == [(3,)]
    finally:
        store.close()
        exporter.shutdown()


def test_re_exports_and_values_postgres_refuses(postgres_url: str) -> None:
    exporter = PostgresSpanExporter(postgres_url, retention_days=0)
    spans = make_calls(300)
    assert exporter.export(spans[:200]) is SpanExportResult.SUCCESS
    assert exporter.export(spans[100:300]) is SpanExportResult.SUCCESS  # 100 again
    assert exporter.export(spans[:1] * 3) is SpanExportResult.SUCCESS  # thrice in a batch
    odd = spans_at([date(2026, 9, 22)], per_day=2, **{GEN_AI_REQUEST_MODEL: "nul\x00model",
                                                    GEN_AI_USAGE_INPUT_TOKENS: 2**70,
                                                    "note": "lone \ud800 surrogate"})
    assert exporter.export(odd) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert exporter.written == 200 + 200 + 3 + 2 and exporter.failed == 0
    store = PostgresSpanStore(postgres_url)
    try:
        assert store.count() == 302
        assert store.stats(parse_stats_query({}, 0), exact_below=0).totals.calls == 302
        stored = store.list_calls(parse_list_query({"model": "nul\ufffdmodel"}, 0)).items
        assert len(stored) == 2 and stored[0].input_tokens is None
    finally:
        store.close()


def test_listings_and_stats_use_the_indexes(postgres_url: str) -> None:
    exporter = PostgresSpanExporter(postgres_url, retention_days=0)
    spans = make_calls(20_000, step_ns=2 * 10**9)
    for offset in range(0, len(spans), 512):
        assert exporter.export(spans[offset:offset + 512]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE spans")
    store = PostgresSpanStore(postgres_url)
    try:
        # (each partition's copy of an index has a generated name: the plan's shape is
        # what is checked, newest first through indexes and no sort of the matches)
        columns = call_columns(store.dialect.attribute)
        for params in ({}, {"model": "gpt-4.1"}, {"status": "error"},
                       {"has_findings": "true"}, {"tenant": "tenant-1"}):
            plan = "\n".join(store.explain(*list_sql(parse_list_query(params, 0), columns)))
            assert "Index" in plan and "Seq Scan" not in plan, (params, plan)
            if "model" in params:  # request or response model: two bounded walks, merged
                assert plan.count("Limit") == 3, plan
            else:
                assert not re.search(r"(^|->  )Sort ", plan, re.M), (params, plan)
        query = parse_stats_query({"since": "2026-09-21T16:30:00Z", "group_by": "model"}, 0)
        for sql, params in stats_statements(query, True, store.dialect):
            plan = "\n".join(store.explain(sql, params))
            assert "Seq Scan on spans" not in plan, plan  # edges: the time index
    finally:
        store.close()


def test_the_password_is_never_shown() -> None:
    url = "postgresql://llm:s3cret-pw@127.0.0.1:1/nodb"
    result = subprocess.run([sys.executable, "-m", "llmtrace_otel", "validate",
                             "--storage-url", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout and "storage.url" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "llmtrace_otel", "validate", "--storage-url",
                          "mysql://llm:s3cret-pw@db/x"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode != 0 and "not a postgresql:// URL" in bad.stderr
    assert "s3cret" not in bad.stderr
    traces = subprocess.run([sys.executable, "-m", "llmtrace_otel", "traces", "--storage-url",
                             url], capture_output=True, text=True, timeout=60)
    assert traces.returncode == 1 and "cannot be reached" in traces.stderr
    assert "s3cret" not in traces.stderr and "llm:****@127.0.0.1:1/nodb" in traces.stderr
    exporter = PostgresSpanExporter(url, retry_s=0)
    assert exporter.export(spans_at([datetime.now(UTC).date()])) is SpanExportResult.FAILURE
    health = json.dumps(exporter.health())
    exporter.shutdown()
    assert "s3cret" not in health and "llm:****@" in health
