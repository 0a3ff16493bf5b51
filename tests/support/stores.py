"""Both span stores for the tests that must give the same answers on each: SQLite (a file in
a temp dir) and PostgreSQL (a new database on the session's throw-away server).

``BACKENDS`` parametrises a fixture; :func:`backend_settings` gives the proxy settings of one,
:func:`open_backend` an exporter and a reader of a fresh store.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExporter

from llmtrace_otel.exporters.postgres.exporter import PostgresSpanExporter
from llmtrace_otel.exporters.postgres.store import PostgresSpanStore
from llmtrace_otel.exporters.sqlite import SpanStore, SQLiteSpanExporter
from llmtrace_otel.exporters.sqlite.queries import SpanReader
from tests.support.postgres_server import PostgresCluster

__all__ = ["BACKENDS", "backend_settings", "new_database", "open_backend"]

BACKENDS = ("sqlite", "postgres")
_names = itertools.count()


@contextlib.contextmanager
def new_database(cluster: PostgresCluster) -> Iterator[str]:
    """A new database on ``cluster`` (its URL), dropped afterwards."""
    name = f"llmtrace_test_{next(_names)}"
    url = cluster.create_database(name)
    try:
        yield url
    finally:
        cluster.drop_database(name)


def _database(request: pytest.FixtureRequest) -> str:
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    context = new_database(cluster)
    url = context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    return url


def backend_settings(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Proxy settings that store spans in a fresh store of ``kind`` (the SQLite file is the
    proxy harness's own)."""
    return {"storage_url": _database(request)} if kind == "postgres" else {}


def open_backend(kind: str, request: pytest.FixtureRequest,
                 directory: Path) -> tuple[SpanExporter, SpanReader]:
    """An exporter and a reader of a fresh store of ``kind``. The PostgreSQL one keeps every
    day (retention 0): the test corpora start in 2026-09."""
    if kind == "postgres":
        url = _database(request)
        store = PostgresSpanStore(url)
        request.addfinalizer(store.close)
        return PostgresSpanExporter(url, retention_days=0), store
    db = directory / "spans.db"
    return SQLiteSpanExporter(db), SpanStore(db)
