"""SpanIntake on its own: bounds, failures that must not lose spans silently, shutdown."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from llmtrace_otel.receiver.intake import SpanIntake
from llmtrace_otel.receiver.status import Refused
from llmtrace_processors.chain import BackgroundSpanProcessor


class Collect(SpanProcessor):
    def __init__(self, block: threading.Event | None = None) -> None:
        self.spans: list[ReadableSpan] = []
        self.block = block
        self.done = threading.Event()

    def on_end(self, span: ReadableSpan) -> None:
        if self.block is not None:
            self.block.wait(10)
        self.spans.append(span)
        self.done.set()


def request(*names: str, attributes: dict[str, str] | None = None) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    scope = message.resource_spans.add().scope_spans.add()
    for index, name in enumerate(names, start=1):
        span = scope.spans.add(trace_id=b"\x01" * 16, span_id=index.to_bytes(8, "big"), name=name)
        for key, value in (attributes or {}).items():
            span.attributes.add(key=key).value.string_value = value
    return message


def test_a_failing_normaliser_forwards_the_span_as_received() -> None:
    sink = Collect()
    errors: list[int] = []

    def broken(attributes: dict, events: list, *, start_ns: int) -> None:
        attributes.clear()  # even a normaliser that damages its input before failing
        raise RuntimeError("bug")

    intake = SpanIntake(sink, max_spans=10, retry_after_s=1, normalise=broken,
                        on_normalise_error=lambda: errors.append(1))
    intake.submit(request("a", attributes={"gen_ai.system": "openai"}), 1)
    assert intake.close()
    [span] = sink.spans
    assert dict(span.attributes or {}) == {}  # what `broken` left; counted, not lost
    assert errors == [1]


def test_decode_errors_are_counted() -> None:
    sink = Collect()
    drops: list[tuple[str, int]] = []
    intake = SpanIntake(sink, max_spans=10, retry_after_s=1,
                        on_drop=lambda reason, n: drops.append((reason, n)))
    intake.submit("not a request", 3)  # type: ignore[arg-type]
    assert intake.close()
    assert drops == [("decode_error", 3)] and sink.spans == []


def test_bounds_and_oversized_requests() -> None:
    release = threading.Event()
    sink = Collect(block=release)
    intake = SpanIntake(sink, max_spans=3, retry_after_s=0.25)
    intake.submit(request("a", "b", "c", "d", "e"), 5)  # larger than the queue, queue empty
    with pytest.raises(Refused) as caught:
        intake.submit(request("f"), 1)
    assert caught.value.outcome == "busy" and caught.value.retry_after_s == 0.25
    assert caught.value.http_status == 429
    release.set()
    assert intake.close()
    assert [span.name for span in sink.spans] == ["a", "b", "c", "d", "e"]
    with pytest.raises(Refused) as closed:
        intake.submit(request("g"), 1)
    assert closed.value.outcome == "shutdown" and closed.value.http_status == 503


def test_hand_off_waits_for_room_instead_of_letting_the_chain_drop() -> None:
    release = threading.Event()
    sink = Collect(block=release)
    drops: list[tuple[str, str]] = []
    head = BackgroundSpanProcessor(sink, max_queue_size=1,
                                   on_drop=lambda stage, reason: drops.append((stage, reason)))
    intake = SpanIntake(head, max_spans=100, retry_after_s=1)
    intake.submit(request(*[f"s{i}" for i in range(20)]), 20)
    assert sink.done.wait(0) is False
    release.set()
    assert intake.close()
    head.shutdown()
    assert len(sink.spans) == 20 and drops == []


def test_close_gives_up_on_a_stuck_chain_and_counts_what_is_left() -> None:
    stuck = threading.Event()
    sink = Collect(block=stuck)
    head = BackgroundSpanProcessor(sink, max_queue_size=1)
    drops: list[tuple[str, int]] = []
    intake = SpanIntake(head, max_spans=100, retry_after_s=1,
                        on_drop=lambda reason, n: drops.append((reason, n)))
    intake.submit(request("a", "b", "c", "d"), 4)
    intake.submit(request("e", "f"), 2)
    assert intake.close(timeout_s=0.3) is False
    stuck.set()
    head.shutdown()
    handed = len(sink.spans)
    assert sum(n for reason, n in drops if reason == "shutdown") == 6 - handed
