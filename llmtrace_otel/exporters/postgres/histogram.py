"""The rollup's latency histograms as PostgreSQL stores them: a compact ``bigint[]``.

The buckets are those of ``sqlite/histogram.py`` (256 log-spaced buckets, 4.9 % relative
error). A stored histogram is ``{low, c_low, c_low+1, ..., c_high}``: the lowest non-empty
bucket, then the counts from it to the highest non-empty one (a typical hour of one model
spans 30-40 buckets), so a week of hourly rows stays small. ``llmtrace_hist_merge`` (created
by the schema, plain SQL) adds two such arrays inside the rollup's upsert, which is what lets
several instances add to the same row concurrently; negative counts subtract (a re-exported
span's old row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from llmtrace_otel.exporters.sqlite.histogram import from_counts

__all__ = ["MERGE_FUNCTION", "compact", "value_of"]

#: ``llmtrace_hist_merge(a, b)``: the bucket-wise sum of two compact histograms.
MERGE_FUNCTION: Final = """
CREATE FUNCTION llmtrace_hist_merge(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
  WHEN coalesce(cardinality(a), 0) < 2 THEN b
  WHEN coalesce(cardinality(b), 0) < 2 THEN a
  ELSE (SELECT array_prepend(r.lo, array_agg(
                  CASE WHEN i >= a[1] THEN coalesce(a[i - a[1] + 2], 0) ELSE 0 END
                  + CASE WHEN i >= b[1] THEN coalesce(b[i - b[1] + 2], 0) ELSE 0 END ORDER BY i))
        FROM (SELECT least(a[1], b[1]) AS lo,
                     greatest(a[1] + cardinality(a) - 2, b[1] + cardinality(b) - 2) AS hi) r,
             generate_series(r.lo, r.hi) AS i
        GROUP BY r.lo)
END
$$
"""


def compact(counts: dict[int, int], sign: int = 1) -> list[int]:
    """``bucket -> count`` as a compact array (``sign=-1``: to subtract them)."""
    if not counts:
        return []
    low, high = min(counts), max(counts)
    return [low, *(sign * counts.get(bucket, 0) for bucket in range(low, high + 1))]


def value_of(stored: Sequence[Any] | None) -> int:
    """A stored compact array -> the histogram integer of ``sqlite/histogram.py``."""
    if not stored or len(stored) < 2:
        return 0
    return from_counts(stored[1:]) << (stored[0] * 64)
