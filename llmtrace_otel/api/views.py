"""JSON documents of the query API, shared with the CLI's ``--json`` output.

Each function turns a read-side result into the exact document ``docs/openapi.yaml``
describes, so ``llmtrace-otel traces --json`` prints what ``GET /api/v1/traces`` returns.
Non-finite floats (which span attributes may carry) become null: browsers' ``JSON.parse``
rejects ``NaN``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from llmtrace_otel.exporters.sqlite import CallPage, SpanRecord, StatsResult, TraceRecord
from llmtrace_otel.exporters.sqlite.finding_stats import FindingSummary
from llmtrace_otel.exporters.sqlite.queries import iso_time

__all__ = ["dumps", "findings_json", "page_json", "span_json", "stats_json", "trace_json"]


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def dumps(document: dict[str, Any], *, indent: int | None = None) -> str:
    return json.dumps(_finite(document), indent=indent, allow_nan=False)


def page_json(page: CallPage, limit: int) -> dict[str, Any]:
    return {
        "items": [item.as_dict() for item in page.items],
        "next_cursor": page.next_cursor,
        "limit": limit,
    }


def span_json(record: SpanRecord) -> dict[str, Any]:
    return record.as_dict()


def _sum(values: list[Any]) -> Any:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def trace_json(trace: TraceRecord) -> dict[str, Any]:
    spans = trace.spans
    starts = [span.start_time_ns for span in spans if span.start_time_ns is not None]
    ends = [span.end_time_ns for span in spans if span.end_time_ns is not None]
    start = min(starts) if starts else None
    duration = (max(ends) - start) / 1e6 if start is not None and ends else None
    return {
        "trace_id": trace.trace_id,
        "truncated": trace.truncated,
        "summary": {
            "spans": len(spans),
            "start_time": iso_time(start),
            "duration_ms": duration,
            "errors": sum(1 for span in spans if span.status_code == "ERROR"),
            "input_tokens": _sum([span.input_tokens for span in spans]),
            "output_tokens": _sum([span.output_tokens for span in spans]),
            "cost_usd": _sum([span.cost_usd for span in spans]),
            "findings": sum(span.findings_count for span in spans),
        },
        "spans": [span_json(span) for span in spans],
    }


def stats_json(result: StatsResult, since_ns: int | None, until_ns: int | None) -> dict[str, Any]:
    document = result.as_dict()
    document["since"] = iso_time(since_ns)
    document["until"] = iso_time(until_ns)
    return document


def findings_json(summary: FindingSummary, since_ns: int | None,
                  until_ns: int | None) -> dict[str, Any]:
    document = summary.as_dict()
    document["since"] = iso_time(since_ns)
    document["until"] = iso_time(until_ns)
    return document
