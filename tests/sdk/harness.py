"""An application's own OpenTelemetry set-up, and the instrumentation attached to it.

``AppTelemetry`` is what a real application would have: an SDK ``TracerProvider``
exporting to an ``InMemorySpanExporter`` and an SDK ``MeterProvider`` with a Prometheus
reader on a private registry. The instrumentation attaches to it exactly as it would to a
global one (the providers are passed explicitly so tests never touch global state), and
tests read back what the application's exporters received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import openai
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from prometheus_client import CollectorRegistry, generate_latest

from llmtrace_otel.config import load_settings
from llmtrace_otel.sdk import LLMTraceInstrumentor
from llmtrace_processors.chain import is_genai_span
from tests.support.fake_upstream import SCENARIO_HEADER, FakeUpstream

_T = TypeVar("_T")

API_KEY = "sk-test-secret-key-123"


@dataclass
class AppTelemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    memory: InMemorySpanExporter
    registry: CollectorRegistry

    @classmethod
    def create(cls, sampler: Sampler | None = None) -> AppTelemetry:
        memory = InMemorySpanExporter()
        tracer_provider = TracerProvider(sampler=sampler, shutdown_on_exit=False)
        tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
        registry = CollectorRegistry()
        meter_provider = MeterProvider(
            metric_readers=[PrometheusMetricReader(registry=registry)], shutdown_on_exit=False)
        return cls(tracer_provider, meter_provider, memory, registry)

    def spans(self) -> list[ReadableSpan]:
        """What the application's exporter received (after the application flushes)."""
        self.tracer_provider.force_flush(10_000)
        return list(self.memory.get_finished_spans())

    def genai_spans(self) -> list[ReadableSpan]:
        return [span for span in self.spans() if is_genai_span(span)]

    def only_genai_span(self) -> ReadableSpan:
        spans = self.genai_spans()
        assert len(spans) == 1, f"expected one GenAI span, got {[s.name for s in spans]}"
        return spans[0]

    def metrics_text(self) -> str:
        return generate_latest(self.registry).decode()

    def clear(self) -> None:
        self.tracer_provider.force_flush(10_000)
        self.memory.clear()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@contextmanager
def instrumented(app: AppTelemetry, tmp_path: Path, **overrides: Any
                 ) -> Iterator[LLMTraceInstrumentor]:
    """The instrumentation attached to ``app``'s providers, removed again afterwards."""
    http_spans = bool(overrides.pop("http_spans", False))
    values: dict[str, Any] = {"sqlite_path": str(tmp_path / "sdk.db")}
    values.update(overrides)
    settings = load_settings(env={}, overrides=values)
    instrumentor = LLMTraceInstrumentor()
    instrumentor.instrument(tracer_provider=app.tracer_provider,
                            meter_provider=app.meter_provider, settings=settings,
                            http_spans=http_spans)
    try:
        yield instrumentor
    finally:
        instrumentor.uninstrument()


def run(awaitable: Awaitable[_T]) -> _T:
    async def main() -> _T:
        return await awaitable

    return asyncio.run(main())


def openai_sync(upstream: FakeUpstream, scenario: str = "ok", **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.openai_base_url, api_key=API_KEY, max_retries=0,
                         default_headers={SCENARIO_HEADER: scenario}, **kwargs)


def openai_async(upstream: FakeUpstream, scenario: str = "ok", **kwargs: Any
                 ) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=upstream.openai_base_url, api_key=API_KEY,
                              max_retries=0, default_headers={SCENARIO_HEADER: scenario},
                              **kwargs)


def anthropic_sync(upstream: FakeUpstream, scenario: str = "ok") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key=API_KEY,
                               max_retries=0, default_headers={SCENARIO_HEADER: scenario})


def anthropic_async(upstream: FakeUpstream, scenario: str = "ok") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=upstream.anthropic_base_url, api_key=API_KEY,
                                    max_retries=0, default_headers={SCENARIO_HEADER: scenario})
