"""Daily partitions of ``spans``: created ahead of time, dropped for retention.

Each UTC day is a partition ``spans_pYYYYMMDD`` holding ``[midnight, next midnight)`` in
``start_time_ns``. :func:`maintain` (run by every instance at start and hourly, under an
advisory lock so that instances never race) makes sure yesterday, today and the next
:data:`DAYS_AHEAD` days exist, and drops the partitions older than the retention:

- **Ahead of time.** A batch never waits for DDL: its days exist already. A span outside
  every partition (no start time, a clock far off, a replay of old spans) lands in
  ``spans_default``; when its day's partition is created later, its rows move there first.
- **Retention without bloat.** Dropping a partition frees its files at once: no ``DELETE``,
  no dead tuples, no vacuum debt (the growth LiteLLM's DELETE-based retention suffered from).
  The rollup's hours of the dropped days and old rows of the default partition go in the same
  transaction, so stats never count spans that are gone.

Daily partitions: a week of listings touches 7-8 of them, and at the volumes measured
(docs/performance.md) a day is one to a few GB, which a ``DROP`` frees instantly.
DDL waits at most :data:`LOCK_TIMEOUT` for a lock (a long reader holds one): it is then tried
again at the next run rather than queueing the writers behind it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg import sql

__all__ = [
    "DAYS_AHEAD",
    "LOCK_TIMEOUT",
    "MAINTENANCE_LOCK",
    "MaintenanceResult",
    "day_bounds",
    "maintain",
    "partition_name",
]

_log = logging.getLogger(__name__)
DAYS_AHEAD: Final = 3
LOCK_TIMEOUT: Final = "2s"
#: ``pg_advisory_xact_lock`` key of partition maintenance ("LLMU").
MAINTENANCE_LOCK: Final = 0x4C4C4D55
_DAY_NS: Final = 86400 * 10**9
_NAME = re.compile(r"^spans_p(\d{8})$")
_EPOCH: Final = date(1970, 1, 1)
_Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class MaintenanceResult:
    created: tuple[str, ...]
    dropped: tuple[str, ...]


def partition_name(day: date) -> str:
    return f"spans_p{day:%Y%m%d}"


def day_bounds(day: date) -> tuple[int, int]:
    """``[start, end)`` of a UTC day in ns since the epoch."""
    start = (day - _EPOCH).days * _DAY_NS
    return start, start + _DAY_NS


def _existing(conn: _Connection) -> dict[date, str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'spans'::regclass").fetchall()
    days: dict[date, str] = {}
    for (name,) in rows:
        match = _NAME.match(name)
        if match:
            days[datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return days


def _create(conn: _Connection, day: date) -> None:
    """Create ``day``'s partition, moving its rows out of the default partition first (a
    partition cannot be attached while the default holds rows of its range)."""
    name = sql.Identifier(partition_name(day))
    start, end = day_bounds(day)
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE spans INCLUDING DEFAULTS INCLUDING "
                         "CONSTRAINTS)").format(name))
    conn.execute(sql.SQL("WITH moved AS (DELETE FROM spans_default WHERE start_time_ns >= %s "
                         "AND start_time_ns < %s RETURNING *) INSERT INTO {} SELECT * FROM "
                         "moved").format(name), (start, end))
    conn.execute(sql.SQL("ALTER TABLE spans ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})")
                 .format(name, sql.Literal(start), sql.Literal(end)))


def _drop_before(conn: _Connection, cutoff: date, existing: dict[date, str]) -> list[str]:
    cutoff_ns = day_bounds(cutoff)[0]
    dropped = []
    for day, name in sorted(existing.items()):
        if day < cutoff:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped.append(name)
    conn.execute("DELETE FROM spans_default WHERE start_time_ns < %s", (cutoff_ns,))
    conn.execute("DELETE FROM span_rollup WHERE hour_ns < %s", (cutoff_ns,))
    return dropped


def maintain(conn: _Connection, *, retention_days: int, today: date | None = None,
             days_ahead: int = DAYS_AHEAD) -> MaintenanceResult:
    """Create the partitions from yesterday to ``today + days_ahead`` and, when
    ``retention_days`` > 0, drop everything that started before ``today - retention_days``.

    One transaction under the maintenance lock; ``conn`` in autocommit mode, migrated.
    """
    today = today or datetime.now(UTC).date()
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MAINTENANCE_LOCK,))
        existing = _existing(conn)
        first = today - timedelta(days=1)
        if retention_days > 0:
            first = max(first, today - timedelta(days=retention_days))
        created = []
        for offset in range((today + timedelta(days=days_ahead) - first).days + 1):
            day = first + timedelta(days=offset)
            if day not in existing:
                _create(conn, day)
                created.append(partition_name(day))
        dropped = (_drop_before(conn, today - timedelta(days=retention_days), existing)
                   if retention_days > 0 else [])
    if created or dropped:
        _log.info("span store partitions: created %s; dropped %s (retention %s days)",
                  ", ".join(created) or "none", ", ".join(dropped) or "none",
                  retention_days or "unlimited")
    return MaintenanceResult(tuple(created), tuple(dropped))
