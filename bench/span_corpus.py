"""A realistic store of GenAI spans for read-side benchmarks, written by the real exporter.

``build_store(path, count)`` creates ``count`` finished spans with a real TracerProvider,
spread evenly over the ``days`` before a fixed end time (so hour/day groupings have real
buckets), and writes them with :class:`SQLiteSpanExporter` in batches of 512, the way the
proxy's BatchSpanProcessor does. The mix: 6 models over 3 providers, 12 tenants, log-normal
latencies (median ~800 ms), streamed calls with a time to first chunk, every 10th call an
error, every 50th call a security finding event with a score. Deterministic (seeded).
"""

from __future__ import annotations

import random
from pathlib import Path

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmtrace_otel.exporters.sqlite import SQLiteSpanExporter
from llmtrace_processors.attributes import (
    LLMTRACE_COST_USD,
    LLMTRACE_SECURITY_FINDING_EVENT,
    LLMTRACE_SECURITY_SCORE,
    LLMTRACE_TENANT_ID,
)

MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("azure.ai.openai", "gpt-4o"),
    ("openai", "o4-mini"),
)
#: Fixed end of the corpus' time range: 2026-11-23T00:00:00Z, in ns since the epoch.
END_NS = 1_795_392_000 * 1_000_000_000
_BATCH = 512


def build_store(path: Path, count: int, *, days: float = 7.0, seed: int = 7) -> int:
    """Write ``count`` spans to a new store at ``path``; returns the spans written."""
    rng = random.Random(seed)
    exporter = SQLiteSpanExporter(path)
    span_ns = int(days * 86_400e9) // max(count, 1)
    start0 = END_NS - span_ns * count
    written = 0
    for offset in range(0, count, _BATCH):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "bench"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("llmtrace_otel.proxy", "0.1.0")
        for i in range(offset, min(offset + _BATCH, count)):
            vendor, model = MODELS[i % len(MODELS)]
            start = start0 + i * span_ns
            duration_ns = int(rng.lognormvariate(-0.2, 0.6) * 1e9)
            stream = i % 2 == 0
            span = tracer.start_span(
                f"chat {model}",
                kind=SpanKind.CLIENT,
                start_time=start,
                attributes={
                    SERVER_ADDRESS: "api.example.com",
                    GEN_AI_OPERATION_NAME: "chat",
                    GEN_AI_PROVIDER_NAME: vendor,
                    GEN_AI_REQUEST_MODEL: model,
                    GEN_AI_REQUEST_STREAM: stream,
                    LLMTRACE_TENANT_ID: f"tenant-{i % 12:02d}",
                },
            )
            attributes: dict[str, str | int | float] = {
                HTTP_RESPONSE_STATUS_CODE: 200,
                GEN_AI_RESPONSE_ID: f"chatcmpl-{i:012d}",
                GEN_AI_RESPONSE_MODEL: f"{model}-2025-01-01",
                GEN_AI_USAGE_INPUT_TOKENS: rng.randint(20, 4000),
                GEN_AI_USAGE_OUTPUT_TOKENS: rng.randint(5, 800),
                LLMTRACE_COST_USD: round(rng.uniform(0.00001, 0.02), 8),
            }
            if stream:
                attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = duration_ns / 1e9 * 0.3
            if i % 50 == 0:
                attributes[LLMTRACE_SECURITY_SCORE] = round(rng.uniform(0.3, 1.0), 3)
                span.add_event(
                    LLMTRACE_SECURITY_FINDING_EVENT,
                    {"type": "pii.email", "severity": "medium", "confidence": 0.8},
                    timestamp=start + duration_ns // 2,
                )
            if i % 10 == 0:
                attributes[HTTP_RESPONSE_STATUS_CODE] = 429
                attributes[ERROR_TYPE] = "rate_limit_error"
                span.set_status(Status(StatusCode.ERROR, "rate_limit_error"))
            span.set_attributes(attributes)
            span.end(end_time=start + duration_ns)
        provider.shutdown()
        batch = memory.get_finished_spans()
        if exporter.export(batch) is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"export failed at span {offset}")
        written += len(batch)
    exporter.shutdown()
    return written
