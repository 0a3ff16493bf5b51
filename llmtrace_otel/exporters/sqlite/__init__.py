"""SQLite span store: the embedded default sink (write side) and its queries (read side).

``SQLiteSpanExporter`` writes one row per span behind a ``BatchSpanProcessor``;
``SpanStore`` reads them back for the CLI and the HTTP API.
"""

from __future__ import annotations

from llmtrace_otel.exporters.sqlite.exporter import SQLiteSpanExporter
from llmtrace_otel.exporters.sqlite.queries import (
    CallRow,
    EventRecord,
    LinkRecord,
    SpanRecord,
    SpanStore,
)
from llmtrace_otel.exporters.sqlite.schema import SCHEMA_VERSION, StoreError

__all__ = [
    "SCHEMA_VERSION",
    "CallRow",
    "EventRecord",
    "LinkRecord",
    "SQLiteSpanExporter",
    "SpanRecord",
    "SpanStore",
    "StoreError",
]
