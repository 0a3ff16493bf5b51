"""Varied finished GenAI call spans for the rollup's tests, made with the real OTel SDK.

Every dimension the rollup keys on varies (3 providers, 5 models, answered by a dated or the
same model or none, tenants including none, OK/UNSET/ERROR, with and without findings),
durations are log-normal with ties and a few sub-10-µs ones, usage and cost are missing on
some calls, streamed calls have a time to first chunk. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmtrace_processors.attributes import (
    LLMTRACE_COST_USD,
    LLMTRACE_SECURITY_FINDING_EVENT,
    LLMTRACE_SECURITY_SCORE,
    LLMTRACE_TENANT_ID,
)

__all__ = ["HOUR_NS", "MODELS", "T0", "dated", "make_calls"]

#: 2026-09-21T14:13:20Z: not on an hour boundary.
T0 = 1_790_000_000 * 10**9
HOUR_NS = 3600 * 10**9
MODELS = (
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5"),
    ("azure.ai.openai", "gpt-4o"),
)


def dated(model: str) -> str:
    """The response model of most successful calls: a dated version of the requested one."""
    return f"{model}-2026-08-06"


def make_calls(count: int, *, start_ns: int = T0, step_ns: int = 37 * 10**9, seed: int = 5,
               model_offset: int = 0) -> Sequence[ReadableSpan]:
    """``count`` calls, one every ``step_ns`` from ``start_ns``."""
    rng = random.Random(seed)
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests.rollup")
    for i in range(count):
        start = start_ns + i * step_ns
        vendor, model = MODELS[(i * 7 + model_offset + rng.randrange(2)) % len(MODELS)]
        span = tracer.start_span(f"chat {model}", kind=SpanKind.CLIENT, start_time=start,
                                 attributes={GEN_AI_OPERATION_NAME: "chat",
                                             GEN_AI_PROVIDER_NAME: vendor,
                                             GEN_AI_REQUEST_MODEL: model})
        if i % 4:
            span.set_attribute(LLMTRACE_TENANT_ID, f"tenant-{rng.randrange(4)}")
        if i % 13 == 0:
            span.set_attribute(LLMTRACE_SECURITY_SCORE, round(rng.uniform(0.2, 1.0), 2))
            span.add_event(LLMTRACE_SECURITY_FINDING_EVENT, {"type": "pii.email"})
        if i % 9 == 0:
            span.set_status(Status(StatusCode.ERROR, "upstream_error"))
        else:
            if i % 3:
                span.set_status(Status(StatusCode.OK))
            span.set_attributes({GEN_AI_USAGE_INPUT_TOKENS: rng.randint(1, 5000),
                                 GEN_AI_USAGE_OUTPUT_TOKENS: rng.randint(1, 900),
                                 GEN_AI_RESPONSE_MODEL: dated(model) if i % 7 else model})
            if i % 5:
                span.set_attribute(LLMTRACE_COST_USD, round(rng.uniform(0.00001, 0.03), 8))
        if i % 97 == 0:
            duration_ns = rng.randrange(0, 9_000)  # under 10 µs: the histogram's first bucket
        elif i % 11 == 0:
            duration_ns = 250_000_000  # ties
        else:
            duration_ns = int(rng.lognormvariate(-0.3, 0.9) * 1e9)
        if i % 2 == 0:
            span.set_attribute(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, duration_ns / 1e9 * 0.3)
        span.end(end_time=start + duration_ns)
    provider.shutdown()
    return memory.get_finished_spans()
