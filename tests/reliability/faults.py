"""Faults to inject: a second process holding the SQLite write lock, the database file
swapped for something unwritable, analysis processors that raise or take a second."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan

from llmtrace_processors.chain import EnrichingSpanProcessor, Enrichment

__all__ = ["FaultyEnricher", "sqlite_locked", "sqlite_replaced"]

_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
print("released", flush=True)
"""


@contextmanager
def sqlite_locked(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds ``BEGIN EXCLUSIVE`` on ``db`` until the block ends."""
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert locker.stdout is not None and locker.stdin is not None
    try:
        line = locker.stdout.readline().strip()
        assert line == "locked", f"the locker process said {line!r}"
        yield locker
        locker.stdin.write("\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "released"
    finally:
        if locker.poll() is None:
            locker.stdin.close()
            try:
                locker.wait(10)
            except subprocess.TimeoutExpired:
                locker.kill()
                locker.wait(10)


@contextmanager
def sqlite_replaced(db: Path) -> Iterator[Path]:
    """The database file is moved away and a directory put at its path (nothing can be
    written there, whoever runs the test, root included); restored when the block ends."""
    aside = db.with_name(db.name + ".aside")
    os.replace(db, aside)
    db.mkdir()
    try:
        yield aside
    finally:
        shutil.rmtree(db)
        os.replace(aside, db)


class FaultyEnricher(EnrichingSpanProcessor):
    """An analysis step that works, raises, takes ``slow_s`` per span, or never returns
    (``hang``: until :attr:`unhang` is set), as told."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage
        self.mode = "ok"  # ok | raise | slow | hang
        self.slow_s = 1.0
        self.unhang = threading.Event()
        # Calls made with the fault in place (raised, or slept): after the fault is healed the
        # backlog of queued spans is analysed normally and must not count as calls let through.
        self.faulted_calls = 0
        self._lock = threading.Lock()

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        mode = self.mode
        if mode != "ok":
            with self._lock:
                self.faulted_calls += 1
        if mode == "raise":
            raise RuntimeError(f"{self.stage}: injected analysis bug")
        if mode == "slow":
            time.sleep(self.slow_s)
        if mode == "hang":
            self.unhang.wait(60)
        return Enrichment(attributes={f"{self.stage}.seen": True})
