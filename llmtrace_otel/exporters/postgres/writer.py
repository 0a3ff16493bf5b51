"""One batch of span rows into PostgreSQL: ``COPY`` into ``spans`` and the rollup's upsert, in
one transaction.

Rows are the SQLite exporter's (``sqlite/exporter.py``: the same columns, built by the same
code), so both stores hold the same values.

- **COPY.** The rows go in with ``COPY spans (...) FROM STDIN``: one statement streamed in
  one round trip, parsed by the server in bulk (bench/postgres_write.py measured it against
  multi-row ``INSERT``; docs/performance.md).
- **Rollup.** The batch is aggregated in Python (``RollupBatch``, the SQLite store's code) and
  added with ``INSERT ... ON CONFLICT DO UPDATE``, histograms merged in SQL
  (``llmtrace_hist_merge``), rows sorted by key so that two instances adding to the same
  hours lock them in the same order (no deadlock). Several instances write at once: the upsert
  is what makes their additions add up.
- **Re-exports.** A span whose (span id, start time) is stored already makes the ``COPY``
  fail; the batch is then written again in a new transaction that deletes the stored copies
  first and subtracts them from the rollup (negative counts), so the last copy wins and each
  span is counted once, as in the SQLite store.
- **Bad values.** PostgreSQL text cannot hold NUL characters, a Python string may hold lone
  surrogates and an integer attribute may not fit in ``bigint``: a batch refused for such a
  value (a data error) is written again with those values cleaned (NUL and unencodable
  characters become U+FFFD, out-of-range integers NULL) rather than lost. Clean batches
  never pay for the check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import psycopg
from psycopg import errors

from llmtrace_otel.exporters.postgres.histogram import compact
from llmtrace_otel.exporters.sqlite.exporter import INSERT_COLUMNS, ROLLUP_SOURCE
from llmtrace_otel.exporters.sqlite.rollup import ROLLUP_COLUMNS, SOURCE_COLUMNS, RollupBatch

__all__ = ["COPY_SQL", "clean_rows", "write_batch"]

_Row = Sequence[object]
_Connection = psycopg.Connection[Any]

COPY_SQL: Final = f"COPY spans ({', '.join(INSERT_COLUMNS)}) FROM STDIN"
_SPAN_ID: Final = INSERT_COLUMNS.index("span_id")
_START: Final = INSERT_COLUMNS.index("start_time_ns")
_KEY: Final = ROLLUP_COLUMNS[:ROLLUP_COLUMNS.index("calls")]
_SUMS: Final = tuple(name for name in ROLLUP_COLUMNS if name not in _KEY)
_HIST: Final = ROLLUP_COLUMNS.index("latency_hist")
_UPSERT: Final = (
    f"INSERT INTO span_rollup ({', '.join(ROLLUP_COLUMNS)}) VALUES "
    f"({', '.join(['%s'] * len(ROLLUP_COLUMNS))}) ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(
        f"{name} = llmtrace_hist_merge(span_rollup.{name}, excluded.{name})"
        if name == "latency_hist" else f"{name} = span_rollup.{name} + excluded.{name}"
        for name in _SUMS)
)
_DELETE_STORED: Final = (
    "DELETE FROM spans WHERE (span_id, start_time_ns) IN "
    "(SELECT * FROM unnest(%s::text[], %s::bigint[])) "
    f"RETURNING {', '.join(SOURCE_COLUMNS)}"
)
_INT64: Final = (-(2**63), 2**63 - 1)


def _key_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Sort key of a rollup row: its key columns, NULL before any text."""
    return tuple((value is not None, value if value is not None else "")
                 for value in row[:len(_KEY)])


def _negated(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A rollup row that subtracts ``row`` (its histogram is negated already)."""
    return tuple(value if index < len(_KEY) or index == _HIST else -value
                 for index, value in enumerate(row))


def _rollup_rows(rows: Iterable[_Row], sign: int = 1) -> list[tuple[Any, ...]]:
    batch = RollupBatch()
    batch.add(rows)
    out = batch.rows(histogram=lambda counts: compact(counts, sign), missing=None)
    if sign < 0:
        out = [_negated(row) for row in out]
    out.sort(key=_key_order)
    return out


def _upsert(conn: _Connection, rollup: list[tuple[Any, ...]]) -> None:
    if rollup:
        with conn.cursor() as cursor:
            cursor.executemany(_UPSERT, rollup)  # pipelined: one round trip


def _copy(conn: _Connection, rows: Sequence[_Row]) -> None:
    with conn.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        for row in rows:
            copy.write_row(row)


def _replace_stored(conn: _Connection, rows: Sequence[_Row]) -> list[_Row]:
    """Keep the last copy of each span in the batch, delete the stored copies and take them
    out of the rollup; returns the rows to insert."""
    latest = {(row[_SPAN_ID], row[_START]): row for row in rows}
    keys = [key for key in latest if key[1] is not None]
    if keys:
        deleted = conn.execute(_DELETE_STORED, ([k[0] for k in keys],
                                                [k[1] for k in keys])).fetchall()
        _upsert(conn, _rollup_rows(deleted, sign=-1))
        conn.execute("DELETE FROM span_rollup WHERE calls <= 0")
    return list(latest.values())


def write_batch(conn: _Connection, rows: Sequence[_Row]) -> None:
    """Store ``rows`` (``INSERT_COLUMNS`` order) and their rollup; ``conn`` in autocommit mode.

    Raises psycopg errors (the batch is then not stored at all).
    """
    try:
        with conn.transaction():
            _copy(conn, rows)
            _upsert(conn, _rollup_rows(map(ROLLUP_SOURCE, rows)))
        return
    except errors.UniqueViolation:
        pass  # a span stored already, or twice in the batch: the slow path below
    with conn.transaction():
        rows = _replace_stored(conn, rows)
        _copy(conn, rows)
        _upsert(conn, _rollup_rows(map(ROLLUP_SOURCE, rows)))


def _clean(value: object) -> object:
    if value.__class__ is str:
        text: str = value  # type: ignore[assignment]
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
        return text
    if value.__class__ is int and not _INT64[0] <= value <= _INT64[1]:  # type: ignore[operator]
        return None
    return value


def clean_rows(rows: Sequence[_Row]) -> list[tuple[object, ...]]:
    """``rows`` with the values PostgreSQL refuses replaced (see the module docstring)."""
    return [tuple(_clean(value) for value in row) for row in rows]
