"""The real proxy, on an unused port, in a background thread with its own event loop.

Spans are read back from an InMemorySpanExporter added as one more sink of the real
pipeline (after the processor chain, so tests see exactly what exporters see), and
metrics from the real /metrics endpoint.
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

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_otel.config import Settings, load_settings
from llmtrace_otel.guards import RequestGuard
from llmtrace_otel.proxy.app import ProxyServer
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.wiring import Extras, build_proxy
from llmtrace_processors.chain import EnrichingSpanProcessor


@dataclass
class RunningProxy:
    url: str
    port: int
    settings: Settings
    telemetry: Telemetry
    memory: InMemorySpanExporter
    server: ProxyServer
    loop: asyncio.AbstractEventLoop

    def spans(self, expected: int = 0, timeout: float = 10.0) -> list[ReadableSpan]:
        """Spans exported so far, after waiting for at least ``expected`` of them.

        The proxy answers the client before it ends the span (the client never waits
        for telemetry), so a test that just got its response may be a moment early.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.telemetry.tracer_provider.force_flush(10_000)
            spans = list(self.memory.get_finished_spans())
            if len(spans) >= expected or time.monotonic() > deadline:
                return spans
            time.sleep(0.01)

    def only_span(self) -> ReadableSpan:
        spans = self.spans(1)
        assert len(spans) == 1, f"expected exactly one span, got {[s.name for s in spans]}"
        return spans[0]

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            return response.read().decode()

    def clear(self) -> None:
        self.telemetry.tracer_provider.force_flush(10_000)
        self.memory.clear()


@contextmanager
def running_proxy(
    upstream_url: str,
    tmp_path: Path,
    *,
    guards: Sequence[RequestGuard] | None = None,
    enrichers: Sequence[EnrichingSpanProcessor] = (),
    metric_readers: Sequence[MetricReader] = (),
    **overrides: Any,
) -> Iterator[RunningProxy]:
    """``enrichers`` are added to the real processor chain (before the content policy);
    ``metric_readers`` (a ``MergingInMemoryMetricReader``) read what an OTLP reader would
    get; a plain ``InMemoryMetricReader`` makes every histogram the SDK's (wiring.py)."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "upstream_url": upstream_url,
        "anthropic_upstream_url": upstream_url,
        "sqlite_path": str(tmp_path / "spans.db"),
        "log_level": "WARNING",
        # The tests' clients are on loopback and name their tenants with the header (as a
        # trusted gateway would); the default, nobody trusted, has its own tests
        # (tests/tenancy/test_tenant_trust.py).
        "tenant_header_trusted_from": "127.0.0.1",
    }
    values.update(overrides)
    settings = load_settings(env={}, overrides=values)
    memory = InMemorySpanExporter()
    server = build_proxy(settings, env={}, extras=Extras(
        span_processors=[SimpleSpanProcessor(memory)], enrichers=enrichers, guards=guards,
        metric_readers=metric_readers))
    telemetry = server.telemetry
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    thread = threading.Thread(target=_run_loop, args=(loop, server, ready), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("proxy did not start within 10 s")
    assert server.port is not None
    running = RunningProxy(f"http://127.0.0.1:{server.port}", server.port, settings, telemetry,
                           memory, server, loop)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(5), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _run_loop(loop: asyncio.AbstractEventLoop, server: ProxyServer, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.run_until_complete(server.start())
    ready.set()
    loop.run_forever()
