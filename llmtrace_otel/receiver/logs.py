"""OTLP log records that are GenAI events: read for their span, stripped for forwarding.

The GenAI conventions let instrumentations send message content as log-record events
instead of span attributes: ``gen_ai.client.inference.operation.details`` (the current
conventions; ``opentelemetry-util-genai``'s EVENT_ONLY mode, OpenLIT 1.4x) and the older
per-message events ``gen_ai.system.message`` / ``gen_ai.user.message`` /
``gen_ai.assistant.message`` / ``gen_ai.tool.message`` / ``gen_ai.choice``
(``opentelemetry-instrumentation-openai-v2`` without the latest-conventions opt-in, always in
2.1b0). Such a record names its span (trace and span id); :func:`genai_events` turns it into
the span event the dialect normalisation already translates, with the record's body (the
message) spread over the event's attributes.

:func:`strip_content` removes the content from a request before it is forwarded, when
content is not exported as received.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.sdk.trace import Event
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_RESPONSE_ID,
)
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME

from llmtrace_otel.receiver.decode import any_value, attributes_of
from llmtrace_otel.receiver.dialects.genai_legacy import CONTENT_KEYS, EVENT_NAMES

__all__ = ["EVENT_NAME", "LogEvent", "genai_events", "record_count", "strip_content"]

#: Older SDKs (the Events API) put the event's name in this attribute, newer ones in the
#: log record's ``event_name`` field.
EVENT_NAME = "event.name"
_CONTENT = frozenset(CONTENT_KEYS)


@dataclass(frozen=True, slots=True)
class LogEvent:
    """A GenAI event for the span (``trace_id``, ``span_id``) of ``service``."""

    trace_id: int
    span_id: int
    response_id: str | None
    service: str | None
    event: Event


def _name(record: logs_pb2.LogRecord) -> str | None:
    if record.event_name:
        return record.event_name
    for pair in record.attributes:
        if pair.key == EVENT_NAME:
            return pair.value.string_value or None
    return None


def _event(name: str, record: logs_pb2.LogRecord) -> Event:
    attributes = attributes_of(record.attributes)
    attributes.pop(EVENT_NAME, None)
    body = any_value(record.body) if record.HasField("body") else None
    if isinstance(body, dict):
        for key, value in body.items():
            attributes.setdefault(key, value)
    elif isinstance(body, str) and body:
        attributes.setdefault("content", body)
    timestamp = record.time_unix_nano or record.observed_time_unix_nano or None
    return Event(name, attributes, timestamp)


def record_count(request: ExportLogsServiceRequest) -> int:
    return sum(len(scope.log_records) for resource in request.resource_logs
               for scope in resource.scope_logs)


def genai_events(request: ExportLogsServiceRequest) -> tuple[list[LogEvent], int]:
    """The GenAI events of ``request`` that name a span, and how many records were not."""
    found: list[LogEvent] = []
    other = 0
    for resource_logs in request.resource_logs:
        service = None
        for pair in resource_logs.resource.attributes:
            if pair.key == SERVICE_NAME:
                service = pair.value.string_value or None
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                name = _name(record)
                if (name not in EVENT_NAMES or len(record.trace_id) != 16
                        or len(record.span_id) != 8):
                    other += 1
                    continue
                event = _event(name, record)
                response_id = (event.attributes or {}).get(GEN_AI_RESPONSE_ID)
                found.append(LogEvent(
                    int.from_bytes(record.trace_id, "big"), int.from_bytes(record.span_id, "big"),
                    response_id if isinstance(response_id, str) else None, service, event))
    return found, other


def strip_content(request: ExportLogsServiceRequest) -> int:
    """Remove, in place, the content of GenAI event records (their body, the message, and
    the content attributes); the number of records changed. Other records stay as sent."""
    changed = 0
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                if _name(record) not in EVENT_NAMES:
                    continue
                content = [index for index, pair in enumerate(record.attributes)
                           if pair.key in _CONTENT]
                if content or record.HasField("body"):
                    for index in reversed(content):
                        del record.attributes[index]
                    record.ClearField("body")
                    changed += 1
    return changed
