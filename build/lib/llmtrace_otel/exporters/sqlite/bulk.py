"""Multi-row ``INSERT`` statements: many rows per SQLite step, so the GIL is given up rarely.

``sqlite3.Connection.executemany`` runs one ``sqlite3_step`` per row and releases the GIL
around each. A thread that gives up the GIL waits for it back until the thread holding it
reaches the interpreter's switch interval (5 ms): with the proxy's event loop busy, the
exporter thread got one row in per hand-off. Measured (``bench/sqlite_write.py
--contended``): ~25,000 spans/s alone but ~145 spans/s beside one CPU-bound thread with
``executemany``, against thousands with :func:`insert_rows`. An ``INSERT ... VALUES
(...), (...), ...`` of ``n`` rows is one step: the rows go in with one release per
statement instead of one per row, and the result is the same (a constraint failure aborts
the statement, which the caller's transaction rolls back as before).

Statement sizes are powers of two (a batch of 300 rows is 256 + 32 + 8 + 4): a prepared
statement of 512 rows of the exporter's 37 columns holds ~3 MB, and the connection's
statement cache keeps up to 128 of them, so one statement per batch size seen (batches vary
from 1 to 512 rows) grew the proxy's memory by tens of MB. With powers of two at most nine
sizes exist (~3 MB in all) and a batch takes at most nine statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

__all__ = ["MAX_ROWS_PER_STATEMENT", "insert_rows"]

#: Rows per statement at most (a power of two); fewer when the build's bound-variable limit
#: is lower.
MAX_ROWS_PER_STATEMENT: Final = 256


@lru_cache(maxsize=64)
def _statement(head: str, width: int, rows: int, tail: str) -> str:
    one = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([one] * rows)}{tail}"


def _rows_per_statement(conn: sqlite3.Connection, width: int) -> int:
    """The largest power of two of rows, up to the maximum, whose values the build can bind."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    fits = max(1, min(MAX_ROWS_PER_STATEMENT, limit // max(1, width)))
    return 1 << (fits.bit_length() - 1)


def insert_rows(
    conn: sqlite3.Connection,
    head: str,
    width: int,
    rows: Sequence[Sequence[object]],
    tail: str = "",
) -> None:
    """Run ``{head} VALUES (?, ...), ... {tail}`` over ``rows``, as few statements as fit.

    ``head`` is ``INSERT INTO table (columns)``, ``width`` the number of columns, ``tail`` an
    optional clause after the values (``ON CONFLICT ... DO UPDATE``). Rows go in the order
    given, in chunks of the largest power of two that fits what is left.
    """
    step = _rows_per_statement(conn, width)
    offset = 0
    while offset < len(rows):
        left = len(rows) - offset
        size = step if left >= step else 1 << (left.bit_length() - 1)
        chunk = rows[offset : offset + size]
        offset += size
        params = [value for row in chunk for value in row]
        if len(params) != width * len(chunk):
            raise ValueError(f"every row must have {width} values for {head!r}")
        conn.execute(_statement(head, width, len(chunk), tail), params)
