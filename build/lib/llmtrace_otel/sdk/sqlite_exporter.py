"""The SQLite exporter as an ``opentelemetry_traces_exporter`` entry point.

``OTEL_TRACES_EXPORTER=llmtrace_sqlite`` (with a configurator, e.g. opentelemetry-distro,
under ``opentelemetry-instrument``) makes the SDK's configurator build this class with no
arguments, so the database file comes from our settings (``sqlite.path``,
``LLMTRACE_SQLITE_PATH``, default ``llmtrace.db``).
"""

from __future__ import annotations

import logging
import os

from llmtrace_otel.config import FIELDS, ConfigError, Settings, load_settings
from llmtrace_otel.exporters.sqlite import SQLiteSpanExporter

__all__ = ["ENTRY_POINT_NAME", "SettingsSQLiteSpanExporter"]

_log = logging.getLogger(__name__)

#: The name to use in ``OTEL_TRACES_EXPORTER``.
ENTRY_POINT_NAME = "llmtrace_sqlite"


def _configured_path() -> str:
    try:
        return load_settings().sqlite_path
    except ConfigError as exc:
        # Raising here would stop the configurator, and with it every exporter and
        # instrumentation of the application; this exporter needs one setting only.
        env = next(spec.env for spec in FIELDS if spec.name == "sqlite_path")
        path = os.environ.get(env) or Settings().sqlite_path
        _log.error("invalid llmtrace-otel configuration (%s); the SQLite exporter writes "
                   "to %s", exc, path)
        return path


class SettingsSQLiteSpanExporter(SQLiteSpanExporter):
    """:class:`SQLiteSpanExporter` whose path defaults to the configured ``sqlite.path``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(_configured_path() if path is None else path)
