"""Stats from the hourly rollup against the exact path, on stores written by the real exporters
(SQLite and PostgreSQL: every test that is not about SQLite's query plans runs on both):
the same counts, errors, tokens, cost and TTFT means, percentiles within the stated bound; the
fallbacks; the query plans; and the CLI and the API giving the same documents."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from llmtrace_otel.exporters.postgres.exporter import PostgresSpanExporter
from llmtrace_otel.exporters.sqlite import (
    SpanStore,
    SQLiteSpanExporter,
    StatsResult,
    StatsRow,
    parse_stats_query,
)
from llmtrace_otel.exporters.sqlite.histogram import MIN_MS, RELATIVE_ERROR
from llmtrace_otel.exporters.sqlite.queries import SpanReader
from llmtrace_otel.exporters.sqlite.stats import MAX_GROUPS
from tests.support.call_spans import HOUR_NS, T0, make_calls
from tests.support.fake_upstream import FakeUpstream
from tests.support.openapi_check import call, check
from tests.support.proxy_harness import running_proxy
from tests.support.stores import BACKENDS, backend_settings, open_backend

NOW = T0 + 70 * HOUR_NS  # "now" for relative times: after the last call


def _loaded(exporter: SpanExporter) -> None:
    """6,000 calls over ~62 hours, exported in batches (some twice)."""
    spans = make_calls(6000)
    for offset in range(0, len(spans), 256):
        assert exporter.export(spans[offset:offset + 256]) is SpanExportResult.SUCCESS
    assert exporter.export(spans[1000:1300]) is SpanExportResult.SUCCESS
    exporter.shutdown()


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> SpanReader:
    """The same calls in each store: the rollup tests run on both."""
    exporter, store = open_backend(request.param, request, tmp_path_factory.mktemp("rollup"))
    _loaded(exporter)
    return store


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> SpanStore:
    """For SQLite's query plans (PostgreSQL's: tests/exporters/test_postgres_store.py)."""
    db = tmp_path_factory.mktemp("plans") / "spans.db"
    _loaded(SQLiteSpanExporter(db))
    return SpanStore(db)


def assert_percentile(got: float | None, exact: float | None, what: str) -> None:
    assert (got is None) == (exact is None), what
    if got is None or exact is None:
        return
    if exact < MIN_MS:  # below the first bucket: reported as 0
        assert got == 0.0, what
    else:
        assert abs(got - exact) <= RELATIVE_ERROR * exact, (what, got, exact)


def assert_agrees(rolled: StatsResult, exact: StatsResult) -> None:
    assert (rolled.group_by, rolled.truncated) == (exact.group_by, exact.truncated)
    pairs: Sequence[tuple[StatsRow, StatsRow]] = list(
        zip((rolled.totals, *rolled.groups), (exact.totals, *exact.groups), strict=True))
    for got, want in pairs:
        assert (got.key, got.calls, got.errors, got.input_tokens, got.output_tokens) == \
            (want.key, want.calls, want.errors, want.input_tokens, want.output_tokens)
        assert got.error_rate == pytest.approx(want.error_rate)
        assert got.cost_usd == pytest.approx(want.cost_usd, rel=1e-9, abs=1e-12)
        if want.ttft_avg_ms is None:
            assert got.ttft_avg_ms is None
        else:
            assert got.ttft_avg_ms == pytest.approx(want.ttft_avg_ms, rel=1e-9)
        assert_percentile(got.latency_p50_ms, want.latency_p50_ms, f"p50 {got.key}")
        assert_percentile(got.latency_p95_ms, want.latency_p95_ms, f"p95 {got.key}")


ROLLUP_QUERIES = [
    {},
    {"group_by": "model"},
    {"group_by": "provider"},
    {"group_by": "tenant"},
    {"group_by": "hour"},
    {"group_by": "day"},
    {"since": "2026-09-21T17:17:41Z", "group_by": "hour"},  # a partial first hour
    {"since": "2026-09-21T19:40:00Z", "until": "2026-09-23T01:05:00Z", "group_by": "model",
     "status": "error"},  # partial hours at both ends
    {"until": "2026-09-22T09:30:00Z", "tenant": "tenant-1", "group_by": "day"},
    {"has_findings": "true", "group_by": "provider"},
    {"has_findings": "false", "model": "gpt-4.1", "status": "ok"},
    {"since": "2026-09-21T18:00:00Z", "until": "2026-09-22T18:00:00Z", "group_by": "tenant",
     "provider": "anthropic"},  # whole hours only
    {"since": "24h", "group_by": "hour"},
]


@pytest.mark.parametrize("params", ROLLUP_QUERIES, ids=lambda p: json.dumps(p))
def test_the_rollup_answers_like_the_exact_path(store: SpanReader, params: dict[str, str]) -> None:
    query = parse_stats_query(params, NOW)
    rolled = store.stats(query, exact_below=0)
    exact = store.stats(query, use_rollup=False)
    assert (rolled.percentiles, exact.percentiles) == ("histogram", "exact")
    assert exact.totals.calls > 0
    assert_agrees(rolled, exact)


@pytest.mark.parametrize("params", [
    {"since": "2026-09-21T20:05:00Z", "until": "2026-09-21T20:55:00Z"},  # no whole hour
    {"since": "2026-09-21T20:05:00Z", "until": "2026-09-21T21:55:00Z"},  # two partial hours
    {"min_score": "0.5", "group_by": "model"},  # not a rollup dimension
    {"group_by": "minute", "since": "2026-09-22T00:00:00Z"},  # finer than the rollup
    {"provider": "nobody"},  # nothing matches: nothing to gain
])
def test_what_the_rollup_cannot_answer_is_answered_exactly(store: SpanReader,
                                                           params: dict[str, str]) -> None:
    query = parse_stats_query(params, NOW)
    answer = store.stats(query, exact_below=0)
    assert answer.percentiles == "exact"
    assert answer == store.stats(query, use_rollup=False)


def test_small_ranges_are_answered_exactly_by_default(store: SpanReader) -> None:
    few = parse_stats_query({"since": "2026-09-22T00:00:00Z", "until": "2026-09-22T05:00:00Z"},
                            NOW)
    assert store.stats(few).percentiles == "exact"  # ~490 calls, under EXACT_BELOW
    assert store.stats(few, exact_below=100).percentiles == "histogram"


def test_rollup_statements_search_the_rollup_key_and_the_covering_index(
    sqlite_store: SpanStore,
) -> None:
    store = sqlite_store
    query = parse_stats_query({"since": "2026-09-21T17:17:41Z", "until": "2026-09-22T03:10:00Z",
                               "group_by": "model", "model": "gpt-4.1"}, NOW)
    plan = store.explain_stats(query, use_rollup=True)
    searches = [line for line in plan if line.startswith(("SEARCH", "SCAN"))]
    assert len(searches) == 5, plan  # pending check, rollup count and rows, two edges
    assert "SEARCH span_rollup_pending USING" in searches[0]
    assert all(line.startswith("SEARCH span_rollup USING PRIMARY KEY (hour_ns>? AND hour_ns<?)")
               for line in searches[1:3]), plan
    assert all("COVERING INDEX idx_spans_start" in line for line in searches[3:]), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan
    assert store.explain_stats(parse_stats_query({"min_score": "0.1"}, NOW),
                               use_rollup=True) == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_than_max_groups_keeps_the_newest_buckets(backend: str,
                                                       request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    exporter, store = open_backend(backend, request, tmp_path)
    assert exporter.export(make_calls(MAX_GROUPS + 150, step_ns=HOUR_NS + 10**9)) is \
        SpanExportResult.SUCCESS
    exporter.shutdown()
    for params in ({"group_by": "hour"}, {"group_by": "hour", "since": "2026-09-25T07:30:00Z"}):
        query = parse_stats_query(params, NOW)
        rolled, exact = store.stats(query, exact_below=0), store.stats(query, use_rollup=False)
        assert rolled.percentiles == "histogram"
        assert_agrees(rolled, exact)
    assert rolled.truncated and len(rolled.groups) == MAX_GROUPS


# --- the CLI and the API on a store large enough for the rollup's default -----------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmtrace_otel", *args], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, upstream: FakeUpstream,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], str]]:
    """A store of ~35 hours of calls, served by a proxy; the CLI flags that name it."""
    tmp = tmp_path_factory.mktemp("served")
    settings = backend_settings(request.param, request)
    db = tmp / "spans.db"  # the proxy harness's store path
    url = settings.get("storage_url")
    exporter = (PostgresSpanExporter(url, retention_days=0) if url else SQLiteSpanExporter(db))
    spans = make_calls(14_000, step_ns=9 * 10**9)
    for offset in range(0, len(spans), 512):
        assert exporter.export(spans[offset:offset + 512]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with running_proxy(upstream.url, tmp, storage_retention_days=0, **settings) as proxy:
        assert Path(proxy.settings.sqlite_path) == db
        yield (["--storage-url", url] if url else ["--db", str(db)]), proxy.url


@pytest.mark.parametrize(("params", "percentiles"), [
    ({}, "histogram"),
    ({"group_by": "model"}, "histogram"),
    ({"group_by": "hour", "since": "2026-09-21T16:30:00Z", "until": "2026-09-22T20:45:10Z"},
     "histogram"),
    ({"group_by": "tenant", "has_findings": "false", "since": "2026-09-21T15:00:00Z"},
     "histogram"),
    ({"group_by": "tenant", "status": "error"}, "exact"),  # ~1,600 calls: under EXACT_BELOW
])
def test_cli_stats_and_the_api_agree(served: tuple[list[str], str], params: dict[str, str],
                                     percentiles: str) -> None:
    store_flags, url = served
    flags = [part for name, value in params.items() if name != "has_findings"
             for part in (f"--{name.replace('_', '-')}", value)]
    if "has_findings" in params:
        flags.append("--has-findings" if params["has_findings"] == "true" else "--no-findings")
    result = cli("stats", *store_flags, "--json", *flags)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    check("/api/v1/stats", 200, document)
    assert document["percentiles"] == percentiles
    assert document == call(url, "/api/v1/stats", params, template="/api/v1/stats").body
    table = cli("stats", *store_flags, *flags).stdout.splitlines()
    assert table[1].split()[:2] == ["(all)", str(document["totals"]["calls"])]
    assert ("histograms, within 4.9 %" in table[-1]) == (percentiles == "histogram")
