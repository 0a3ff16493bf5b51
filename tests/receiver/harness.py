"""``llmtrace-otel collect`` in-process: the real CollectorServer on unused ports.

It runs on its own event loop in a background thread, with the real pipeline
(``wiring.build_collector``) plus an InMemorySpanExporter as one more sink after the processor
chain, so tests see exactly what the exporters see. Metrics are read from /metrics.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_otel.config import Settings, load_settings
from llmtrace_otel.receiver import CollectorServer
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.wiring import Extras, build_collector
from llmtrace_processors.chain import EnrichingSpanProcessor


@dataclass
class RunningCollector:
    settings: Settings
    telemetry: Telemetry
    memory: InMemorySpanExporter
    server: CollectorServer
    loop: asyncio.AbstractEventLoop

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.server.ops_port}"

    def spans(self, expected: int = 0, timeout: float = 10.0) -> list[ReadableSpan]:
        """Spans that reached the exporters, after waiting for at least ``expected``."""
        deadline = time.monotonic() + timeout
        while True:
            self.telemetry.tracer_provider.force_flush(10_000)
            spans = list(self.memory.get_finished_spans())
            if len(spans) >= expected or time.monotonic() > deadline:
                return spans
            time.sleep(0.01)

    def spans_with_ids(self, span_ids: set[int], timeout: float = 10.0
                       ) -> dict[int, ReadableSpan]:
        """The exported spans with these span ids (by id), waiting until all are there."""
        deadline = time.monotonic() + timeout
        while True:
            self.telemetry.tracer_provider.force_flush(10_000)
            found = {span.context.span_id: span for span in self.memory.get_finished_spans()
                     if span.context.span_id in span_ids}
            if len(found) == len(span_ids) or time.monotonic() > deadline:
                return found
            time.sleep(0.01)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.ops_url}/metrics", timeout=10) as response:
            return response.read().decode()


@contextmanager
def running_collector(tmp_path: Path, *, env: dict[str, str] | None = None,
                      extra_enrichers: Sequence[EnrichingSpanProcessor] = (),
                      extra_sinks: Sequence[SpanProcessor] = (),
                      **overrides: Any) -> Iterator[RunningCollector]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "receiver_grpc_endpoint": "127.0.0.1:0",
        "receiver_http_endpoint": "127.0.0.1:0",
        "sqlite_path": str(tmp_path / "spans.db"),
        "log_level": "WARNING",
    }
    values.update(overrides)
    env = env or {}
    settings = load_settings(env=env, overrides=values)
    memory = InMemorySpanExporter()
    server = build_collector(settings, env=env, extras=Extras(
        enrichers=extra_enrichers, span_processors=[SimpleSpanProcessor(memory), *extra_sinks]))
    telemetry = server.telemetry
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    thread = threading.Thread(target=_run_loop, args=(loop, server, ready), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("collector did not start within 10 s")
    try:
        yield RunningCollector(settings, telemetry, memory, server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(10), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _run_loop(loop: asyncio.AbstractEventLoop, server: CollectorServer,
              ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.run_until_complete(server.start())
    ready.set()
    loop.run_forever()
