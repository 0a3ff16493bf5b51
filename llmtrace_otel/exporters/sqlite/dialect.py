"""The SQL differences between the two span stores, for the one read side they share.

The query logic (``sqlite/filters.py``, ``listing.py``, ``stats.py``, ``rollup_stats.py``) is
written once, in SQL both engines run: ``?`` placeholders, row-value comparisons,
``count(*) FILTER (WHERE ...)``, ``NULLS FIRST``. What differs is small and lives here:

- placeholders: SQLite binds ``?``; psycopg binds ``%s`` (and a literal ``%`` is ``%%``);
- index hints: SQLite's planner is told which covering index the stats read
  (``INDEXED BY``); PostgreSQL has no hints and picks it from the statistics;
- the rollup's to-do list of hours (``span_rollup_pending``, filled by the SQLite v3
  backfill) exists in SQLite only: a PostgreSQL store starts with its rollup;
- how a read transaction starts (one snapshot for all statements of a stats answer);
- how a stored latency histogram reads back: an SQLite blob, a PostgreSQL ``bigint[]``;
- the JSON functions that read a span attribute (a listing's ``max_severity``) and unnest a
  span's finding events (``finding_stats.py``), and the
  case-insensitive ``LIKE`` of the text search (SQLite's ``LIKE`` is, PostgreSQL's ``ILIKE``).

This module defines the type and SQLite's; ``exporters/postgres/store.py`` defines
PostgreSQL's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from llmtrace_otel.exporters.sqlite.histogram import decode
from llmtrace_otel.exporters.sqlite.records import sqlite_attribute

__all__ = ["SQLITE", "Dialect"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one engine spells what the shared read side needs."""

    name: str
    #: True: the engine binds ``?``; False: ``%s`` (the statements are rewritten by :meth:`sql`).
    qmark: bool
    #: True: ``INDEXED BY`` hints are allowed (SQLite).
    index_hints: bool
    #: True: ``span_rollup_pending`` exists and may list hours the rollup does not cover yet.
    rollup_pending: bool
    #: The statement that starts a read transaction whose statements see one snapshot.
    begin_read: str
    #: A stored ``latency_hist`` value -> the histogram as one integer (histogram.py).
    histogram: Callable[[Any], int]
    #: FROM-clause item unnesting ``spans.events`` (a JSON array) as rows ``e(value)``.
    unnest_events: str
    #: The SQL of the text at a path of keys in an unnested event ``e.value``.
    event_field: Callable[[tuple[str, ...]], str]
    #: The SQL of one span attribute (a key of the ``attributes`` JSON text).
    attribute: Callable[[str], str]

    def sql(self, text: str) -> str:
        """A statement written with ``?`` placeholders (and SQLite's ASCII case-insensitive
        ``LIKE``), in this engine's parameter style and spelling."""
        if self.qmark:
            return text
        return text.replace(" LIKE ? ", " ILIKE ? ").replace("%", "%%").replace("?", "%s")

    def indexed_by(self, index: str) -> str:
        """`` INDEXED BY index`` where hints exist, else nothing."""
        return f" INDEXED BY {index}" if self.index_hints else ""


def _sqlite_event_field(keys: tuple[str, ...]) -> str:
    path = "".join(f'."{key}"' if "." in key else f".{key}" for key in keys)
    return f"json_extract(e.value, '${path}')"


SQLITE: Final = Dialect("sqlite", qmark=True, index_hints=True, rollup_pending=True,
                        begin_read="BEGIN", histogram=decode,
                        unnest_events="json_each(spans.events) AS e",
                        event_field=_sqlite_event_field, attribute=sqlite_attribute)
# The PostgreSQL dialect is defined by its store (exporters/postgres/store.py).
