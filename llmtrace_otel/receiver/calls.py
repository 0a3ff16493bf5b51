"""The proxy's call metrics, recorded from received call spans.

``collect``'s /metrics has the same ``gen_ai_client_*`` token, duration and time-to-first-chunk
metrics and the same ``llmtrace_requests_total`` as the proxy's, so its dashboards work in
collector mode: each received span that is a call (:func:`~llmtrace_processors.chain.is_call`:
not an application, HTTP or tool span, not the second span of a call) becomes the
``CallOutcome`` the proxy's recorder builds for a call it relayed, once normalised and joined,
before analysis.

What a span cannot say is filled in the way the proxy would: the status code is the span's
``http.response.status_code``, else 200 for a span without error, else 0 (the sender did not
say); the duration is the span's. Per-chunk intervals are not sent by any instrumentation, so
``gen_ai_client_operation_time_per_output_chunk`` stays the proxy's and the SDK's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.trace import StatusCode

from llmtrace_otel.providers.types import Usage
from llmtrace_otel.telemetry.instruments import CallOutcome, ProxyInstruments
from llmtrace_processors.chain import is_call

__all__ = ["call_outcome", "record_call"]

_UNKNOWN_PROVIDER = "_OTHER"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _usage(attributes: Mapping[str, Any]) -> Usage | None:
    usage = Usage(
        input_tokens=_int(attributes.get(GEN_AI_USAGE_INPUT_TOKENS)),
        output_tokens=_int(attributes.get(GEN_AI_USAGE_OUTPUT_TOKENS)),
        cache_read_input_tokens=_int(attributes.get(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        cache_creation_input_tokens=_int(
            attributes.get(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
        reasoning_output_tokens=_int(attributes.get(GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
    )
    return None if usage == Usage() else usage


def call_outcome(span: ReadableSpan) -> CallOutcome | None:
    """The metrics' view of a received span; None when the span is not a call."""
    attributes = span.attributes or {}
    if not is_call(attributes):
        return None
    failed = span.status.status_code is StatusCode.ERROR
    status = _int(attributes.get(HTTP_RESPONSE_STATUS_CODE))
    if status is None:
        status = 0 if failed else 200
    start, end = span.start_time, span.end_time
    ttfc = attributes.get(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    error_type = _text(attributes.get(ERROR_TYPE))
    if error_type is None and failed:
        error_type = "_OTHER"  # semconv's value when the type is not known
    return CallOutcome(
        provider=_text(attributes.get(GEN_AI_PROVIDER_NAME)) or _UNKNOWN_PROVIDER,
        operation=_text(attributes.get(GEN_AI_OPERATION_NAME)),
        request_model=_text(attributes.get(GEN_AI_REQUEST_MODEL)),
        response_model=_text(attributes.get(GEN_AI_RESPONSE_MODEL)),
        server_address=_text(attributes.get(SERVER_ADDRESS)) or "",
        server_port=_int(attributes.get(SERVER_PORT)) or 0,
        status_code=status,
        duration_s=(end - start) / 1e9 if start is not None and end is not None else 0.0,
        error_type=error_type,
        usage=_usage(attributes),
        time_to_first_chunk_s=float(ttfc) if isinstance(ttfc, int | float)
        and not isinstance(ttfc, bool) else None,
    )


def record_call(instruments: ProxyInstruments, span: ReadableSpan) -> None:
    """Record the call metrics of one received span (nothing for spans that are not calls)."""
    outcome = call_outcome(span)
    if outcome is not None:
        instruments.record(outcome)
