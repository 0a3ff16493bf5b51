"""The recorded exports of the real libraries (``fixtures/``) through a real ``collect``.

For every library and version, with message capture off (replayed over OTLP/HTTP) and on
(over OTLP/gRPC), what ``collect`` serves on its own port must be what the proxy would serve
for the same calls: one counted call per LLM call the library instruments (the
application's span, httpx's POST spans and the ``anthropic`` SDK's own twin span are not
calls), usage equal to what the upstream reported (except where the library itself reports
something else, documented in ``compat.USAGE_AS_REPORTED``) and priced accordingly, time to
first chunk wherever the library carries it in any form, the content analysed when it was
sent (as attributes, events or OTLP logs) and never stored with capture off; the same
numbers in /api/v1/stats and /metrics, and the viewer answering.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.receiver.compat import (
    MARKERS,
    USAGE_AS_REPORTED,
    Measured,
    measure,
    requests_total,
)
from tests.receiver.harness import running_collector
from tests.receiver.helpers import metric_value
from tests.receiver.replay import fixture, fixture_names

#: Streams whose library reports no time to first chunk in any form.
NO_TTFT = {"openai-v2-2.4b0", "openai-v2-2.1b0"}
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@pytest.fixture(params=[False, True], ids=["capture-off", "capture-on"])
def capture(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def measured_through_collect(name: str, capture: bool, tmp_path: Path) -> Measured:
    """Replay ``name`` (capture on: over gRPC; off: over HTTP) and measure the result."""
    env = {CAPTURE: "true" if capture else "false"}
    with running_collector(tmp_path, env=env, receiver_join_wait_s=0.5) as collector:
        return measure(collector, fixture(name), capture=capture,
                       transport="grpc" if capture else "http")


@pytest.mark.parametrize("name", fixture_names())
def test_library_through_collect(name: str, capture: bool, tmp_path: Path) -> None:
    measured = measured_through_collect(name, capture, tmp_path)
    library = measured.fixture.library
    calls = measured.calls
    # One counted call per instrumented LLM call: stats, listing and /metrics agree.
    assert measured.stats["calls"] == len(calls) and measured.stats["errors"] == 0
    assert requests_total(measured.metrics) == len(calls)
    assert metric_value(measured.metrics, "gen_ai_client_operation_duration_seconds_count") \
        == len(calls)
    assert metric_value(measured.metrics, "gen_ai_client_token_usage_sum",
                        gen_ai_token_type="input") \
        == sum(call.item["input_tokens"] or 0 for call in calls) == measured.stats["input_tokens"]
    for index, call in enumerate(calls):
        assert call.item["provider"] == call.upstream["provider"]
        assert call.item["request_model"] == call.upstream["model"]
        reported_otherwise = USAGE_AS_REPORTED.get((library, index))
        if reported_otherwise is None:
            assert call.usage == call.expected_usage(), (index, call.item["name"])
        else:  # the library's own number, documented: stored and priced as sent
            assert call.usage != call.expected_usage(), reported_otherwise
        assert call.item["cost_usd"] == pytest.approx(call.priced(call.usage), rel=1e-9)
    for call in measured.streams:
        if library not in NO_TTFT:
            assert call.item["ttft_ms"] is not None and call.item["ttft_ms"] > 0, call.item
    sent = [call for call in calls if measured.content_sent(call)]
    for call in sent:  # analysed wherever it came from (attributes, events, logs, a twin)
        assert call.item["findings_count"] > 0, (call.item["name"], call.record["attributes"])
    stored = [marker for marker in MARKERS if marker.encode() in measured.stored]
    if capture and sent:
        assert stored, "capture is on: the prompts are stored"
    if not capture:
        assert stored == [], "capture is off: no prompt may reach the store"
    assert measured.ui_status == 200


def test_every_fixture_has_calls_content_and_a_stream() -> None:
    """The fixtures hold what the tests above need (a re-recording that lost it fails)."""
    for name in fixture_names():
        recorded = fixture(name)
        assert recorded.upstream_calls and recorded.span_count()
        assert any(call["stream"] for call in recorded.upstream_calls), name


@pytest.mark.parametrize("name", fixture_names())
def test_redacted_content_is_all_that_is_stored(name: str, tmp_path: Path) -> None:
    """Capture on with ``security.pii_export=redact``: whatever dialect carried the prompt
    (semconv keys, OpenInference's input.value, log records, a twin span), the store holds
    only the redacted text."""
    with running_collector(tmp_path, env={CAPTURE: "true"}, receiver_join_wait_s=0.5,
                           security_pii_export="redact") as collector:
        measured = measure(collector, fixture(name), capture=True)
    assert [marker for marker in MARKERS if marker.encode() in measured.stored] == []
    if any(measured.content_sent(call) for call in measured.calls):
        assert b"[PII:EMAIL]" in measured.stored
