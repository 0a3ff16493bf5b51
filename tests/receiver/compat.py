"""What ``collect`` makes of one recorded library export: the compatibility table's row.

:func:`measure` replays a fixture into a running ``collect`` and reads back what it serves:
the calls of the query API on the collect port (listing, span records, stats), its
/metrics, and the bytes of its SQLite store. Each counted call is matched, in start order,
with the upstream call it describes (the fixture's ``upstream_calls``, less those the
library does not instrument), so usage, cost and time to first chunk are compared call by
call with what the upstream reported. ``tests/receiver/test_fixtures.py`` asserts on the
result; ``bench/collector_compat.py`` prints the table of docs/collector.md from it.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.receiver.harness import RunningCollector
from tests.receiver.helpers import expected_cost, metric_value
from tests.receiver.replay import Fixture, Transport, replay

#: Texts of the recorded prompts (a made-up e-mail address and AWS key id): where they
#: appear in the store, content was stored.
MARKERS = ("jane.doe@example.com", "AKIA2OGYBAH6QNXC5VLP")
_USAGE_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
               "gen_ai.usage.cache_read.input_tokens",
               "gen_ai.usage.cache_creation.input_tokens")

#: Upstream calls a library does not instrument (no span is sent for them).
NOT_INSTRUMENTED: dict[str, tuple[str, ...]] = {
    "openai-v2-2.1b0": ("/v1/embeddings",),
}
#: Calls (by position among the library's calls) whose usage the library itself reports
#: differently from the upstream: collect stores and prices what it was sent.
USAGE_AS_REPORTED: dict[tuple[str, int], str] = {
    ("openlit-1.34.43", 1): "estimates a stream's usage with its own tokenizer "
                            "(97 in / 13 out for 12 / 6)",
    ("openlit-1.34.43", 3): "drops Anthropic's cache tokens (input 12, no cache read/write)",
    ("openllmetry-0.62.4", 4): "counts 7 output tokens for a streamed Anthropic reply of 6",
}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@dataclass
class Call:
    """One counted call as the query API serves it, with the upstream call it describes."""

    item: dict[str, Any]
    record: dict[str, Any]
    upstream: dict[str, Any]

    @property
    def usage(self) -> dict[str, int]:
        attributes = self.record["attributes"]
        return {key: attributes[key] for key in _USAGE_KEYS if attributes.get(key)}

    def expected_usage(self) -> dict[str, int]:
        return {key: value for key, value in self.upstream["usage"].items() if value}

    def priced(self, usage: dict[str, int]) -> float:
        return expected_cost(
            self.upstream["model"], self.upstream["provider"],
            usage.get("gen_ai.usage.input_tokens", 0),
            usage.get("gen_ai.usage.output_tokens", 0),
            usage.get("gen_ai.usage.cache_read.input_tokens", 0),
            usage.get("gen_ai.usage.cache_creation.input_tokens", 0))


@dataclass
class Measured:
    """A compatibility table row, and what it was measured from."""

    fixture: Fixture
    capture: bool
    calls: list[Call]
    stats: dict[str, Any]
    metrics: str
    stored: bytes
    ui_status: int
    #: Every stored span of the calls' traces: trace id -> span id -> attributes.
    traces: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def content_sent(self, call: Call) -> bool:
        """The library sent this call's prompt (on its span, its twin or its log records)."""
        related = {call.item["span_id"]}
        response_id = call.record["attributes"].get("gen_ai.response.id")
        for span_id, attributes in self.traces.get(call.item["trace_id"], {}).items():
            if attributes.get("llmtrace.call.duplicate_of") == call.item["span_id"]:
                related.add(span_id)
        for signal, item in _raw_items(self.fixture):
            ids = {item.get("spanId")}
            if signal == "logs" and response_id and response_id in json.dumps(item):
                ids.add(call.item["span_id"])
            if ids & related and MARKERS[0] in json.dumps(item):
                return True
        return False

    @property
    def streams(self) -> list[Call]:
        return [call for call in self.calls if call.upstream["stream"]]

    def row(self) -> dict[str, str]:
        """The compatibility table's cells for this fixture and capture setting."""
        name = self.fixture.name
        exact = [call for call in self.calls if call.usage == call.expected_usage()]
        priced = [call for call in self.calls
                  if abs((call.item["cost_usd"] or 0) - call.priced(call.usage)) < 1e-12]
        sent = [call for call in self.calls if self.content_sent(call)]
        analysed = [call for call in sent if call.item["findings_count"] > 0]
        with_ttft = [call for call in self.streams if call.item["ttft_ms"] is not None]
        stored = any(marker.encode() in self.stored for marker in MARKERS)
        return {
            "fixture": name,
            "capture": "on" if self.capture else "off",
            "calls": f"{len(self.calls)}/{len(self.fixture.upstream_calls)}",
            "usage": f"{len(exact)}/{len(self.calls)}",
            "cost": f"{len(priced)}/{len(self.calls)}",
            "ttft": f"{len(with_ttft)}/{len(self.streams)}",
            "content": f"{len(sent)}/{len(self.calls)}",
            "findings": f"{len(analysed)}/{len(sent)}",
            "stored": "yes" if stored else "no",
        }


def _raw_items(recorded: Fixture) -> list[tuple[str, dict[str, Any]]]:
    items: list[tuple[str, dict[str, Any]]] = []
    for export in recorded.exports:
        body = export["body"]
        if export["signal"] == "traces":
            for resource in body["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    items.extend(("traces", span) for span in scope["spans"])
        else:
            for resource in body["resourceLogs"]:
                for scope in resource["scopeLogs"]:
                    items.extend(("logs", record) for record in scope["logRecords"])
    return items


def instrumented_calls(recorded: Fixture) -> list[dict[str, Any]]:
    skipped = NOT_INSTRUMENTED.get(recorded.library, ())
    return [call for call in recorded.upstream_calls if call["path"] not in skipped]


def _store_bytes(db: Path) -> bytes:
    data = b""
    for path in (db, db.with_name(db.name + "-wal")):
        if path.exists():
            data += path.read_bytes()
    return data


def measure(collector: RunningCollector, recorded: Fixture, *, capture: bool,
            transport: Transport = "http") -> Measured:
    replay(collector, recorded, transport)
    collector.spans(recorded.span_count(), timeout=20)
    collector.telemetry.force_flush(10_000)
    api = collector.ops_url + "/api/v1"
    items = list(reversed(get_json(f"{api}/traces?limit=500")["items"]))
    expected = instrumented_calls(recorded)
    calls = [Call(item, get_json(f"{api}/spans/{item['span_id']}"), upstream)
             for item, upstream in zip(items, expected, strict=False)]
    traces: dict[str, dict[str, dict[str, Any]]] = {}
    for trace_id in {item["trace_id"] for item in items}:
        spans = get_json(f"{api}/traces/{trace_id}")["spans"]
        traces[trace_id] = {span["span_id"]: span["attributes"] for span in spans}
    with urllib.request.urlopen(collector.ops_url + "/ui/", timeout=10) as response:
        ui_status = response.status
    measured = Measured(
        recorded, capture, calls, get_json(f"{api}/stats")["totals"],
        collector.metrics_text(), _store_bytes(Path(collector.settings.sqlite_path)),
        ui_status, traces)
    if len(items) != len(expected):
        raise AssertionError(f"{recorded.name}: {len(items)} calls listed, "
                             f"{len(expected)} expected: {[i['name'] for i in items]}")
    return measured


def requests_total(text: str) -> float:
    return metric_value(text, "llmtrace_requests_total")
