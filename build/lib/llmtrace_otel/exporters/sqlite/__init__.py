"""SQLite span store: the embedded default sink (write side) and its queries (read side).

``SQLiteSpanExporter`` writes one row per span behind a ``BatchSpanProcessor``;
``SpanStore`` reads them back for the CLI and the HTTP API.
"""

from __future__ import annotations

from llmtrace_otel.exporters.sqlite.exporter import SQLiteSpanExporter
from llmtrace_otel.exporters.sqlite.filters import (
    CallFilter,
    Cursor,
    GroupBy,
    ListQuery,
    QueryError,
    StatsQuery,
    parse_list_query,
    parse_stats_query,
)
from llmtrace_otel.exporters.sqlite.findings import FindingView
from llmtrace_otel.exporters.sqlite.queries import (
    CallPage,
    CallRow,
    EventRecord,
    LinkRecord,
    SpanRecord,
    SpanStore,
    TraceRecord,
)
from llmtrace_otel.exporters.sqlite.schema import SCHEMA_VERSION, StoreError
from llmtrace_otel.exporters.sqlite.stats import StatsResult, StatsRow

__all__ = [
    "SCHEMA_VERSION",
    "CallFilter",
    "CallPage",
    "CallRow",
    "Cursor",
    "EventRecord",
    "FindingView",
    "GroupBy",
    "LinkRecord",
    "ListQuery",
    "QueryError",
    "SQLiteSpanExporter",
    "SpanRecord",
    "SpanStore",
    "StatsQuery",
    "StatsResult",
    "StatsRow",
    "StoreError",
    "TraceRecord",
    "parse_list_query",
    "parse_stats_query",
]
