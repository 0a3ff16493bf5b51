"""Write throughput of PostgresSpanExporter: spans per second in batches of 512, COPY against
a multi-row INSERT, on a throw-away local server (tests/support/postgres_server.py, durable
settings: fsync on).

The spans are bench/sqlite_write.py's (attributes like the proxy's). ``--insert`` replaces the
exporter's ``COPY`` by one ``INSERT ... VALUES (...), (...)`` per batch (the same rows, the same
transaction with the rollup upsert): the comparison that chose COPY (docs/performance.md).
``--contended`` runs a CPU-bound Python thread beside the exporter, as the proxy's busy event
loop is. Prints the median of ``--repeat`` runs.

    .venv/bin/python bench/postgres_write.py [--spans 50000] [--repeat 3] [--insert]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: E402
from sqlite_write import make_spans  # noqa: E402

from llmtrace_otel.exporters.postgres import writer  # noqa: E402
from llmtrace_otel.exporters.postgres.exporter import PostgresSpanExporter  # noqa: E402
from llmtrace_otel.exporters.sqlite.exporter import INSERT_COLUMNS  # noqa: E402
from tests.support.postgres_server import PostgresCluster, find_binaries  # noqa: E402


def _insert(conn: Any, rows: Sequence[Sequence[object]]) -> None:
    """The alternative to COPY: one multi-row INSERT per batch."""
    one = f"({', '.join(['%s'] * len(INSERT_COLUMNS))})"
    sql = (f"INSERT INTO spans ({', '.join(INSERT_COLUMNS)}) VALUES "
           + ", ".join([one] * len(rows)))
    conn.execute(sql, [value for row in rows for value in row])


def run_once(url: str, spans: Sequence[Any], batch: int) -> float:
    exporter = PostgresSpanExporter(url, retention_days=0)
    exporter.maintain()
    started = time.perf_counter()
    for offset in range(0, len(spans), batch):
        if exporter.export(spans[offset:offset + batch]) is not SpanExportResult.SUCCESS:
            raise RuntimeError("export failed")
    seconds = time.perf_counter() - started
    exporter.shutdown()
    return len(spans) / seconds


def _spin(stop: threading.Event) -> None:
    total = 0
    while not stop.is_set():
        total += sum(range(1000))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--insert", action="store_true", help="multi-row INSERT, not COPY")
    parser.add_argument("--contended", action="store_true")
    args = parser.parse_args(argv)
    bindir = find_binaries()
    if bindir is None:
        print("no PostgreSQL server installed (make postgresql)", file=sys.stderr)
        return 1
    if args.insert:
        writer._copy = _insert  # type: ignore[assignment]
    spans = make_spans(args.spans)
    stop = threading.Event()
    if args.contended:
        threading.Thread(target=_spin, args=(stop,), daemon=True).start()
    rates = []
    with PostgresCluster(bindir, durable=True) as cluster:
        for run in range(args.repeat):
            url = cluster.create_database(f"bench{run}")
            rates.append(run_once(url, spans, args.batch))
            print(f"run {run + 1}: {rates[-1]:,.0f} spans/s", flush=True)
    stop.set()
    mode = "INSERT" if args.insert else "COPY"
    print(f"{mode}{' contended' if args.contended else ''}: median "
          f"{statistics.median(rates):,.0f} spans/s over {args.spans:,} spans, batches of "
          f"{args.batch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
