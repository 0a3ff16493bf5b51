"""SQLiteSpanExporter of this tree against another git revision's, interleaved in one process.

For a change to the writer (such as the hourly rollup of schema v3), machine noise between two
separate runs is larger than the effect. This bench extracts ``llmtrace_otel/`` of
``--baseline`` (default ``main``) with ``git archive`` into a temporary directory, renames the
package to ``llmtrace_baseline`` so both versions import side by side, builds the spans once
(``sqlite_write.make_spans``), and then alternates whole runs (a fresh database each, batches
of ``--batch``) between the two exporters, ``--repeat`` times each, starting with the other one
every second round. It reports spans per second of process CPU time (``time.process_time``:
other processes on the machine affect it less than wall time; SQLite runs on the calling
thread, so the CPU time is the writer's cost) and of wall time, medians, and the median of the
per-round ratios.

    .venv/bin/python bench/sqlite_write_ab.py [--baseline main] [--spans 50000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from sqlite_write import make_spans

from llmtrace_otel.exporters.sqlite import SQLiteSpanExporter

ROOT = Path(__file__).resolve().parents[1]


def _baseline_exporter(revision: str, directory: Path) -> type:
    """The exporter class of ``revision``, imported as ``llmtrace_baseline``."""
    archive = subprocess.run(["git", "archive", revision, "llmtrace_otel"], cwd=ROOT,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    package = directory / "llmtrace_baseline"
    (directory / "llmtrace_otel").rename(package)
    pattern = re.compile(r"\bllmtrace_otel\b")
    for source in package.rglob("*.py"):
        source.write_text(pattern.sub("llmtrace_baseline", source.read_text()))
    sys.path.insert(0, str(directory))
    module = importlib.import_module("llmtrace_baseline.exporters.sqlite")
    return module.SQLiteSpanExporter  # type: ignore[no-any-return]


def _run(exporter_class: type, spans: Sequence[ReadableSpan], batch: int,
         directory: Path) -> tuple[float, float]:
    """(spans per CPU second, spans per wall second) of one run into a fresh database."""
    path = directory / f"run-{time.monotonic_ns()}.db"
    exporter = exporter_class(path)
    cpu, wall = time.process_time(), time.perf_counter()
    for offset in range(0, len(spans), batch):
        if exporter.export(spans[offset:offset + batch]) is not SpanExportResult.SUCCESS:
            raise SystemExit(f"{exporter_class.__module__}: export failed at {offset}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    exporter.shutdown()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return len(spans) / cpu, len(spans) / wall


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision to compare against")
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llmtrace-ab-") as tmp:
        baseline = _baseline_exporter(args.baseline, Path(tmp) / "src")
        print(f"creating {args.spans} spans ...", file=sys.stderr)
        spans = make_spans(args.spans)
        contenders = {args.baseline: baseline, "this tree": SQLiteSpanExporter}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for round_ in range(args.repeat):
            order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
            for name in order:
                results[name].append(_run(contenders[name], spans, args.batch, Path(tmp)))
            load = os.getloadavg()[0]
            print(f"round {round_ + 1}: load {load:.1f}, " + ", ".join(
                f"{name} {results[name][-1][0]:,.0f} spans/CPU-s" for name in contenders),
                file=sys.stderr)
    base, this = results[args.baseline], results["this tree"]
    for label, index in (("CPU", 0), ("wall", 1)):
        ratios = [mine[index] / theirs[index] for mine, theirs in zip(this, base, strict=True)]
        print(f"spans per {label} second: {args.baseline} "
              f"{statistics.median(r[index] for r in base):,.0f}, this tree "
              f"{statistics.median(r[index] for r in this):,.0f}; median ratio "
              f"{statistics.median(ratios):.3f} ({args.repeat} rounds, {args.spans} spans, "
              f"batches of {args.batch})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
