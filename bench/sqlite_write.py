"""Write throughput of SQLiteSpanExporter: spans per second in batches of 512.

Creates ``--spans`` finished GenAI spans with a real TracerProvider (attributes like the
proxy's: provider, models, usage, TTFC, server, HTTP status, cost, tenant; every 10th one
an error, every 4th one an event), then times ``SQLiteSpanExporter.export`` on them batch by
batch into a fresh database in a temporary directory, the way a BatchSpanProcessor calls it.
Span creation is not timed. Prints the median of ``--repeat`` runs, and for each run the
rate in each fifth of it: the rate falls as the database grows, because every span adds
one entry at a random place in the span_id and trace_id indexes.

``--contended`` runs a CPU-bound Python thread beside the exporter for the whole run, as the
proxy's busy event loop is: every time the exporter gives up the GIL (each SQLite step), it
waits until that thread reaches the switch interval, so the rate measures how often the
exporter hands the GIL over, not SQLite (``llmtrace_otel/exporters/sqlite/bulk.py``).

``--writers N`` has N processes export their share of the spans into the same database at
once (WAL, ``sqlite.busy_timeout_ms``): what N relay workers each writing their own spans
would do, against the one writer of ``server.workers`` (docs/architecture.md, Processes). It
reports the total rate and the batches that failed (``SQLITE_BUSY`` past the timeout).

    .venv/bin/python bench/sqlite_write.py [--spans 100000] [--batch 512] [--repeat 3]
    .venv/bin/python bench/sqlite_write.py --spans 20000 --contended
    .venv/bin/python bench/sqlite_write.py --spans 40000 --writers 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmtrace_otel.exporters.sqlite import SpanStore, SQLiteSpanExporter
from llmtrace_processors.attributes import LLMTRACE_API, LLMTRACE_COST_USD, LLMTRACE_TENANT_ID


def make_spans(count: int) -> Sequence[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("llmtrace_otel.proxy", "0.1.0")
    models = ("gpt-4o-mini", "gpt-4.1", "claude-sonnet-4-5", "claude-haiku-4-5")
    for i in range(count):
        model = models[i % len(models)]
        span = tracer.start_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes={
                SERVER_ADDRESS: "api.example.com",
                SERVER_PORT: 443,
                HTTP_REQUEST_METHOD: "POST",
                LLMTRACE_API: "chat.completions",
                GEN_AI_OPERATION_NAME: "chat",
                GEN_AI_PROVIDER_NAME: "anthropic" if model.startswith("claude") else "openai",
                GEN_AI_REQUEST_MODEL: model,
                GEN_AI_REQUEST_STREAM: i % 2 == 0,
                GEN_AI_REQUEST_TEMPERATURE: 0.2,
                GEN_AI_REQUEST_MAX_TOKENS: 1024,
                LLMTRACE_TENANT_ID: f"tenant-{i % 7}",
            },
        )
        attributes = {
            HTTP_RESPONSE_STATUS_CODE: 200,
            GEN_AI_RESPONSE_ID: f"chatcmpl-{i:012d}",
            GEN_AI_RESPONSE_MODEL: f"{model}-2025-01-01",
            GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
            GEN_AI_USAGE_INPUT_TOKENS: 100 + i % 900,
            GEN_AI_USAGE_OUTPUT_TOKENS: 20 + i % 300,
            GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: i % 64,
            GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.05 + (i % 100) / 1000,
            LLMTRACE_COST_USD: 0.000125 * (1 + i % 13),
        }
        if i % 4 == 0:
            span.add_event("llmtrace.security.finding", {"kind": "pii.email", "score": 0.8})
        if i % 10 == 0:
            attributes[HTTP_RESPONSE_STATUS_CODE] = 429
            attributes[ERROR_TYPE] = "rate_limit_exceeded"
            span.set_status(Status(StatusCode.ERROR, "rate_limit_exceeded"))
        span.set_attributes(attributes)
        span.end()
    provider.shutdown()
    return memory.get_finished_spans()


def run_once(
    spans: Sequence[ReadableSpan], batch: int, directory: Path
) -> tuple[float, list[float]]:
    """Overall spans/s, and spans/s in each fifth of the run (the database grows).

    A short last window holds what rounding left over."""
    path = directory / "bench.db"
    exporter = SQLiteSpanExporter(path)
    fifth = max(len(spans) // 5, 1)
    windows: list[float] = []
    started = window_start = time.perf_counter()
    window_spans = 0
    for offset in range(0, len(spans), batch):
        chunk = spans[offset : offset + batch]
        if exporter.export(chunk) is not SpanExportResult.SUCCESS:
            raise SystemExit(f"export failed at offset {offset}")
        window_spans += len(chunk)
        if window_spans >= fifth:
            now = time.perf_counter()
            windows.append(window_spans / (now - window_start))
            window_start, window_spans = now, 0
    elapsed = time.perf_counter() - started
    if window_spans:
        windows.append(window_spans / (time.perf_counter() - window_start))
    exporter.shutdown()
    stored = SpanStore(path).count()
    if stored != len(spans):
        raise SystemExit(f"stored {stored} spans, expected {len(spans)}")
    return len(spans) / elapsed, windows


def _write_share(args: tuple[int, int, int, str, float]) -> tuple[int, int]:
    """One writer process: make its spans, wait for the common start time, export them in
    batches; (failed batches, spans written)."""
    count, batch, _index, path, start_at = args
    spans = make_spans(count)
    exporter = SQLiteSpanExporter(path)
    while time.time() < start_at:
        time.sleep(0.001)
    failed = written = 0
    for offset in range(0, len(spans), batch):
        chunk = spans[offset : offset + batch]
        if exporter.export(chunk) is SpanExportResult.SUCCESS:
            written += len(chunk)
        else:
            failed += 1
    exporter.shutdown()
    return failed, written


def run_writers(total: int, batch: int, writers: int, directory: Path) -> tuple[float, int]:
    """``writers`` processes writing ``total`` spans into one database at once: total
    spans/s from the common start to the last one done, and the failed batches."""
    path = str(directory / "bench.db")
    SQLiteSpanExporter(path).shutdown()  # the schema, before the writers race for it
    share = total // writers
    start_at = time.time() + 3.0 + writers  # after every writer has made its spans
    context = multiprocessing.get_context("spawn")
    with context.Pool(writers) as pool:
        results = pool.map(_write_share,
                           [(share, batch, index, path, start_at) for index in range(writers)])
    elapsed = time.time() - start_at
    failed = sum(result[0] for result in results)
    written = sum(result[1] for result in results)
    stored = SpanStore(path).count()
    if stored != written:
        raise SystemExit(f"stored {stored} spans, the writers reported {written}")
    return written / elapsed, failed


def _spin(stop: threading.Event) -> None:
    """Pure-Python work that holds the GIL until the interpreter makes it let go."""
    total = 0
    while not stop.is_set():
        for i in range(10_000):
            total += i


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--contended", action="store_true",
                        help="a CPU-bound Python thread runs beside the exporter")
    parser.add_argument("--writers", type=int, default=0,
                        help="N processes writing into one database at once (0: one, in this "
                             "process, with the per-fifth rates)")
    args = parser.parse_args(argv)
    if args.writers:
        rates, failures = [], []
        for run in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="llmtrace-bench-") as tmp:
                rate, failed = run_writers(args.spans, args.batch, args.writers, Path(tmp))
            rates.append(rate)
            failures.append(failed)
            print(f"run {run + 1}: {rate:,.0f} spans/s, {failed} failed batches",
                  file=sys.stderr)
        print(f"{args.writers} writer processes: {statistics.median(rates):,.0f} spans/s "
              f"(median of {args.repeat}; {args.spans} spans, batches of {args.batch}); "
              f"failed batches per run: {failures}")
        return 0
    print(f"creating {args.spans} spans ...", file=sys.stderr)
    spans = make_spans(args.spans)
    stop = threading.Event()
    if args.contended:
        threading.Thread(target=_spin, args=(stop,), daemon=True).start()
    rates = []
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="llmtrace-bench-") as tmp:
            rate, windows = run_once(spans, args.batch, Path(tmp))
        rates.append(rate)
        by_fifth = ", ".join(f"{w:,.0f}" for w in windows)
        print(f"run {run + 1}: {rate:,.0f} spans/s (by fifth: {by_fifth})", file=sys.stderr)
    stop.set()
    beside = ", beside a CPU-bound thread" if args.contended else ""
    print(
        f"SQLiteSpanExporter: {statistics.median(rates):,.0f} spans/s "
        f"(median of {args.repeat}; {args.spans} spans, batches of {args.batch}{beside})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
