"""Aggregates over stored calls: counts, tokens, cost, error rate and latency percentiles.

Everything reads the covering index ``idx_spans_start`` (start time first, then every column
a filter, a grouping or an aggregate reads), never the wide table rows with their JSON, and
the cost grows with the number of calls in the requested time range, not with the size of
the store. One read transaction covers all statements, so the figures agree.

Latency percentiles are exact nearest-rank percentiles of ``duration_ms`` (the smallest value
with at least p of the calls at or below it; rank ``ceil(p * n)``), computed as follows:

- totals: SQL picks the value at the rank itself: ``ORDER BY duration_ms LIMIT 1 OFFSET r-1``
  (ascending for p50, descending for p95). SQLite's sorter keeps only ``OFFSET + 1`` rows for
  that, so this is a bounded sort, not a full one.
- groups: SQL sorts the in-range durations by (group, duration) once and streams them; the
  reader counts rows per group (it knows each group's n from the aggregate statement) and keeps
  only the values at the two ranks, so memory stays O(groups) however many calls are read.

Nothing is sampled or estimated. (SQLite's ``cume_dist()`` window function gives the same
numbers but measured ~2x slower here; see docs/performance.md.)

This is the exact path. ``rollup_stats.py`` answers most queries from the hourly rollup
instead, and falls back to :func:`exact_stats` when it cannot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from llmtrace_otel.exporters.sqlite.dialect import SQLITE, Dialect
from llmtrace_otel.exporters.sqlite.filters import GroupBy, StatsQuery, filter_sql

__all__ = [
    "EXACT",
    "HISTOGRAM",
    "MAX_GROUPS",
    "StatsResult",
    "StatsRow",
    "aggregate_sql",
    "empty_stats",
    "exact_stats",
    "key_text",
    "nearest_ranks",
    "rank_sql",
    "run_stats",
    "sorted_durations_sql",
]

_Connection = Any  # sqlite3.Connection or psycopg.Connection: execute(sql, params) -> cursor

#: Groups returned at most (the largest by calls, or the newest time buckets).
MAX_GROUPS: Final = 1000
#: ``StatsResult.percentiles``: exact nearest-rank values, or read from the rollup's histograms.
EXACT: Final = "exact"
HISTOGRAM: Final = "histogram"
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
    percentiles: str = EXACT  # EXACT or HISTOGRAM (within histogram.RELATIVE_ERROR)

    def as_dict(self) -> dict[str, object]:
        return {
            "group_by": self.group_by.value,
            "totals": self.totals.as_dict(),
            "groups": [group.as_dict() for group in self.groups],
            "truncated": self.truncated,
            "percentiles": self.percentiles,
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


def aggregate_sql(query: StatsQuery, group_by: GroupBy,
                  dialect: Dialect = SQLITE) -> tuple[str, tuple[object, ...]]:
    """Per-group counts and sums, at most ``MAX_GROUPS + 1`` groups (ties on calls: the null
    key first, then keys in byte order, as the rollup path orders them)."""
    where, params = _where(query)
    key = _key_sql(group_by)
    order = "k DESC" if group_by.bucket_ns is not None else "calls DESC, k NULLS FIRST"
    sql = (
        f"SELECT {key} AS k, count(*) AS calls, "
        "count(*) FILTER (WHERE status_code = 'ERROR'), "
        "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
        "coalesce(sum(cost_usd), 0.0), count(duration_ms), coalesce(sum(ttft_ms), 0.0), "
        f"count(ttft_ms) FROM spans{dialect.indexed_by(_INDEX)} WHERE {where} "
        f"GROUP BY k ORDER BY {order} LIMIT {MAX_GROUPS + 1}"
    )
    return sql, tuple(params)


def rank_sql(query: StatsQuery, descending: bool,
             dialect: Dialect = SQLITE) -> tuple[str, tuple[object, ...]]:
    """One duration at a rank (the last bound parameter is the OFFSET)."""
    where, params = _where(query)
    order = "DESC" if descending else "ASC"
    sql = (
        f"SELECT duration_ms FROM spans{dialect.indexed_by(_INDEX)} "
        f"WHERE {where} AND duration_ms IS NOT NULL ORDER BY duration_ms {order} LIMIT 1 OFFSET ?"
    )
    return sql, tuple(params)


def sorted_durations_sql(query: StatsQuery, group_by: GroupBy,
                         dialect: Dialect = SQLITE) -> tuple[str, tuple[object, ...]]:
    """Every in-range ``(group key, duration_ms)``, ordered by key, then duration."""
    where, params = _where(query)
    sql = (
        f"SELECT {_key_sql(group_by)} AS k, duration_ms FROM spans{dialect.indexed_by(_INDEX)} "
        f"WHERE {where} AND duration_ms IS NOT NULL ORDER BY k, duration_ms"
    )
    return sql, tuple(params)


def nearest_ranks(n: int) -> tuple[int, int]:
    """Nearest ranks (1-based) of p50 and p95 among n values: ceil(p * n)."""
    return (n + 1) // 2, (95 * n + 99) // 100


def key_text(group_by: GroupBy, key: Any) -> str | None:
    """The ``key`` of a group as the API shows it (time buckets as RFC 3339 UTC)."""
    if key is None:
        return None
    if group_by.bucket_ns is not None:
        moment = datetime.fromtimestamp(int(key) // 10**9, tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(key)


def _row(group_by: GroupBy, aggregate: tuple[Any, ...], p50: Any, p95: Any) -> StatsRow:
    # int()/float(): PostgreSQL sums integers as numeric (Decimal in Python)
    key, calls, errors, input_tokens, output_tokens, cost, _, ttft_sum, ttft_n = aggregate
    calls, errors, ttft_n = int(calls), int(errors), int(ttft_n)
    return StatsRow(
        key=key_text(group_by, key),
        calls=calls,
        errors=errors,
        error_rate=errors / calls if calls else None,
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cost_usd=float(cost),
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        ttft_avg_ms=float(ttft_sum) / ttft_n if ttft_n else None,
    )


_Row = tuple[Any, ...]
_EMPTY: Final = (None, 0, 0, 0, 0, 0.0, 0, 0.0, 0)


def _one(conn: _Connection, dialect: Dialect, sql: str, params: tuple[object, ...]) -> Any:
    row = conn.execute(dialect.sql(sql), params).fetchone()
    return None if row is None else row[0]


def _totals(conn: _Connection, query: StatsQuery, dialect: Dialect) -> StatsRow:
    sql, params = aggregate_sql(query, GroupBy.NONE, dialect)
    rows = conn.execute(dialect.sql(sql), params).fetchall()
    aggregate = rows[0] if rows else _EMPTY
    n = int(aggregate[6])
    if not n:
        return _row(GroupBy.NONE, aggregate, None, None)
    r50, r95 = nearest_ranks(n)
    sql, params = rank_sql(query, False, dialect)
    p50 = _one(conn, dialect, sql, (*params, r50 - 1))
    sql, params = rank_sql(query, True, dialect)
    p95 = _one(conn, dialect, sql, (*params, n - r95))
    return _row(GroupBy.NONE, aggregate, p50, p95)


def _group_percentiles(conn: _Connection, query: StatsQuery, sizes: dict[Any, int],
                       dialect: Dialect) -> dict[Any, tuple[Any, Any]]:
    wanted = {key: nearest_ranks(n) for key, n in sizes.items() if n}
    found: dict[Any, list[Any]] = {key: [None, None] for key in wanted}
    current: Any = object()
    rank = 0
    ranks: tuple[int, int] | None = None
    sql, params = sorted_durations_sql(query, query.group_by, dialect)
    cursor = conn.execute(dialect.sql(sql), params)
    while batch := cursor.fetchmany(4096):
        for key, value in batch:
            if key != current:
                current, rank, ranks = key, 0, wanted.get(key)
            rank += 1
            if ranks is not None:
                if rank == ranks[0]:
                    found[key][0] = value
                if rank == ranks[1]:
                    found[key][1] = value
    return {key: (p50, p95) for key, (p50, p95) in found.items()}


def run_stats(conn: _Connection, query: StatsQuery, dialect: Dialect = SQLITE) -> StatsResult:
    """Run every statement of ``query`` exactly, in one read transaction on ``conn``."""
    conn.execute(dialect.begin_read)
    try:
        return exact_stats(conn, query, dialect)
    finally:
        conn.execute("COMMIT")


def exact_stats(conn: _Connection, query: StatsQuery, dialect: Dialect = SQLITE) -> StatsResult:
    """The exact answer; run it inside a read transaction so that the statements agree."""
    totals = _totals(conn, query, dialect)
    if query.group_by is GroupBy.NONE:
        return StatsResult(query.group_by, totals, (), False)
    sql, params = aggregate_sql(query, query.group_by, dialect)
    aggregates = conn.execute(dialect.sql(sql), params).fetchall()
    truncated = len(aggregates) > MAX_GROUPS
    aggregates = aggregates[:MAX_GROUPS]
    percentiles = _group_percentiles(conn, query, {row[0]: int(row[6]) for row in aggregates},
                                     dialect)
    rows = tuple(
        _row(query.group_by, row, *percentiles.get(row[0], (None, None))) for row in aggregates
    )
    if query.group_by.bucket_ns is not None:
        rows = tuple(reversed(rows))  # newest MAX_GROUPS buckets, returned oldest first
    return StatsResult(query.group_by, totals, rows, truncated)


def empty_stats(query: StatsQuery) -> StatsResult:
    """The answer for a store that does not exist yet."""
    return StatsResult(query.group_by, _row(GroupBy.NONE, _EMPTY, None, None), (), False)
