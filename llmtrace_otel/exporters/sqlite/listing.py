"""SQL of the newest-first call listing (keyset pagination) and of one trace's spans.

Pagination is a keyset, done in SQL: calls are ordered by ``(start_time_ns, span_id)``
descending, and the next page continues strictly below the last row of the previous one with
a row-value comparison, so a deep page costs the same as the first (no ``OFFSET``, nothing
held in memory) and calls stored while a client pages do not shift or repeat rows. Each
filtered listing walks an index on ``start_time_ns`` (alone, after the filtered column, or a
partial index for errors / findings / scored spans) and stops after ``limit + 1`` rows; the
extra row only tells whether there is a next page. A model filter walks two indexes, by
request and by response model (:func:`list_sql`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from llmtrace_otel.exporters.sqlite.filters import Cursor, ListQuery, filter_sql

__all__ = ["MAX_TRACE_SPANS", "list_sql", "trace_sql"]

#: A trace returns at most this many spans (oldest first); the rest are reported as cut off.
MAX_TRACE_SPANS: Final = 1000


def list_sql(query: ListQuery, columns: Sequence[str]) -> tuple[str, tuple[object, ...]]:
    """The statement for one page: ``limit + 1`` rows of ``columns``, newest first.

    The ``model`` filter (request *or* response model) is answered as the union of two
    listings that each walk their own index in order and stop after ``limit + 1`` rows, one
    by request model and one by response model (an ``OR`` would make SQLite collect and sort
    every matching call).
    """
    if query.filter.model is None:
        return _page_sql(query, columns)
    model = query.filter.model
    by_request, request_params = _page_sql(
        replace(query, filter=replace(query.filter, model=None)), columns,
        extra=("request_model = ?", model))
    by_response, response_params = _page_sql(
        replace(query, filter=replace(query.filter, model=None)), columns,
        extra=("response_model = ?", model))
    names = ", ".join(column.rsplit(" AS ", 1)[-1] for column in columns)
    sql = (f"SELECT {names} FROM ({by_request}) UNION SELECT {names} FROM ({by_response}) "
           "ORDER BY start_time_ns DESC, span_id DESC LIMIT ?")
    return sql, (*request_params, *response_params, query.limit + 1)


def _page_sql(query: ListQuery, columns: Sequence[str],
              extra: tuple[str, object] | None = None) -> tuple[str, tuple[object, ...]]:
    where, params = filter_sql(query.filter)
    # Every finished span has a start time; the term also keeps NULLs out of the keyset.
    where.insert(0, "start_time_ns IS NOT NULL")
    if extra is not None:
        where.append(extra[0])
        params.append(extra[1])
    cursor: Cursor | None = query.cursor
    if cursor is not None:
        where.append("(start_time_ns, span_id) < (?, ?)")
        params.extend((cursor.start_time_ns, cursor.span_id))
    sql = (
        f"SELECT {', '.join(columns)} FROM spans WHERE {' AND '.join(where)} "
        "ORDER BY start_time_ns DESC, span_id DESC LIMIT ?"
    )
    params.append(query.limit + 1)
    return sql, tuple(params)


def trace_sql(columns: Sequence[str]) -> str:
    """The spans of one trace (bound parameter: the trace id), oldest first, at most
    ``MAX_TRACE_SPANS + 1`` rows."""
    return (
        f"SELECT {', '.join(columns)} FROM spans WHERE trace_id = ? "
        f"ORDER BY start_time_ns, span_id LIMIT {MAX_TRACE_SPANS + 1}"
    )
