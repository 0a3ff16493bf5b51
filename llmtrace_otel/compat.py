"""The private internals of other libraries that llmtrace-otel still relies on.

Each use is one small function here, and tests/test_compat.py checks that the internal is
still what we expect, so a tornado, OTel SDK or httpx release that changes it fails that
test loudly instead of degrading the product quietly. Prefer a public API whenever one
exists; when a function here can be replaced by one, do it and delete the function.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricReader
from opentelemetry.sdk.metrics.view import Aggregation
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from tornado.httputil import HTTPHeaders
from tornado.web import RequestHandler

__all__ = [
    "header_value_lists",
    "histogram_preferences",
    "mark_response_abandoned",
    "preloaded_content",
    "put_span_processor_first",
    "remove_span_processor",
    "replace_content",
    "request_summary",
    "span_limits_of",
    "span_processor_of",
]


# -- tornado -----------------------------------------------------------------------------------

def header_value_lists(headers: HTTPHeaders) -> dict[str, list[str]] | None:
    """Tornado's name -> values lists behind ``HTTPHeaders`` (``_as_list``): summing their
    lengths at C speed sizes a header block in ~1.3 us instead of ~2.2 us by a Python loop.
    None when the layout is not the one we know (callers fall back to ``get_all``)."""
    lists = getattr(headers, "_as_list", None)
    return lists if isinstance(lists, dict) else None


def mark_response_abandoned(handler: RequestHandler) -> None:
    """Tell Tornado a response is over although ``finish`` was never called (``_finished``).

    Used when an upstream breaks after the headers were relayed: the proxy closes the
    client connection so the client sees a broken response, and Tornado must neither
    finish it (a truncated body that looks complete) nor log an unfinished request.
    ``RequestHandler.detach`` would do this publicly but may only be called while headers
    are being received."""
    handler._finished = True


def request_summary(handler: RequestHandler) -> str:
    """``METHOD /path (client ip)``, as Tornado's own access log writes it."""
    return handler._request_summary()


# -- OpenTelemetry SDK -------------------------------------------------------------------------

def span_processor_of(provider: TracerProvider) -> SpanProcessor:
    """The processor a ``TracerProvider`` hands every span to (``_active_span_processor``):
    the SDK offers ``add_span_processor`` but no way to reach the ones added, and the SDK
    instrumentation hands its enriched spans to the application's processors."""
    processor: SpanProcessor = provider._active_span_processor
    return processor


def span_limits_of(provider: TracerProvider) -> SpanLimits | None:
    """The span limits a ``TracerProvider`` was built with (``_span_limits``)."""
    limits: SpanLimits | None = getattr(provider, "_span_limits", None)
    return limits


def tracer_provider_processors(provider: TracerProvider) -> Any | None:
    """The ``SynchronousMultiSpanProcessor`` of ``provider`` with its ``_lock`` and
    ``_span_processors`` tuple, or None when the SDK layout is not the one we know.

    Only through this can a processor be put *first* (the SDK appends) or removed again
    (the SDK cannot remove one): see :mod:`llmtrace_otel.sdk.attach`."""
    multi: Any = getattr(provider, "_active_span_processor", None)
    if getattr(multi, "_lock", None) is None or not isinstance(
            getattr(multi, "_span_processors", None), tuple):
        return None
    return multi


def put_span_processor_first(provider: TracerProvider, processor: SpanProcessor) -> None:
    """Add ``processor`` before every other one of ``provider`` (last when we cannot)."""
    multi = tracer_provider_processors(provider)
    if multi is None:
        provider.add_span_processor(processor)
        return
    with multi._lock:
        multi._span_processors = (processor, *multi._span_processors)


def remove_span_processor(provider: TracerProvider, processor: SpanProcessor) -> None:
    """Take ``processor`` out of ``provider`` again (nothing when we cannot)."""
    multi = tracer_provider_processors(provider)
    if multi is None:
        return
    with multi._lock:
        multi._span_processors = tuple(p for p in multi._span_processors if p is not processor)


def histogram_preferences(reader: MetricReader) -> tuple[AggregationTemporality, Aggregation]:
    """The temporality and aggregation ``reader`` wants for histograms
    (``_instrument_class_temporality`` / ``_instrument_class_aggregation`` of the SDK's
    ``_Histogram``): the SDK resolves a reader's preferences into these maps and offers no
    public way to read them back, and pre-aggregated histograms must be delivered the way
    the reader would have received the SDK's own (:mod:`llmtrace_otel.telemetry.metric_sources`)."""
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram

    return (reader._instrument_class_temporality[_Histogram],
            reader._instrument_class_aggregation[_Histogram])


# -- httpx -------------------------------------------------------------------------------------

def preloaded_content(message: Any) -> bytes | None:
    """The body an httpx ``Request``/``Response`` already holds in memory (``_content``),
    or None when it is still a stream (reading ``.content`` would raise then)."""
    content = getattr(message, "_content", None)
    return content if isinstance(content, bytes) else None


def replace_content(message: Any, content: bytes) -> None:
    """Make ``.content`` of an httpx ``Request``/``Response`` return ``content``: the body
    the SDK instrumentation edited (``stream_options.include_usage`` added or removed)."""
    message._content = content
