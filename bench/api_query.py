"""Latency of the query API on a large store: /api/v1/traces (first and deep pages) and stats.

Builds a store of ``--spans`` spans with the real exporter (``span_corpus.build_store``: 7 days
of calls), starts ``llmtrace-otel serve`` on it as a subprocess (exactly as a user would; no
traffic is proxied), and times each request over one kept-alive HTTP/1.1 connection:
``time.perf_counter_ns`` from before the request is sent to the last byte of the body, after
``--warmup`` untimed calls, median (and p90) of ``--repeat`` calls. The same query is also
timed in-process through ``SpanStore`` (no HTTP, no JSON) to show where the time goes, and
with ``--exact`` also on the exact path (``SpanStore.stats(use_rollup=False)``: what stats
cost without the hourly rollup), ``--exact-repeat`` times.

    .venv/bin/python bench/api_query.py [--spans 100000] [--repeat 25] [--db FILE] [--exact]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from proxy_process import ProxyProcess
from span_corpus import END_NS, build_store

from llmtrace_otel.exporters.sqlite import (
    Cursor,
    SpanStore,
    parse_list_query,
    parse_stats_query,
)
from llmtrace_otel.exporters.sqlite.filters import parse_filter_query

DAY_NS = 86_400 * 10**9


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _deep_cursor(db: Path, fraction: float) -> str:
    """The cursor of the row ``fraction`` of the way down the newest-first listing."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        total = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        start, span_id = conn.execute(
            "SELECT start_time_ns, span_id FROM spans ORDER BY start_time_ns DESC, span_id DESC "
            "LIMIT 1 OFFSET ?", (int(total * fraction),)).fetchone()
    return Cursor(start, span_id).encode()


def _time(work: Callable[[], object], warmup: int, repeat: int) -> tuple[float, float]:
    for _ in range(warmup):
        work()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        work()
        samples.append((time.perf_counter_ns() - started) / 1e6)
    samples.sort()
    return statistics.median(samples), samples[min(int(len(samples) * 0.9), len(samples) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--db", type=Path, help="reuse (or create) this store")
    parser.add_argument("--exact", action="store_true",
                        help="also time stats on the exact path (no rollup)")
    parser.add_argument("--exact-repeat", type=int, default=5)
    args = parser.parse_args(argv)
    executable = Path(sys.executable).with_name("llmtrace-otel")
    with tempfile.TemporaryDirectory(prefix="llmtrace-apibench-") as tmp:
        db = args.db or Path(tmp) / "bench.db"
        if not db.exists():
            started = time.perf_counter()
            build_store(db, args.spans)
            print(f"built {args.spans:,} spans in {time.perf_counter() - started:.1f} s "
                  f"({db.stat().st_size / 2**20:.0f} MiB)", file=sys.stderr)
        spans = SpanStore(db).count()
        proxy = ProxyProcess(executable, "http://127.0.0.1:9", db, Path(tmp) / "proxy.log",
                             _free_port()).start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
            deep = _deep_cursor(db, 0.9)
            now = END_NS  # relative times ("24h") are taken from the corpus' end
            since_24h = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - DAY_NS) / 1e9))
            # A day that starts and ends mid-hour: both edge hours are scanned exactly.
            mid = now - 20 * 60 * 10**9
            since_mid = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((mid - DAY_NS) / 1e9))
            until_mid = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mid / 1e9))
            store = SpanStore(db)
            cases: list[tuple[str, str, dict[str, str]]] = [
                ("traces, first page (50)", "/api/v1/traces", {}),
                ("traces, deep page (cursor 90% down)", "/api/v1/traces", {"cursor": deep}),
                ("traces, provider=anthropic", "/api/v1/traces", {"provider": "anthropic"}),
                ("traces, status=error", "/api/v1/traces", {"status": "error"}),
                ("traces, has_findings=true", "/api/v1/traces", {"has_findings": "true"}),
                ("traces, tenant + model", "/api/v1/traces",
                 {"tenant": "tenant-03", "model": "gpt-4.1"}),
                ("traces, model = a response model", "/api/v1/traces",
                 {"model": "gpt-4.1-2025-01-01"}),
                ("traces, status=ok", "/api/v1/traces", {"status": "ok"}),
                ("traces, text search q, last 24 h", "/api/v1/traces",
                 {"since": since_24h, "q": "tenant-03"}),
                ("stats, last 24 h, totals", "/api/v1/stats", {"since": since_24h}),
                ("stats, last 24 h, by model", "/api/v1/stats",
                 {"since": since_24h, "group_by": "model"}),
                ("stats, last 24 h, by hour", "/api/v1/stats",
                 {"since": since_24h, "group_by": "hour"}),
                ("stats, all 7 days, totals", "/api/v1/stats", {}),
                ("stats, all 7 days, by model", "/api/v1/stats", {"group_by": "model"}),
                ("stats, all 7 days, by hour", "/api/v1/stats", {"group_by": "hour"}),
                ("stats, 24 h from and to mid-hour, by model", "/api/v1/stats",
                 {"since": since_mid, "until": until_mid, "group_by": "model"}),
                ("stats, 24 h, min_score=0.5 (exact path)", "/api/v1/stats",
                 {"since": since_24h, "min_score": "0.5"}),
                ("stats, all 7 days, model = a response model", "/api/v1/stats",
                 {"model": "gpt-4.1-2025-01-01"}),
                ("stats, 24 h, text search q (exact path)", "/api/v1/stats",
                 {"since": since_24h, "q": "tenant-03"}),
                ("findings, last 24 h", "/api/v1/findings", {"since": since_24h}),
                ("findings, all 7 days", "/api/v1/findings", {}),
            ]
            rows = []
            for label, path, params in cases:
                target = path + ("?" + urllib.parse.urlencode(params) if params else "")

                def over_http(target: str = target) -> None:
                    conn.request("GET", target)
                    response = conn.getresponse()
                    body = response.read()
                    if response.status != 200:
                        raise SystemExit(f"{target}: {response.status} {body[:200]!r}")
                    json.loads(body)

                exact_p50: float | None = None
                method = "-"
                if path.endswith("traces"):
                    query = parse_list_query(params, now)
                    direct: Callable[[], object] = lambda q=query: store.list_calls(q)  # noqa: E731
                elif path.endswith("findings"):
                    spec = parse_filter_query(params, now)
                    direct = lambda f=spec: store.finding_summary(f)  # noqa: E731
                else:
                    squery = parse_stats_query(params, now)
                    direct = lambda q=squery: store.stats(q)  # noqa: E731
                    method = store.stats(squery).percentiles
                http_p50, http_p90 = _time(over_http, args.warmup, args.repeat)
                sql_p50, _ = _time(direct, args.warmup, args.repeat)
                if args.exact and path.endswith("stats"):
                    # Last: a slow exact query may outlast the proxy's keep-alive idle timeout.
                    exact_p50, _ = _time(lambda q=squery: store.stats(q, use_rollup=False),
                                         1, args.exact_repeat)
                    conn.close()  # reconnects on the next request
                rows.append((label, http_p50, http_p90, sql_p50, method, exact_p50))
            conn.close()
        finally:
            proxy.stop()
        if args.db is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{spans:,} spans; median of {args.repeat} calls after {args.warmup} warm-up")
    print("| query | HTTP p50 ms | HTTP p90 ms | SpanStore p50 ms | percentiles "
          "| exact path p50 ms |")
    print("|---|---:|---:|---:|---|---:|")
    for label, p50, p90, sql, method, exact in rows:
        exact_text = "-" if exact is None else f"{exact:,.1f}"
        print(f"| {label} | {p50:.1f} | {p90:.1f} | {sql:.1f} | {method} | {exact_text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
