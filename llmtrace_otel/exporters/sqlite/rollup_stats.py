"""Stats from the hourly rollup: whole hours from ``span_rollup``, partial edge hours exactly.

A query can be answered from the rollup when everything it filters or groups by is part of the
rollup's key: time, provider, model (request or response), tenant, status, has-findings, and
grouping by none, model, provider, tenant, hour or day. ``min_score``, the text search ``q``
and ``group_by=minute`` cannot, and neither can a range without one whole UTC hour in it (it is
small: the exact path is cheap); those go to the exact path (``stats.py``), and so does a range
that touches an hour the backfill (after the v3 or v4 migration) has not computed yet.

For a range ``[since, until)`` the whole hours ``[ceil(since), floor(until))`` come from the
rollup (one range search of its primary key; an open end takes every hour on that side), and
the partial hours at either end, ``[since, ceil(since))`` and ``[floor(until), until)``, are
scanned exactly on the covering time index and aggregated with the same code the exporter uses
(``RollupBatch``). Counts, errors, tokens, cost and the time-to-first-chunk mean are therefore
exactly those of the exact path (cost up to float rounding); p50/p95 are read from the merged
histograms, within ``histogram.RELATIVE_ERROR`` (4.9 %) of the exact nearest-rank values, and
the result says ``percentiles="histogram"``.

When the whole hours hold at most :data:`EXACT_BELOW` calls, the exact path is cheap and is
used instead (``percentiles="exact"``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from llmtrace_otel.exporters.sqlite.filters import GroupBy, StatsQuery, filter_sql, group_terms
from llmtrace_otel.exporters.sqlite.histogram import counts_of, decode, percentile_ms
from llmtrace_otel.exporters.sqlite.rollup import (
    HOUR_NS,
    ROLLUP_COLUMNS,
    SOURCE_COLUMNS,
    RollupBatch,
    floor_hour,
)
from llmtrace_otel.exporters.sqlite.stats import (
    HISTOGRAM,
    MAX_GROUPS,
    StatsResult,
    StatsRow,
    exact_stats,
    key_text,
    nearest_ranks,
)

__all__ = ["EXACT_BELOW", "answer_stats", "rollup_statements"]

#: Whole-hour calls up to which the exact path answers (it costs ~1.5-3 µs per call).
EXACT_BELOW: Final = 10_000
_DAY_NS: Final = 24 * HOUR_NS
_MIN_NS: Final = -(2**63)
_MAX_NS: Final = 2**63 - 1
_COLUMNS: Final = ", ".join(ROLLUP_COLUMNS)
_Row = Sequence[Any]
_Statement = tuple[str, tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class _Plan:
    first_ns: int | None  # first whole hour (None: from the beginning)
    end_ns: int | None  # end of the last whole hour (None: to the end)
    edges: tuple[tuple[int, int], ...]  # partial hours, scanned exactly


def _plan(query: StatsQuery) -> _Plan | None:
    spec = query.filter
    filter_sql(spec)  # the same QueryError as the exact path for a hand-built bad filter
    if spec.min_score is not None or spec.text is not None or query.group_by is GroupBy.MINUTE:
        return None
    since, until = spec.since_ns, spec.until_ns
    first = None if since is None else -((-since) // HOUR_NS) * HOUR_NS
    end = None if until is None else floor_hour(until)
    if first is not None and end is not None and first >= end:
        return None
    edges: list[tuple[int, int]] = []
    if since is not None and first is not None and since < first:
        edges.append((since, first))
    if until is not None and end is not None and end < until:
        edges.append((end, until))
    return _Plan(first, end, tuple(edges))


def _rollup_sql(query: StatsQuery, plan: _Plan) -> _Statement:
    spec = query.filter
    where: list[str] = []
    params: list[object] = []
    if plan.first_ns is not None:
        where.append("hour_ns >= ?")
        params.append(plan.first_ns)
    if plan.end_ns is not None:
        where.append("hour_ns < ?")
        params.append(plan.end_ns)
    terms, values = group_terms(spec)  # the same columns and terms as on spans
    where.extend(terms)
    params.extend(values)
    if spec.has_findings is not None:
        where.append("has_findings = ?")
        params.append(1 if spec.has_findings else 0)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {_COLUMNS} FROM span_rollup{clause}", tuple(params)


def _pending_sql(plan: _Plan) -> _Statement:
    first = _MIN_NS if plan.first_ns is None else plan.first_ns
    end = _MAX_NS if plan.end_ns is None else plan.end_ns
    return ("SELECT 1 FROM span_rollup_pending WHERE hour_ns >= ? AND hour_ns < ? LIMIT 1",
            (first, end))


def _edge_sql(query: StatsQuery, edge: tuple[int, int]) -> _Statement:
    where, params = filter_sql(replace(query.filter, since_ns=edge[0], until_ns=edge[1]))
    return (f"SELECT {', '.join(SOURCE_COLUMNS)} FROM spans INDEXED BY idx_spans_start "
            f"WHERE {' AND '.join(where)}", tuple(params))


def rollup_statements(query: StatsQuery) -> list[_Statement] | None:
    """The statements :func:`answer_stats` runs when it uses the rollup, or None when the
    query cannot be answered from it (for ``EXPLAIN QUERY PLAN``)."""
    plan = _plan(query)
    if plan is None:
        return None
    sql, params = _rollup_sql(query, plan)
    return [_pending_sql(plan), (sql.replace(_COLUMNS, "sum(calls)", 1), params), (sql, params),
            *(_edge_sql(query, edge) for edge in plan.edges)]


def _text_key(value: Any) -> str | None:
    return value if value.__class__ is str else None  # the rollup's NO_VALUE blob -> null


def _key_function(group_by: GroupBy) -> Callable[[_Row], Any]:
    if group_by is GroupBy.HOUR:
        return lambda row: row[0]
    if group_by is GroupBy.DAY:
        return lambda row: row[0] - row[0] % _DAY_NS
    column = {GroupBy.PROVIDER: 1, GroupBy.MODEL: 2, GroupBy.TENANT: 4}.get(group_by)
    if column is None:
        return lambda row: None
    return lambda row: _text_key(row[column])


class _Groups:
    """Rollup rows (or rows of the same shape from the edges) summed per result group."""

    def __init__(self, group_by: GroupBy) -> None:
        self._key = _key_function(group_by)
        # key -> [calls, errors, input, output, cost, durations, ttft sum, ttft n, histograms]
        self.groups: dict[Any, list[Any]] = {}

    def add(self, rows: Iterable[_Row]) -> None:
        groups, key_of = self.groups, self._key
        for row in rows:
            key = key_of(row)
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = [0, 0, 0, 0, 0.0, 0, 0.0, 0, []]
            calls = row[7]
            acc[0] += calls
            if row[5] == "ERROR":
                acc[1] += calls
            acc[2] += row[8]
            acc[3] += row[9]
            acc[4] += row[10]
            acc[5] += row[11]
            acc[6] += row[15]
            acc[7] += row[14]
            if row[13]:
                acc[8].append(decode(row[13]))


def _stats_row(key: str | None, acc: list[Any], histogram: int) -> StatsRow:
    calls, errors, input_tokens, output_tokens, cost, durations, ttft_sum, ttft_n, _ = acc
    p50 = p95 = None
    if durations and histogram:
        p50, p95 = percentile_ms(counts_of(histogram), nearest_ranks(durations))
    return StatsRow(
        key=key,
        calls=calls,
        errors=errors,
        error_rate=errors / calls if calls else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=float(cost),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        ttft_avg_ms=ttft_sum / ttft_n if ttft_n else None,
    )


def _result(query: StatsQuery, groups: _Groups) -> StatsResult:
    group_by = query.group_by
    histograms = {key: sum(acc[8]) for key, acc in groups.groups.items()}
    total = [0, 0, 0, 0, 0.0, 0, 0.0, 0, []]
    for acc in groups.groups.values():
        for index in range(8):
            total[index] += acc[index]
    totals = _stats_row(None, total, sum(histograms.values()))
    if group_by is GroupBy.NONE:
        return StatsResult(group_by, totals, (), False, HISTOGRAM)
    items = list(groups.groups.items())
    if group_by.bucket_ns is not None:
        items.sort(key=lambda item: item[0], reverse=True)  # newest first, as the exact path
    else:  # calls descending, then key ascending with null first (SQLite's order)
        items.sort(key=lambda item: (-item[1][0], item[0] is not None, item[0] or ""))
    truncated = len(items) > MAX_GROUPS
    items = items[:MAX_GROUPS]
    if group_by.bucket_ns is not None:
        items.reverse()  # newest MAX_GROUPS buckets, returned oldest first
    rows = tuple(_stats_row(key_text(group_by, key), acc, histograms[key]) for key, acc in items)
    return StatsResult(group_by, totals, rows, truncated, HISTOGRAM)


def _from_rollup(conn: sqlite3.Connection, query: StatsQuery,
                 exact_below: int) -> StatsResult | None:
    plan = _plan(query)
    if plan is None or conn.execute(*_pending_sql(plan)).fetchone() is not None:
        return None
    sql, params = _rollup_sql(query, plan)
    # A cheap count first: a small range is answered exactly, without reading histograms.
    calls = conn.execute(sql.replace(_COLUMNS, "sum(calls)", 1), params).fetchone()[0]
    if (calls or 0) <= exact_below:
        return None
    groups = _Groups(query.group_by)
    groups.add(conn.execute(sql, params))
    for edge in plan.edges:
        batch = RollupBatch()
        batch.add(conn.execute(*_edge_sql(query, edge)))
        groups.add(batch.rows())
    return _result(query, groups)


def answer_stats(conn: sqlite3.Connection, query: StatsQuery, *, use_rollup: bool = True,
                 exact_below: int = EXACT_BELOW) -> StatsResult:
    """Stats for ``query`` in one read transaction: from the rollup when it can answer and the
    whole hours hold more than ``exact_below`` calls, exactly otherwise."""
    conn.execute("BEGIN")
    try:
        result = _from_rollup(conn, query, exact_below) if use_rollup else None
        return result if result is not None else exact_stats(conn, query)
    finally:
        conn.execute("COMMIT")
