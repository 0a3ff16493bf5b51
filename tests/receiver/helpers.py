"""Small helpers for the receiver tests: payloads, raw HTTP posts, metrics, costs."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from prometheus_client.parser import text_string_to_metric_families

from llmtrace_processors.cost import PriceTable
from llmtrace_processors.cost.prices import TokenUsage

PAYLOADS = Path(__file__).parent / "payloads"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@cache
def _payload_text(name: str) -> str:
    return (PAYLOADS / name).read_text(encoding="utf-8")


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a recorded OTLP/JSON payload (``openai_v2.json`` ...)."""
    return copy.deepcopy(json.loads(_payload_text(name)))


def span_ids(data: Mapping[str, Any]) -> list[str]:
    return [span["spanId"] for rs in data["resourceSpans"] for ss in rs["scopeSpans"]
            for span in ss["spans"]]


def post(url: str, body: bytes, content_type: str = PROTOBUF,
         headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """POST and return (status, headers with lower-case names, body), errors included."""
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, _lower(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers.items()), error.read()


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def post_json(url: str, data: Mapping[str, Any], headers: Mapping[str, str] | None = None
              ) -> tuple[int, dict[str, str], Any]:
    status, response_headers, body = post(url, json.dumps(data).encode(), JSON, headers)
    return status, response_headers, json.loads(body) if body else None


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def by_span_id(spans: Iterable[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {hex_id(span.context.span_id, 16): span for span in spans}


def content(span: ReadableSpan, key: str) -> Any:
    """A content attribute (JSON text) parsed, or None."""
    value = (span.attributes or {}).get(key)
    return json.loads(value) if isinstance(value, str) else value


def expected_cost(model: str, provider: str, input_tokens: int, output_tokens: int,
                  cache_read: int = 0, cache_creation: int = 0) -> float:
    """What the price table charges: the cost processor must arrive at the same number."""
    resolved = PriceTable.builtin().resolve(model, provider)
    assert resolved is not None, f"no built-in price for {model!r}"
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens,
                       cache_read_input_tokens=cache_read,
                       cache_creation_input_tokens=cache_creation)
    return resolved.cost(usage).total_usd


def metric_value(text: str, sample_name: str, **labels: str) -> float:
    """Sum of a Prometheus sample (``llmtrace_receiver_spans_total``) over matching labels."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and all(
                sample.labels.get(key) == value for key, value in labels.items()
            ):
                total += sample.value
    return total
