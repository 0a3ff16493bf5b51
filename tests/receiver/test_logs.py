"""Content sent as OTLP logs: received, joined to its span before analysis, forwarded.

The payloads are the real ``opentelemetry-instrumentation-openai-v2`` 2.1b0 exports
(``fixtures/openai-v2-2.1b0/legacy.json``: each chat call's three message events as log
records, then its span), replayed in the orders a sender's batching can produce.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc

from llmtrace_otel.receiver import otlp_json
from tests.receiver.compat import MARKERS
from tests.receiver.harness import RunningCollector, running_collector
from tests.receiver.helpers import JSON, metric_value, post
from tests.receiver.replay import fixture
from tests.support.otlp_sink import OTLPSink

CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
RECORDED = fixture("openai-v2-2.1b0/legacy")
#: In the recording: logs of call 1, its span, logs of call 2, its span, the app's span.
CALL1_LOGS, CALL1_SPAN, CALL2_LOGS, CALL2_SPAN, APP_SPAN = (
    [0, 1, 2], [3], [4, 5, 6], [7], [8])


def send(collector: RunningCollector, indexes: list[int]) -> None:
    for index in indexes:
        export = RECORDED.exports[index]
        status, _, answer = post(f"{collector.http_url}/v1/{export['signal']}",
                                 json.dumps(export["body"]).encode(), JSON)
        assert status == 200, answer


def findings_by_span(collector: RunningCollector, expected: int) -> dict[str, Any]:
    spans = collector.spans(expected)
    return {span.name + format(span.context.span_id, "016x"):
            (span.attributes or {}).get("llmtrace.security.findings") for span in spans
            if (span.attributes or {}).get("gen_ai.operation.name") == "chat"}


def test_events_that_come_first_wait_for_their_span(tmp_path: Path) -> None:
    with running_collector(tmp_path, receiver_join_wait_s=0) as collector:
        send(collector, [*CALL1_LOGS, *CALL1_SPAN])
        [findings] = findings_by_span(collector, 1).values()
        assert findings == 3  # the e-mail, the AWS key and the injection in the user event
        assert metric_value(collector.metrics_text(), "llmtrace_receiver_log_events_total",
                            outcome="joined") == 3


def test_events_after_their_span_are_joined_within_the_wait(tmp_path: Path) -> None:
    with running_collector(tmp_path, receiver_join_wait_s=5) as collector:
        # The first call teaches the receiver that this service sends its content as logs;
        # the second call's span then waits for its events, which come after it.
        send(collector, [*CALL1_LOGS, *CALL1_SPAN, *CALL2_SPAN])
        assert len(collector.spans(1, timeout=1)) == 1  # the second span is held
        send(collector, CALL2_LOGS)
        assert sorted(findings_by_span(collector, 2).values()) == [3, 3]


def test_events_after_a_span_that_went_on_are_counted_unjoined(tmp_path: Path) -> None:
    with running_collector(tmp_path, receiver_join_wait_s=0) as collector:
        send(collector, [*CALL1_SPAN])
        collector.spans(1)
        send(collector, CALL1_LOGS)
        deadline = time.monotonic() + 10
        text = collector.metrics_text()
        while time.monotonic() < deadline and metric_value(
                text, "llmtrace_receiver_log_events_total", outcome="unjoined") < 3:
            time.sleep(0.02)
            text = collector.metrics_text()
        assert metric_value(text, "llmtrace_receiver_log_events_total",
                            outcome="unjoined") == 3
        [findings] = findings_by_span(collector, 1).values()
        assert findings is None  # nothing was analysed: the content came too late


def test_logs_over_grpc_are_joined(tmp_path: Path) -> None:
    with running_collector(tmp_path) as collector, grpc.insecure_channel(
            collector.grpc_endpoint) as channel:
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        for index in CALL1_LOGS:
            stub.Export(otlp_json.parse_logs(json.dumps(RECORDED.exports[index]["body"])
                                             .encode()), timeout=10)
        send(collector, CALL1_SPAN)
        [findings] = findings_by_span(collector, 1).values()
        assert findings == 3


@pytest.mark.parametrize("capture", [False, True])
def test_logs_are_forwarded_with_content_only_when_capture_is_on(
        tmp_path: Path, capture: bool) -> None:
    with OTLPSink() as sink, running_collector(
            tmp_path, env={CAPTURE: str(capture).lower()},
            otlp_endpoint=f"http://{sink.grpc_endpoint}", otlp_protocol="grpc") as collector:
        send(collector, [*CALL1_LOGS, *CALL1_SPAN])
        forwarded = sink.wait_for_logs(3)
        records = [record for request in forwarded for resource in request.resource_logs
                   for scope in resource.scope_logs for record in scope.log_records]
        assert len(records) == 3
        text = b"".join(request.SerializeToString() for request in forwarded)
        assert (MARKERS[0].encode() in text) is capture
        # the events themselves still go on, trace context and names kept
        assert {record.span_id.hex() for record in records} == {
            RECORDED.exports[CALL1_SPAN[0]]["body"]["resourceSpans"][0]["scopeSpans"][0]
            ["spans"][0]["spanId"]}
