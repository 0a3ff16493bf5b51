"""Aggregates over stored calls: counts, tokens, cost, error rate and latency percentiles.

Everything is computed in SQL, over the covering index ``idx_spans_start`` (start time
first, then every column a filter, a grouping or an aggregate reads), so a stats query reads
the index only, never the wide table rows with their JSON, and its cost grows with the
number of calls in the requested time range, not with the size of the store.

Latency percentiles are exact nearest-rank percentiles: the p-th percentile of a group is
its smallest ``duration_ms`` whose cumulative distribution (``cume_dist()`` window function,
ordered by duration within the group) is at least p. That is one sort per query of the
durations in range, done by SQLite, not by Python; nothing is sampled or estimated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from llmtrace_otel.exporters.sqlite.filters import GroupBy, StatsQuery, filter_sql

__all__ = ["MAX_GROUPS", "StatsResult", "StatsRow", "aggregate_sql", "percentile_sql",
           "stats_result"]

#: Groups returned at most (the largest by calls, or the newest time buckets).
MAX_GROUPS: Final = 1000
_INDEX: Final = "idx_spans_start"
_KEYS: Final = {
    GroupBy.NONE: "NULL",
    GroupBy.MODEL: "request_model",
    GroupBy.PROVIDER: "provider",
    GroupBy.TENANT: "tenant_id",
}


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One group (or the totals, ``key`` None). ``error_rate`` and the latency figures are
    None when the group has no calls or no measured durations."""

    key: str | None
    calls: int
    errors: int
    error_rate: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_avg_ms: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StatsResult:
    group_by: GroupBy
    totals: StatsRow
    groups: tuple[StatsRow, ...]
    truncated: bool  # more than MAX_GROUPS groups matched

    def as_dict(self) -> dict[str, object]:
        return {
            "group_by": self.group_by.value,
            "totals": self.totals.as_dict(),
            "groups": [group.as_dict() for group in self.groups],
            "truncated": self.truncated,
        }


def _key_sql(group_by: GroupBy) -> str:
    bucket = group_by.bucket_ns
    if bucket is not None:
        return f"(start_time_ns / {bucket}) * {bucket}"
    return _KEYS[group_by]


def _where(query: StatsQuery) -> tuple[str, list[object]]:
    where, params = filter_sql(query.filter)
    where.insert(0, "start_time_ns IS NOT NULL")
    return " AND ".join(where), params


def aggregate_sql(query: StatsQuery, group_by: GroupBy) -> tuple[str, tuple[object, ...]]:
    """Per-group counts and sums, at most ``MAX_GROUPS + 1`` groups."""
    where, params = _where(query)
    key = _key_sql(group_by)
    order = "k DESC" if group_by.bucket_ns is not None else "calls DESC, k"
    sql = (
        f"SELECT {key} AS k, count(*) AS calls, "
        "coalesce(sum(status_code = 'ERROR'), 0), "
        "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
        "coalesce(sum(cost_usd), 0.0), avg(ttft_ms) "
        f"FROM spans INDEXED BY {_INDEX} WHERE {where} "
        f"GROUP BY k ORDER BY {order} LIMIT {MAX_GROUPS + 1}"
    )
    return sql, tuple(params)


def percentile_sql(query: StatsQuery, group_by: GroupBy) -> tuple[str, tuple[object, ...]]:
    """Per-group nearest-rank p50 and p95 of ``duration_ms``."""
    where, params = _where(query)
    key = _key_sql(group_by)
    sql = (
        "SELECT k, min(CASE WHEN cd >= 0.5 THEN v END), min(CASE WHEN cd >= 0.95 THEN v END) "
        "FROM (SELECT k, v, cume_dist() OVER (PARTITION BY k ORDER BY v) AS cd "
        f"FROM (SELECT {key} AS k, duration_ms AS v FROM spans INDEXED BY {_INDEX} "
        f"WHERE {where} AND duration_ms IS NOT NULL)) GROUP BY k"
    )
    return sql, tuple(params)


def _key_text(group_by: GroupBy, key: Any) -> str | None:
    if key is None:
        return None
    if group_by.bucket_ns is not None:
        moment = datetime.fromtimestamp(int(key) // 10**9, tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(key)


def _row(group_by: GroupBy, aggregate: tuple[Any, ...],
         percentiles: dict[Any, tuple[Any, Any]]) -> StatsRow:
    key, calls, errors, input_tokens, output_tokens, cost, ttft = aggregate
    p50, p95 = percentiles.get(key, (None, None))
    return StatsRow(
        key=_key_text(group_by, key),
        calls=int(calls),
        errors=int(errors),
        error_rate=errors / calls if calls else None,
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cost_usd=float(cost),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        ttft_avg_ms=ttft,
    )


_EMPTY: Final = (None, 0, 0, 0, 0, 0.0, None)


def stats_result(
    query: StatsQuery,
    totals: tuple[Iterable[tuple[Any, ...]], Iterable[tuple[Any, ...]]],
    groups: tuple[Iterable[tuple[Any, ...]], Iterable[tuple[Any, ...]]] | None,
) -> StatsResult:
    """Assemble the rows of :func:`aggregate_sql` and :func:`percentile_sql` (for the totals,
    and for the groups unless ``group_by`` is none)."""
    total_rows = list(totals[0]) or [_EMPTY]
    total_pct = {row[0]: (row[1], row[2]) for row in totals[1]}
    total = _row(GroupBy.NONE, total_rows[0], total_pct)
    if groups is None:
        return StatsResult(query.group_by, total, (), False)
    aggregates = list(groups[0])
    truncated = len(aggregates) > MAX_GROUPS
    pct = {row[0]: (row[1], row[2]) for row in groups[1]}
    rows = tuple(_row(query.group_by, row, pct) for row in aggregates[:MAX_GROUPS])
    if query.group_by.bucket_ns is not None:
        rows = tuple(reversed(rows))  # newest MAX_GROUPS buckets, returned oldest first
    return StatsResult(query.group_by, total, rows, truncated)
