"""CLI commands over the SQLite store: ``traces``, ``trace ID`` and ``stats``.

They take the same filters as the HTTP API, spelled as flags (``--has-findings`` for
``has_findings=true``), turn them into the API's ``name -> text`` parameters and go through the
same parser, queries and JSON documents (:mod:`llmtrace_otel.api.views`), so ``--json`` prints
exactly what the API returns.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import astuple

from llmtrace_otel.api.views import dumps, page_json, stats_json, trace_json
from llmtrace_otel.display import status_label, usd
from llmtrace_otel.exporters.sqlite import (
    QueryError,
    SpanRecord,
    SpanStore,
    StoreError,
    parse_list_query,
    parse_stats_query,
)
from llmtrace_otel.exporters.sqlite.filters import parse_trace_prefix
from llmtrace_otel.exporters.sqlite.histogram import RELATIVE_ERROR
from llmtrace_otel.exporters.sqlite.queries import iso_time
from llmtrace_otel.exporters.sqlite.stats import HISTOGRAM

__all__ = ["add_query_commands"]

#: The SQLite file of a command: ``--db``, else ``sqlite.path`` from ``--config``/env.
_StorePath = Callable[[argparse.Namespace], str]
_TEXT_FILTERS = ("since", "until", "provider", "model", "tenant", "status", "min_score", "q")


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="SQLite file (default: sqlite.path)")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config file whose sqlite.path to read (also LLMTRACE_CONFIG)")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    _add_store(parser)
    parser.add_argument("--since", help="RFC 3339 time or duration before now (15m, 24h, 7d)")
    parser.add_argument("--until", help="exclusive upper bound, same forms as --since")
    parser.add_argument("--provider", help="gen_ai.provider.name")
    parser.add_argument("--model", help="gen_ai.request.model or gen_ai.response.model")
    parser.add_argument("--tenant", help="llmtrace.tenant.id")
    parser.add_argument("--status", help="ok (not failed), error, or unset")
    findings = parser.add_mutually_exclusive_group()
    findings.add_argument("--has-findings", dest="has_findings", action="store_const",
                          const="true", help="only calls with security findings")
    findings.add_argument("--no-findings", dest="has_findings", action="store_const",
                          const="false", help="only calls without security findings")
    parser.add_argument("--min-score", dest="min_score", help="minimum llmtrace.security.score")
    parser.add_argument("--search", dest="q", metavar="TEXT",
                        help="text in a name, id, model, tenant, error, attribute or event")
    parser.add_argument("--json", action="store_true", help="the API's JSON instead of a table")


def _params(args: argparse.Namespace, extra: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name in (*_TEXT_FILTERS, "has_findings", *extra):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = str(value)
    return params


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())


def _num(value: float | int | None, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _run(work: Callable[[], int]) -> int:
    try:
        return work()
    except QueryError as exc:
        print(f"llmtrace-otel: {exc.message}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"llmtrace-otel: {exc}", file=sys.stderr)
        return 1


def _store(args: argparse.Namespace, store_path: _StorePath) -> SpanStore:
    return SpanStore(store_path(args))


def _cmd_traces(args: argparse.Namespace, store_path: _StorePath) -> int:
    def work() -> int:
        query = parse_list_query(_params(args, ("limit", "cursor")), time.time_ns())
        page = _store(args, store_path).list_calls(query)
        if args.json:
            print(dumps(page_json(page, query.limit), indent=2))
            return 0
        if not page.items:
            filtered = query.cursor or any(v is not None for v in astuple(query.filter))
            print("no calls match" if filtered else "no calls stored yet")
            return 0
        header: tuple[str, ...] = ("time (UTC)", "operation", "provider", "model", "status",
                                   "in", "out", "cost", "ms", "ttfc ms", "trace id")
        rows: list[tuple[str, ...]] = [row.as_table_row() for row in page.items]
        if any(row.findings_count for row in page.items):
            header = (*header, "findings")
            rows = [(*cells, " ".join(filter(None, (str(row.findings_count), row.max_severity)))
                     if row.findings_count else "-")
                    for cells, row in zip(rows, page.items, strict=True)]
        _table(header, rows)
        if page.next_cursor:
            print(f"\nmore: add --cursor {page.next_cursor}")
        return 0

    return _run(work)


def _span_lines(span: SpanRecord) -> list[tuple[str, ...]]:
    start = iso_time(span.start_time_ns) or "-"
    return [(str(start).replace("T", " ").rstrip("Z"), span.span_id, span.name,
             status_label(span.status_code, span.error_type), _num(span.duration_ms, ".0f"),
             _num(span.ttft_ms, ".0f"), _num(span.input_tokens), _num(span.output_tokens),
             usd(span.cost_usd), str(span.findings_count))]


def _cmd_trace(args: argparse.Namespace, store_path: _StorePath) -> int:
    def work() -> int:
        store = _store(args, store_path)
        trace = store.get_trace(store.resolve_trace_id(parse_trace_prefix(args.trace_id)))
        if trace is None:
            print(f"llmtrace-otel: no stored spans for trace {args.trace_id}", file=sys.stderr)
            return 1
        if args.json:
            print(dumps(trace_json(trace), indent=2))
            return 0
        _table(("time (UTC)", "span id", "name", "status", "ms", "ttfc ms", "in", "out",
                "cost", "findings"),
               [line for span in trace.spans for line in _span_lines(span)])
        for span in trace.spans:
            for finding in span.findings:
                print(f"  finding in {span.span_id}: {finding.type or '?'} "
                      f"({finding.severity or '?'}, {finding.side or '?'}) "
                      f"{finding.evidence or finding.message or ''}".rstrip())
        if trace.truncated:
            print("(more spans are stored; the first 1000 are shown)")
        return 0

    return _run(work)


def _cmd_stats(args: argparse.Namespace, store_path: _StorePath) -> int:
    def work() -> int:
        query = parse_stats_query(_params(args, ("group_by",)), time.time_ns())
        result = _store(args, store_path).stats(query)
        if args.json:
            print(dumps(stats_json(result, query.filter.since_ns, query.filter.until_ns),
                        indent=2))
            return 0
        rows = [("(all)", result.totals)] + [(g.key or "(none)", g) for g in result.groups]
        _table(
            (query.group_by.value if result.groups else "", "calls", "errors", "error %",
             "in tokens", "out tokens", "cost", "p50 ms", "p95 ms"),
            [(key, str(r.calls), str(r.errors),
              _num(None if r.error_rate is None else r.error_rate * 100, ".1f"),
              str(r.input_tokens), str(r.output_tokens), usd(r.cost_usd),
              _num(r.latency_p50_ms, ".0f"), _num(r.latency_p95_ms, ".0f"))
             for key, r in rows],
        )
        if result.truncated:
            print("(more groups matched; the largest 1000 are shown)")
        if result.percentiles == HISTOGRAM:
            print(f"(p50/p95 from the hourly rollup's histograms, within "
                  f"{RELATIVE_ERROR * 100:.1f} % of the exact values)")
        return 0

    return _run(work)


def add_query_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    store_path: _StorePath,
) -> None:
    """Register ``traces``, ``trace`` and ``stats`` on the CLI's sub-command parser."""
    traces = sub.add_parser("traces", help="list calls from the SQLite store, newest first")
    _add_filters(traces)
    traces.add_argument("--limit", help="calls per page (1-500, default 50)")
    traces.add_argument("--cursor", help="continue after a previous page")
    traces.set_defaults(func=lambda args: _cmd_traces(args, store_path))

    trace = sub.add_parser("trace", help="show every stored span of one trace")
    trace.add_argument("trace_id", metavar="ID",
                       help="trace id (32 hex digits), or a unique prefix of at least 4")
    _add_store(trace)
    trace.add_argument("--json", action="store_true", help="the API's JSON instead of a table")
    trace.set_defaults(func=lambda args: _cmd_trace(args, store_path))

    stats = sub.add_parser("stats", help="calls, errors, tokens, cost and latency percentiles")
    _add_filters(stats)
    stats.add_argument("--group-by", dest="group_by",
                       help="none, model, provider, tenant, minute, hour or day")
    stats.set_defaults(func=lambda args: _cmd_stats(args, store_path))
