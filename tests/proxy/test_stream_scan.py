"""security.stream_scan through the running proxy, with the real openai and anthropic SDKs.

The fake upstream's ``leak`` scenario streams an AWS key pair (the access key id split
across two chunks) and then keeps going, 50 ms between chunks; in stop mode the client's
stream must end the way the API ends a filtered one, without the rest of the answer, and
the upstream must see the proxy hang up.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from llmtrace_otel.config import Settings, StreamScan, load_settings
from llmtrace_otel.providers.openai_chat import OpenAIChatAdapter
from llmtrace_otel.providers.types import SSEEvent
from llmtrace_otel.proxy.stream_guard import StreamScanPolicy, StreamStopped, stop_events
from llmtrace_otel.wiring import build_proxy
from llmtrace_processors.security.findings import Severity
from tests.support.fake_upstream import LEAK_CHUNKS, LEAK_TEXT, SCENARIO_HEADER, FakeUpstream
from tests.support.proxy_harness import running_proxy

LEAK = {SCENARIO_HEADER: "leak"}
TAIL = LEAK_CHUNKS[-1]  # never reaches a client in stop mode
MESSAGES = [{"role": "user", "content": "Give me the deploy config."}]


def _openai(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-x", max_retries=0, timeout=10)


def _anthropic(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="sk-ant-x", max_retries=0, timeout=10)


def _wait_cut(upstream: FakeUpstream) -> int:
    deadline = time.monotonic() + 5
    while upstream.streams_cut_short == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    return upstream.streams_cut_short


def _stream_events(span: ReadableSpan) -> list[dict[str, object]]:
    return [dict(e.attributes or {}) for e in span.events
            if e.name == "llmtrace.security.stream.finding"]


def test_stop_mode_ends_an_openai_stream_with_content_filter(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, security_stream_scan="stop") as proxy:
        stream = _openai(proxy.url).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=LEAK)
        chunks = list(stream)  # the SDK reads to [DONE] without an error
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].choices[0].finish_reason == "content_filter"
        assert text.startswith(LEAK_CHUNKS[0]) and TAIL not in text
        assert _wait_cut(upstream) == 1  # the proxy hung up on the upstream
        span = proxy.only_span()
        attrs = dict(span.attributes or {})
        assert attrs["llmtrace.security.stream_stopped"] is True
        assert "secret.aws_secret_key" in attrs["llmtrace.security.stream.finding_types"]  # type: ignore[operator]
        found = {e["llmtrace.security.finding.type"]: e for e in _stream_events(span)}
        secret = found["secret.aws_secret_key"]
        assert secret["llmtrace.security.finding.severity"] == "critical"
        assert LEAK_TEXT[int(secret["llmtrace.security.finding.start"]):  # type: ignore[arg-type]
                         int(secret["llmtrace.security.finding.end"])].startswith("wJal")  # type: ignore[arg-type]
        assert "secret.aws_access_key" in found  # split across two chunks, found whole
        assert "error.type" not in attrs
        # the background processor still reports what reached the client
        assert "secret.aws_secret_key" in attrs["llmtrace.security.finding_types"]  # type: ignore[operator]


def test_the_openai_stream_helper_reports_the_stop_as_its_content_filter_error(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, security_stream_scan="stop") as proxy:
        with _openai(proxy.url).chat.completions.stream(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers=LEAK) as stream:
            text = "".join(e.delta for e in stream if e.type == "content.delta")
            with pytest.raises(openai.ContentFilterFinishReasonError) as caught:
                stream.get_final_completion()
        assert text.startswith(LEAK_CHUNKS[0]) and TAIL not in text
        partial = caught.value.completion.choices[0]
        assert partial.finish_reason == "content_filter"
        assert TAIL not in (partial.message.content or "")


def test_stop_mode_ends_an_anthropic_stream_with_a_refusal(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, security_stream_scan="stop") as proxy:
        with _anthropic(proxy.url).messages.stream(
                model="claude-3-5-haiku-latest", max_tokens=200, messages=MESSAGES,
                extra_headers=LEAK) as stream:
            text = "".join(stream.text_stream)
            message = stream.get_final_message()
        assert message.stop_reason == "refusal"
        assert text.startswith(LEAK_CHUNKS[0]) and TAIL not in text
        assert _wait_cut(upstream) == 1
        attrs = dict(proxy.only_span().attributes or {})
        assert attrs["llmtrace.security.stream_stopped"] is True
        assert "error.type" not in attrs


def test_stop_mode_ends_a_responses_stream_as_incomplete(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, security_stream_scan="stop") as proxy:
        events = list(_openai(proxy.url).responses.create(
            model="gpt-4o-mini", input="Give me the deploy config.", stream=True,
            extra_headers=LEAK))
        last = events[-1]
        assert last.type == "response.incomplete"
        assert last.response.incomplete_details.reason == "content_filter"  # type: ignore[union-attr]
        text = "".join(getattr(e, "delta", "") for e in events
                       if e.type == "response.output_text.delta")
        assert TAIL not in text
        assert dict(proxy.only_span().attributes or {})["llmtrace.security.stream_stopped"]


def test_observe_mode_relays_everything_and_records_the_findings(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, security_stream_scan="observe") as proxy:
        stream = _openai(proxy.url).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=LEAK)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == LEAK_TEXT
        span = proxy.only_span()
        attrs = dict(span.attributes or {})
        assert "llmtrace.security.stream_stopped" not in attrs
        assert set(attrs["llmtrace.security.stream.finding_types"]) == {  # type: ignore[arg-type]
            "secret.aws_access_key", "secret.aws_secret_key"}
        assert int(attrs["llmtrace.security.stream.scanned_chars"]) >= len(LEAK_TEXT)  # type: ignore[arg-type]
        assert len(_stream_events(span)) == 2
        assert upstream.streams_cut_short == 0


def test_stop_mode_lets_clean_streams_through(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, security_stream_scan="stop") as proxy:
        text = "".join(c.choices[0].delta.content or "" for c in _openai(proxy.url)
                       .chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                stream=True) if c.choices)
        assert text == "Hello from fake upstream."
        attrs = dict(proxy.only_span().attributes or {})
        assert "llmtrace.security.stream_stopped" not in attrs
        assert "llmtrace.security.stream.finding_types" not in attrs


def _chunk_events(pieces: list[str]) -> list[SSEEvent]:
    events = []
    for piece in pieces:
        data = json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                           "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "delta": {"content": piece},
                                        "finish_reason": None}]})
        events.append(SSEEvent(f"data: {data}\n\n".encode(), None, data))
    return events


@pytest.mark.parametrize(("stop_at", "stops"), [("critical", False), ("high", True)])
def test_only_findings_at_the_stop_severity_stop_the_stream(stop_at: str, stops: bool) -> None:
    # an access key id alone is `high`; the default stop severity is `critical`
    policy = StreamScanPolicy(mode="stop", stop_severity=Severity.parse(stop_at),
                              every=16, min_every=16)  # a scan after each piece
    accumulator = OpenAIChatAdapter().new_stream_accumulator()
    span = TracerProvider().get_tracer("test").start_span("chat")
    watch = policy.watch("openai.chat_completions", None, accumulator, span)
    assert watch is not None
    stopped = None
    try:
        pieces = ["The key id is AKIA", "2OGYBAH6QNXC5VLP, and", " that is all."]
        for event in _chunk_events(pieces):
            accumulator.feed(event)
            watch.on_event()
        watch.close()
    except StreamStopped as stop:
        stopped = stop
    assert (stopped is not None) is stops
    if stopped is not None:
        assert stopped.final is not None
        assert b'"finish_reason":"content_filter"' in stopped.final
        assert stopped.final.endswith(b"data: [DONE]\n\n")
        assert b'"id":"chatcmpl-1"' in stopped.final


def test_off_mode_adds_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        text = "".join(c.choices[0].delta.content or "" for c in _openai(proxy.url)
                       .chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                stream=True, extra_headers=LEAK) if c.choices)
        assert text == LEAK_TEXT
        attrs = dict(proxy.only_span().attributes or {})
        assert not [k for k in attrs if k.startswith("llmtrace.security.stream")]


def _stream_scan_of(settings: Settings) -> StreamScanPolicy | None:
    server = build_proxy(dataclasses.replace(settings, sqlite_enabled=False), env={})
    server.telemetry.shutdown()
    return server.context.stream_scan


def test_policy_from_settings() -> None:
    assert _stream_scan_of(load_settings(env={})) is None
    policy = _stream_scan_of(load_settings(env={
        "LLMTRACE_SECURITY_STREAM_SCAN": "stop", "LLMTRACE_SECURITY_STREAM_STOP_SEVERITY": "high"}))
    assert policy is not None and policy.mode is StreamScan.STOP
    assert policy.stop_severity is Severity.HIGH
    with pytest.raises(ValueError, match=r"security.stream_scan \(env .*\): 'halt' is not one of"):
        load_settings(env={"LLMTRACE_SECURITY_STREAM_SCAN": "halt"})
    with pytest.raises(ValueError, match="security.stream_stop_severity"):
        load_settings(env={"LLMTRACE_SECURITY_STREAM_STOP_SEVERITY": "fatal"})


def test_streams_of_unknown_shape_are_closed_not_faked() -> None:
    assert stop_events("openai.embeddings", object(), [0]) is None
