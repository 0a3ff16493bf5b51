"""The SQLite exporter as an ``opentelemetry_traces_exporter`` entry point.

``OTEL_TRACES_EXPORTER=llmtrace_sqlite`` (with a configurator, e.g. opentelemetry-distro,
under ``opentelemetry-instrument``) makes the SDK's configurator build this class with no
arguments, so the database file comes from our settings (``sqlite.path``,
``LLMTRACE_SQLITE_PATH``, default ``llmtrace.db``).
"""

from __future__ import annotations

import os

from llmtrace_otel.config import load_settings
from llmtrace_otel.exporters.sqlite import SQLiteSpanExporter

__all__ = ["ENTRY_POINT_NAME", "SettingsSQLiteSpanExporter"]

#: The name to use in ``OTEL_TRACES_EXPORTER``.
ENTRY_POINT_NAME = "llmtrace_sqlite"


class SettingsSQLiteSpanExporter(SQLiteSpanExporter):
    """:class:`SQLiteSpanExporter` whose path defaults to the configured ``sqlite.path``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(load_settings().sqlite_path if path is None else path)
