"""OTLP/JSON: the protobuf messages in the JSON mapping the OTLP spec prescribes.

It is proto3's canonical JSON mapping with a few departures, which this module handles:

* ``traceId``, ``spanId`` and ``parentSpanId`` (in spans, links, log records and metric
  exemplars) are
  hex strings, not base64. An id that is not valid hex becomes empty, so the span is
  rejected by the id check (a partial success) rather than failing the whole request.
* Keys are lowerCamelCase; receivers also accept the original snake_case names, and must
  ignore unknown fields (forward compatibility).
* Enums are integers (names are accepted too); 64-bit integers may be numbers or strings.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmtrace_processors.json_text import loads

__all__ = ["OTLPJSONError", "message_to_json", "parse_logs", "parse_metrics", "parse_traces"]

_M = TypeVar("_M", bound=Message)
_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_METRIC_DATA = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram",
                "summary")


class OTLPJSONError(ValueError):
    """The body is not OTLP/JSON; the message says why (sent back with HTTP 400)."""


def _items(obj: Any, *keys: str) -> Iterable[Any]:
    """``obj[key]`` for the first key present, when it is a list of objects."""
    if not isinstance(obj, dict):
        return ()
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return ()


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if not isinstance(value, str):
            continue
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = b""  # rejected later by the id check, with the span's name
        obj[key] = base64.b64encode(raw).decode("ascii")


def _fix_trace_ids(data: Any) -> None:
    for resource_spans in _items(data, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            for span in _items(scope_spans, "spans"):
                _hex_ids_to_base64(span)
                for link in _items(span, "links"):
                    _hex_ids_to_base64(link)


def _fix_metric_ids(data: Any) -> None:
    for resource_metrics in _items(data, "resourceMetrics", "resource_metrics"):
        for scope_metrics in _items(resource_metrics, "scopeMetrics", "scope_metrics"):
            for metric in _items(scope_metrics, "metrics"):
                for kind in _METRIC_DATA:
                    for point in _items(metric.get(kind), "dataPoints", "data_points"):
                        for exemplar in _items(point, "exemplars"):
                            _hex_ids_to_base64(exemplar)


def _fix_log_ids(data: Any) -> None:
    for resource_logs in _items(data, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for record in _items(scope_logs, "logRecords", "log_records"):
                _hex_ids_to_base64(record)


def _parse(body: bytes, message: _M, fix: Any) -> _M:
    try:
        data = loads(body)  # every failure a ValueError, nesting beyond the stack included
    except ValueError as exc:
        raise OTLPJSONError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OTLPJSONError("body must be a JSON object")
    try:
        fix(data)
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except RecursionError:
        raise OTLPJSONError("body is nested too deeply to be OTLP/JSON") from None
    except (json_format.ParseError, binascii.Error, TypeError, ValueError) as exc:
        raise OTLPJSONError(f"body is not OTLP/JSON: {exc}") from None
    return message


def parse_traces(body: bytes) -> ExportTraceServiceRequest:
    return _parse(body, ExportTraceServiceRequest(), _fix_trace_ids)


def parse_logs(body: bytes) -> ExportLogsServiceRequest:
    return _parse(body, ExportLogsServiceRequest(), _fix_log_ids)


def parse_metrics(body: bytes) -> ExportMetricsServiceRequest:
    return _parse(body, ExportMetricsServiceRequest(), _fix_metric_ids)


def message_to_json(message: Message) -> bytes:
    """A response (or google.rpc.Status) as compact OTLP/JSON: lowerCamelCase keys."""
    return json_format.MessageToJson(message, indent=None).encode()
