"""The SQLite store under faults: kill -9 in the middle of writes, a crash in the middle of a
schema migration, a migration waiting on another process's lock. The file must never be
corrupt (``PRAGMA integrity_check``), committed spans never lost, migrations never half-done."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmtrace_otel.exporters.sqlite.schema import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    connect_writer,
)
from llmtrace_processors.attributes import LLMTRACE_SECURITY_FINDING_EVENT
from tests.reliability.faults import sqlite_locked
from tests.reliability.load import FULL, mix, run_load, stored_spans, wait_until
from tests.reliability.process import ProxyProcess
from tests.support.fake_upstream import FakeUpstream


def _check(db: Path) -> tuple[str, int, int, int]:
    """(integrity_check, application_id, user_version, rows) read by a fresh connection."""
    conn = sqlite3.connect(db)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        return integrity, app_id, version, rows
    finally:
        conn.close()


def _traffic(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        run_load(url, mix(40), concurrency=8)  # outcomes do not matter here


def test_kill_9_during_writes_never_corrupts_the_store(upstream: FakeUpstream,
                                                       tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    committed = 0
    for cycle in range(10 if FULL else 3):
        with ProxyProcess(upstream.url, db) as proxy:
            stop = threading.Event()
            thread = threading.Thread(target=_traffic, args=(proxy.url, stop), daemon=True)
            thread.start()
            # Kill it while batches are being written (well past the previous count).
            wait_until(lambda floor=committed: stored_spans(db) >= floor + 300,  # type: ignore[misc]
                       timeout_s=60, what=f"cycle {cycle}: spans being written")
            proxy.kill()
            stop.set()
            thread.join(30)
        integrity, app_id, version, rows = _check(db)
        assert (integrity, app_id, version) == ("ok", APPLICATION_ID, SCHEMA_VERSION), cycle
        assert rows >= committed + 300  # every batch committed before the kill is there
        committed = rows
    # A clean restart on the same file: everything it answers is stored, exactly once.
    with ProxyProcess(upstream.url, db) as proxy:
        report = run_load(proxy.url, mix(100), concurrency=8)
        report.assert_all_answered()
        assert proxy.terminate() == 0
    assert _check(db) == ("ok", APPLICATION_ID, SCHEMA_VERSION, committed + 100)


_V1_ROW = ("INSERT INTO spans (span_id, trace_id, name, kind, status_code, attributes, events, "
           "links, resource) VALUES (?, ?, 'chat m', 'CLIENT', 'UNSET', '{}', ?, '[]', '{}')")


def _v1_database(path: Path, rows: int) -> None:
    """A store as the first schema version left it, with spans, some with findings."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for statement in MIGRATIONS[0][1]:
        conn.execute(statement)
    finding = json.dumps([{"name": LLMTRACE_SECURITY_FINDING_EVENT, "timestamp_ns": 1,
                           "attributes": {}}])
    for index in range(rows):
        conn.execute(_V1_ROW, (f"{index:016x}", f"{index:032x}",
                               finding if index % 3 == 0 else "[]"))
    conn.execute(f"PRAGMA user_version = {MIGRATIONS[0][0]}")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("COMMIT")
    conn.close()


_CRASHING_MIGRATION = """
import os, sqlite3, sys
from pathlib import Path
from llmtrace_otel.exporters.sqlite.schema import migrate

path, crash_at = Path(sys.argv[1]), sys.argv[2]
conn = sqlite3.connect(path, isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")

def trace(statement):
    if statement.startswith(crash_at):
        os._exit(9)  # the process dies inside the migration's transaction

conn.set_trace_callback(trace)
migrate(conn, path)
print("migrated")
"""


@pytest.mark.parametrize("crash_at", [
    "UPDATE spans SET findings_count",  # after the ALTER TABLE
    "CREATE INDEX idx_spans_findings_start",  # after the backfill and the index rebuild
    "PRAGMA user_version",  # everything done but the version bump
])
def test_a_crash_mid_migration_leaves_the_old_version_intact(tmp_path: Path,
                                                             crash_at: str) -> None:
    db = tmp_path / "spans.db"
    _v1_database(db, 200)
    crashed = subprocess.run([sys.executable, "-c", _CRASHING_MIGRATION, str(db), crash_at],
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 9, crashed.stderr
    assert _check(db) == ("ok", APPLICATION_ID, 1, 200)
    conn = sqlite3.connect(db)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(spans)")}
    conn.close()
    assert "findings_count" not in columns  # nothing of the step survived
    # The next open migrates for real, and a second open writes nothing.
    writer = connect_writer(db)
    counts = writer.execute(
        "SELECT findings_count, count(*) FROM spans GROUP BY findings_count").fetchall()
    writer.close()
    assert dict(counts) == {1: 67, 0: 133}
    before = (db.stat().st_mtime_ns, os.path.getsize(db))
    connect_writer(db).close()
    assert (db.stat().st_mtime_ns, os.path.getsize(db)) == before
    assert _check(db) == ("ok", APPLICATION_ID, SCHEMA_VERSION, 200)


def test_a_migration_waits_out_another_process_lock(tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    _v1_database(db, 10)
    with sqlite_locked(db):
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            connect_writer(db, busy_timeout_ms=100)
        assert _check(db)[2] == 1  # untouched
    connect_writer(db, busy_timeout_ms=100).close()
    assert _check(db) == ("ok", APPLICATION_ID, SCHEMA_VERSION, 10)
