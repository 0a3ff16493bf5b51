"""Turns one proxied call into one span and its metrics.

The handler does I/O; the recorder owns the span's lifetime and timing: it starts the
span when the request arrives, timestamps stream chunks, and ends the span exactly once
(response complete, failure, or client gone), recording the metrics at the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.propagate import inject
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, set_span_in_context
from opentelemetry.util.types import AttributeValue

from llmtrace_otel.providers.types import LLMRequest, LLMResponse, StreamSignal
from llmtrace_otel.telemetry.attributes import request_attributes, response_attributes, span_name
from llmtrace_otel.telemetry.content import content_attributes
from llmtrace_otel.telemetry.error_text import status_description
from llmtrace_otel.telemetry.instruments import CallOutcome, ProxyInstruments
from llmtrace_processors.attributes import (
    LLMTRACE_API,
    LLMTRACE_PARSE_ERRORS,
    LLMTRACE_STREAM_CHUNKS,
)

__all__ = ["CallRecorder", "RecordingTarget"]


class RecordingTarget(Protocol):
    """Where a recorder's span and metrics go: a ``Telemetry`` (proxy), or the SDK
    instrumentation's tracer + instruments attached to an application's providers."""

    @property
    def tracer(self) -> Tracer: ...

    @property
    def instruments(self) -> ProxyInstruments: ...

    @property
    def needs_content(self) -> bool: ...


class CallRecorder:
    """Span + metrics for one call. Not thread-safe: one call is driven by one thread
    (the proxy's event loop, or the application thread reading an SDK response)."""

    __slots__ = (
        "_telemetry", "_request", "_provider", "_server_address", "_server_port", "_t0",
        "_first_chunk", "_last_chunk", "_intervals", "_chunks", "_issues", "_ended", "span",
        "_with_content", "_latest", "status_code", "response", "error_type",
    )

    def __init__(
        self,
        telemetry: RecordingTarget,
        *,
        method: str,
        url: str,
        api: str | None,
        request: LLMRequest | None,
        provider: str,
        server_address: str,
        server_port: int,
        parent: Context | None,
        issues: list[str],
    ) -> None:
        self._telemetry = telemetry
        self._request = request
        self._provider = provider
        self._server_address = server_address
        self._server_port = server_port
        self._t0 = time.perf_counter()
        self._first_chunk: float | None = None
        self._last_chunk = 0.0
        self._intervals: list[float] = []
        self._chunks = 0
        self._issues = issues
        self._ended = False
        self._with_content = telemetry.needs_content
        #: The latest GenAI conventions' names (OTEL_SEMCONV_STABILITY_OPT_IN).
        self._latest = telemetry.instruments.genai_latest
        #: How the call ended; set by :meth:`finish`.
        self.status_code = 0
        self.response: LLMResponse | None = None
        self.error_type: str | None = None
        attributes: dict[str, AttributeValue] = {
            SERVER_ADDRESS: server_address,
            SERVER_PORT: server_port,
            HTTP_REQUEST_METHOD: method,
        }
        if api is not None:
            attributes[LLMTRACE_API] = api
        if request is not None:
            attributes.update(request_attributes(request, provider))
            name = span_name(request.operation, request.model)
        else:
            # Not an LLM call (or an unparseable one): a plain HTTP client span.
            attributes[URL_FULL] = url
            name = method
        self.span = telemetry.tracer.start_span(
            name, context=parent, kind=SpanKind.CLIENT, attributes=attributes
        )

    def trace_headers(self) -> list[tuple[str, str]]:
        """W3C trace context of the proxy span, for the upstream request."""
        carrier: dict[str, str] = {}
        inject(carrier, context=set_span_in_context(self.span))
        return list(carrier.items())

    def on_event(self, signal: StreamSignal, at: float | None = None) -> None:
        """One stream event; ``at`` is when it arrived (``time.perf_counter()``), if the
        caller relayed it before accounting for it."""
        if not signal.counts_as_chunk:
            return
        now = time.perf_counter() if at is None else at
        if self._first_chunk is None:
            self._first_chunk = now
        else:
            self._intervals.append(now - self._last_chunk)
        self._last_chunk = now
        self._chunks += 1

    def note(self, issue: str) -> None:
        self._issues.append(issue)

    def add_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Attributes learnt while the call is in flight (tenant, guard verdicts)."""
        if not self._ended:
            self.span.set_attributes(attributes)

    @property
    def ended(self) -> bool:
        return self._ended

    def finish(
        self,
        status_code: int,
        response: LLMResponse | None = None,
        error_type: str | None = None,
        extra: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        """End the span and record metrics. Idempotent: only the first call counts."""
        if self._ended:
            return
        self._ended = True
        telemetry = self._telemetry
        duration = time.perf_counter() - self._t0
        span = self.span
        attributes: dict[str, AttributeValue] = {}
        if status_code:
            attributes[HTTP_RESPONSE_STATUS_CODE] = status_code
        if response is not None:
            attributes.update(response_attributes(response, latest=self._latest))
            if error_type is None and response.error_type and status_code >= 400:
                error_type = response.error_type
        if error_type is None and status_code >= 400:
            error_type = str(status_code)
        ttfc = None if self._first_chunk is None else self._first_chunk - self._t0
        if ttfc is not None:
            attributes[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
            attributes[LLMTRACE_STREAM_CHUNKS] = self._chunks
        if self._with_content and (self._request is not None or response is not None):
            attributes.update(content_attributes(self._request, response, latest=self._latest))
        if self._issues:
            attributes[LLMTRACE_PARSE_ERRORS] = tuple(self._issues)
        if extra:
            attributes.update(extra)
        if error_type is not None:
            attributes[ERROR_TYPE] = error_type
            # The upstream's own words when it gave some (bounded, secrets removed), else the
            # error type: "error requests" tells a person nothing.
            message = response.error_message if response is not None else None
            span.set_status(Status(StatusCode.ERROR, error_type if message is None
                                   else status_description(message)))
        self.status_code, self.response, self.error_type = status_code, response, error_type
        span.set_attributes(attributes)
        span.end()
        request = self._request
        telemetry.instruments.record(
            CallOutcome(
                provider=self._provider,
                operation=request.operation.value if request is not None else None,
                request_model=request.model if request is not None else None,
                response_model=response.model if response is not None else None,
                server_address=self._server_address,
                server_port=self._server_port,
                status_code=status_code,
                duration_s=duration,
                error_type=error_type,
                usage=response.usage if response is not None else None,
                time_to_first_chunk_s=ttfc,
                chunk_intervals_s=self._intervals,
            )
        )
