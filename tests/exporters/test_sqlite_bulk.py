"""insert_rows: the same rows as executemany, in few statements (each one GIL hand-off)."""

from __future__ import annotations

import sqlite3

import pytest

from llmtrace_otel.exporters.sqlite.bulk import MAX_ROWS_PER_STATEMENT, insert_rows

HEAD = "INSERT INTO t (a, b, c)"


def _table() -> tuple[sqlite3.Connection, list[str]]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c REAL)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    return conn, statements


def _row_counts(statements: list[str]) -> list[int]:
    """Rows per INSERT statement run (the trace shows them with the values bound)."""
    return [s.count("), (") + 1 for s in statements if s.startswith("INSERT")]


@pytest.mark.parametrize(("count", "chunks"), [
    (1, [1]),
    (3, [2, 1]),
    (MAX_ROWS_PER_STATEMENT, [MAX_ROWS_PER_STATEMENT]),
    (300, [256, 32, 8, 4]),
    (511, [256, 128, 64, 32, 16, 8, 4, 2, 1]),
    (1300, [256] * 5 + [16, 4]),
])
def test_every_row_goes_in_power_of_two_chunks(count: int, chunks: list[int]) -> None:
    conn, statements = _table()
    rows = [(i, f"row {i}", i / 3) for i in range(count)]
    insert_rows(conn, HEAD, 3, rows)
    assert conn.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == rows
    assert _row_counts(statements) == chunks


def test_batches_of_any_size_prepare_few_distinct_statements() -> None:
    """Each distinct statement stays in the connection's cache (MBs for wide rows)."""
    conn, statements = _table()
    for count in range(1, 513):
        insert_rows(conn, HEAD, 3, [(None, "x", 0.0)] * count)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (512 * 513 // 2,)
    assert len({s for s in statements if s.startswith("INSERT")}) == 9


def test_chunks_to_the_builds_bound_variable_limit() -> None:
    conn, statements = _table()
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)  # 3 rows of 3 columns a statement
    rows = [(i, None, None) for i in range(10)]
    insert_rows(conn, HEAD, 3, rows)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (10,)
    assert _row_counts(statements) == [2, 2, 2, 2, 2]


def test_a_tail_clause_applies_to_every_row() -> None:
    conn, _ = _table()
    insert_rows(conn, HEAD, 3, [(1, "x", 1.0), (2, "y", 2.0)])
    insert_rows(conn, HEAD, 3, [(1, "x", 10.0), (3, "z", 3.0)],
                " ON CONFLICT (a) DO UPDATE SET c = c + excluded.c")
    assert conn.execute("SELECT a, c FROM t ORDER BY a").fetchall() == [
        (1, 11.0), (2, 2.0), (3, 3.0)]


def test_a_constraint_failure_aborts_the_statement_for_the_transaction_to_roll_back() -> None:
    conn, _ = _table()
    conn.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(conn, HEAD, 3, [(1, "a", 0.0), (2, "b", 0.0), (1, "again", 0.0)])
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_rows_of_the_wrong_width_are_refused_with_the_statement_named() -> None:
    conn, _ = _table()
    with pytest.raises(ValueError, match="every row must have 3 values"):
        insert_rows(conn, HEAD, 3, [(1, "a")])
    insert_rows(conn, HEAD, 3, [])
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
