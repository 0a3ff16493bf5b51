"""The read side's typed records: one call in a listing, one full span, a page, a trace.

Frozen dataclasses built from ``spans`` rows (the column lists follow the field names), with
``as_dict`` giving the JSON documents of the API and the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

from llmtrace_otel.display import status_label, usd
from llmtrace_otel.exporters.sqlite.findings import FindingView, findings_of
from llmtrace_otel.exporters.sqlite.schema import StoreError
from llmtrace_processors.attributes import LLMTRACE_SECURITY_MAX_SEVERITY
from llmtrace_processors.json_text import loads

__all__ = [
    "CALL_COLUMNS",
    "RECORD_COLUMNS",
    "STATUS_CODES",
    "CallPage",
    "CallRow",
    "EventRecord",
    "LinkRecord",
    "SpanRecord",
    "TraceRecord",
    "call_from_row",
    "iso_time",
    "record_from_row",
]

STATUS_CODES: Final = frozenset({"UNSET", "OK", "ERROR"})

Attributes = Mapping[str, AttributeValue]


def iso_time(time_ns: int | None) -> str | None:
    """``2026-11-23T10:00:00.123Z`` (UTC, milliseconds) for ns since the epoch."""
    if time_ns is None:
        return None
    moment = datetime.fromtimestamp(time_ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class CallRow:
    """One call in a listing: the columns a person scans, not the full record."""

    span_id: str
    trace_id: str
    parent_span_id: str | None
    name: str
    start_time_ns: int | None
    duration_ms: float | None
    status_code: str
    status_message: str | None
    service_name: str | None
    operation: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    ttft_ms: float | None
    stream: bool | None
    error_type: str | None
    http_status: int | None
    cost_usd: float | None
    tenant_id: str | None
    agent_id: str | None
    security_score: float | None
    findings_count: int
    #: ``llmtrace.security.max_severity`` (info ... critical), when the call has findings.
    max_severity: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields, plus ``start_time`` as an ISO-8601 UTC string."""
        data: dict[str, object] = asdict(self)
        data["start_time"] = iso_time(self.start_time_ns)
        return data

    def as_table_row(self) -> tuple[str, ...]:
        """Cells for: time (UTC), operation, provider, model, status, in, out, cost, ms,
        ttfc ms, trace id (:mod:`llmtrace_otel.display` decides how status and cost read)."""
        time = iso_time(self.start_time_ns)
        return (
            time.replace("T", " ").rstrip("Z") if time else "-",
            self.operation or "-",
            self.provider or "-",
            self.response_model or self.request_model or "-",
            status_label(self.status_code, self.error_type),
            "-" if self.input_tokens is None else str(self.input_tokens),
            "-" if self.output_tokens is None else str(self.output_tokens),
            usd(self.cost_usd),
            "-" if self.duration_ms is None else f"{self.duration_ms:.0f}",
            "-" if self.ttft_ms is None else f"{self.ttft_ms:.0f}",
            self.trace_id,
        )


@dataclass(frozen=True, slots=True)
class EventRecord:
    name: str
    timestamp_ns: int | None
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class LinkRecord:
    trace_id: str
    span_id: str
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """Everything stored for one span; attribute maps are read-only, sequences are tuples."""

    span_id: str
    trace_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_time_ns: int | None
    end_time_ns: int | None
    duration_ms: float | None
    status_code: str
    status_message: str | None
    service_name: str | None
    operation: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    response_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_creation_tokens: int | None
    reasoning_tokens: int | None
    ttft_ms: float | None
    stream: bool | None
    error_type: str | None
    server_address: str | None
    http_status: int | None
    cost_usd: float | None
    tenant_id: str | None
    agent_id: str | None
    security_score: float | None
    attributes: Attributes
    events: tuple[EventRecord, ...]
    links: tuple[LinkRecord, ...]
    resource: Attributes
    scope_name: str | None
    scope_version: str | None
    findings_count: int

    @property
    def findings(self) -> tuple[FindingView, ...]:
        """The ``llmtrace.security.finding`` events, as typed views."""
        return findings_of(self.events)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: attribute maps as dicts, events and links as lists of dicts."""
        data: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in ("attributes", "resource"):
                value = dict(value)
            elif field.name in ("events", "links"):
                value = [
                    {f.name: getattr(item, f.name) for f in fields(item)}
                    | {"attributes": dict(item.attributes)}
                    for item in value
                ]
            data[field.name] = value
        data["start_time"] = iso_time(self.start_time_ns)
        data["end_time"] = iso_time(self.end_time_ns)
        data["findings"] = [finding.as_dict() for finding in self.findings]
        return data


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of a newest-first listing; ``next_cursor`` is None on the last page."""

    items: tuple[CallRow, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """The stored spans of one trace, oldest first; ``truncated`` when more than
    ``MAX_TRACE_SPANS`` are stored."""

    trace_id: str
    spans: tuple[SpanRecord, ...]
    truncated: bool


_CALL_EXPRESSIONS: Final = {
    # Not a column: read from the attributes JSON of the (at most one page of) listed rows.
    "max_severity": "json_extract(attributes, '$.\"" + LLMTRACE_SECURITY_MAX_SEVERITY
                    + "\"') AS max_severity",
}
#: What a listing selects, in :class:`CallRow` order: column names, or ``expression AS name``.
CALL_COLUMNS: Final = tuple(_CALL_EXPRESSIONS.get(f.name, f.name) for f in fields(CallRow))
RECORD_COLUMNS: Final = tuple(f.name for f in fields(SpanRecord))
_CALL_STREAM: Final = CALL_COLUMNS.index("stream")


def _attributes(raw: Any) -> Attributes:
    if not isinstance(raw, dict):
        return MappingProxyType({})
    return MappingProxyType(
        {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items()}
    )


def _decode(text: str | None, column: str, span_id: str) -> Any:
    if text is None:
        return None
    try:
        return loads(text)
    except ValueError as exc:
        raise StoreError(f"span {span_id}: column {column} holds invalid JSON: {exc}") from exc


def record_from_row(row: tuple[Any, ...]) -> SpanRecord:
    values: dict[str, Any] = dict(zip(RECORD_COLUMNS, row, strict=True))
    span_id = values["span_id"]
    values["attributes"] = _attributes(_decode(values["attributes"], "attributes", span_id))
    values["resource"] = _attributes(_decode(values["resource"], "resource", span_id))
    values["events"] = tuple(
        EventRecord(
            name=str(event.get("name", "")),
            timestamp_ns=event.get("timestamp_ns"),
            attributes=_attributes(event.get("attributes")),
        )
        for event in _decode(values["events"], "events", span_id) or ()
    )
    values["links"] = tuple(
        LinkRecord(
            trace_id=str(link.get("trace_id", "")),
            span_id=str(link.get("span_id", "")),
            attributes=_attributes(link.get("attributes")),
        )
        for link in _decode(values["links"], "links", span_id) or ()
    )
    if values["stream"] is not None:
        values["stream"] = bool(values["stream"])
    return SpanRecord(**values)


def call_from_row(row: tuple[Any, ...]) -> CallRow:
    if row[_CALL_STREAM] is not None:
        row = (*row[:_CALL_STREAM], bool(row[_CALL_STREAM]), *row[_CALL_STREAM + 1 :])
    return CallRow(*row)
