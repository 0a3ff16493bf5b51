"""Which span store this process uses, built in one place for the pipeline, the API and the CLI.

``storage.url`` set to a ``postgresql://`` URL selects the PostgreSQL store that several
instances share (``exporters/postgres/``); unset keeps the embedded SQLite store at
``sqlite.path``. ``sqlite.enabled=false`` turns the store off, whichever it is. Both stores
have the same columns, the same read side (:class:`~llmtrace_otel.exporters.sqlite.queries.
SpanReader`) and so the same API, viewer and CLI answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from opentelemetry.sdk.trace.export import SpanExporter

from llmtrace_otel.exporters.sqlite.queries import SpanReader

if TYPE_CHECKING:
    from llmtrace_otel.config import Settings

__all__ = ["POSTGRES", "SQLITE", "StoreExporter", "open_store", "store_backend", "store_exporter"]

SQLITE: Final = "sqlite"
POSTGRES: Final = "postgres"

_Operation = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class StoreExporter:
    """The span exporter of the configured store and its name (the export sink's: drop
    counters ``stage="export.<name>"``, ``/health`` ``exporter.<name>``, breaker)."""

    name: str
    exporter: SpanExporter


def store_backend(settings: Settings) -> str | None:
    """``"postgres"``, ``"sqlite"``, or None when the store is off."""
    if not settings.sqlite_enabled:
        return None
    return POSTGRES if settings.storage_url else SQLITE


def _url(settings: Settings) -> str:
    assert settings.storage_url is not None  # store_backend() is POSTGRES
    return settings.storage_url


def store_exporter(settings: Settings, *,
                   on_operation: _Operation | None = None) -> StoreExporter | None:
    """The span exporter of the configured store (None when off). A PostgreSQL exporter
    starts its maintenance thread now (schema, partitions), so ``/health`` knows the state
    of the database from the start."""
    backend = store_backend(settings)
    if backend is None:
        return None
    if backend == POSTGRES:
        from llmtrace_otel.exporters.postgres.exporter import PostgresSpanExporter

        exporter = PostgresSpanExporter(_url(settings),
                                        retention_days=settings.storage_retention_days,
                                        retry_s=settings.storage_retry_s,
                                        on_operation=on_operation)
        exporter.start()
        return StoreExporter(POSTGRES, exporter)
    from llmtrace_otel.exporters.sqlite import SQLiteSpanExporter

    return StoreExporter(SQLITE, SQLiteSpanExporter(
        settings.sqlite_path, on_operation=on_operation,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms))


def open_store(settings: Settings, *, on_operation: _Operation | None = None,
               sqlite_path: str | None = None) -> SpanReader | None:
    """The read side of the configured store (None when off); ``sqlite_path`` (the CLI's
    ``--db``) reads that SQLite file whatever is configured. Does no I/O until queried;
    :meth:`SpanReader.close` releases it."""
    if sqlite_path is None and store_backend(settings) == POSTGRES:
        from llmtrace_otel.exporters.postgres.store import PostgresSpanStore

        return PostgresSpanStore(_url(settings), pool_size=settings.storage_pool_size,
                                 on_operation=on_operation)
    if sqlite_path is None and store_backend(settings) is None:
        return None
    from llmtrace_otel.exporters.sqlite import SpanStore

    return SpanStore(sqlite_path or settings.sqlite_path, on_operation=on_operation)
