"""The request-guard hook, through the running proxy with the real SDKs as clients.

The guards here are tiny test plug-ins (the product's guards have their own tests); what
is under test is the proxy's side of the contract: verdicts reach the span, the client and
the upstream as documented, a failing guard fails open and is counted, and every admitted
call is reported back exactly once with how it ended.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import openai
import pytest
from opentelemetry.trace import StatusCode

from llmtrace_otel.guards import CallInfo, CallResult, Verdict
from llmtrace_otel.web.errors import ErrorReply
from tests.support.fake_upstream import SCENARIO_HEADER, FakeUpstream
from tests.support.proxy_harness import running_proxy

MESSAGES = [{"role": "user", "content": "Hi"}]


@dataclass
class RecordingGuard:
    name: str
    verdict: Verdict | None = None
    fail: bool = False
    seen: list[CallInfo] = field(default_factory=list)
    completed: list[CallResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def check(self, call: CallInfo) -> Verdict | None:
        self.seen.append(call)
        if self.fail:
            raise RuntimeError("guard bug")
        return self.verdict

    def on_complete(self, call: CallInfo, result: CallResult) -> None:
        with self.lock:
            self.completed.append(result)


def _openai(url: str, scenario: str = "ok") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-x", max_retries=0, timeout=10,
                         default_headers={SCENARIO_HEADER: scenario})


def test_rejection_is_answered_in_the_api_shape_and_never_reaches_upstream(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    reject = ErrorReply(429, "rate_limited", "tenant team-a is over 5 requests/s; retry in 2 s",
                        headers=(("Retry-After", "2"), ("X-RateLimit-Limit", "5")))
    guard = RecordingGuard("limits", Verdict(attributes={"llmtrace.tenant.id": "team-a"},
                                             reject=reject))
    later = RecordingGuard("later")
    with running_proxy(upstream.url, tmp_path, guards=[guard, later]) as proxy:
        with pytest.raises(openai.RateLimitError) as caught:
            _openai(proxy.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert caught.value.response.headers["retry-after"] == "2"
        assert caught.value.response.headers["x-ratelimit-limit"] == "5"
        assert caught.value.body["code"] == "rate_limited"  # type: ignore[index]
        assert "team-a is over" in caught.value.body["message"]  # type: ignore[index]
        span = proxy.only_span()
    attrs = dict(span.attributes or {})
    assert attrs["llmtrace.tenant.id"] == "team-a"
    assert attrs["error.type"] == "rate_limited"
    assert attrs["http.response.status_code"] == 429
    assert span.status.status_code is StatusCode.ERROR
    assert upstream.requests == []
    assert later.seen == []  # the first rejection wins
    assert guard.completed == []  # the rejecting guard is not told about its own rejection
    assert guard.seen[0].request is not None and guard.seen[0].request.model == "gpt-4o-mini"


def test_anthropic_clients_get_anthropic_error_shape(upstream: FakeUpstream,
                                                     tmp_path: Path) -> None:
    guard = RecordingGuard("security", Verdict(reject=ErrorReply(
        400, "prompt_injection_blocked", "blocked by llmtrace security policy")))
    with running_proxy(upstream.url, tmp_path, guards=[guard]) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-x", max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model="claude-3-5-haiku-latest", max_tokens=10,
                                   messages=MESSAGES)
        body = caught.value.body
        assert body["type"] == "error"  # type: ignore[index]
        assert body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert proxy.only_span().attributes["error.type"] == "prompt_injection_blocked"  # type: ignore[index]


def test_admitted_call_gets_attributes_headers_and_completion(upstream: FakeUpstream,
                                                              tmp_path: Path) -> None:
    guard = RecordingGuard("limits", Verdict(attributes={"llmtrace.tenant.id": "team-b"},
                                             response_headers=[("X-RateLimit-Remaining", "4")]))
    with running_proxy(upstream.url, tmp_path, guards=[guard]) as proxy:
        raw = _openai(proxy.url).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES)
        assert raw.headers["x-ratelimit-remaining"] == "4"
        assert raw.parse().choices[0].message.content
        span = proxy.only_span()
    assert (span.attributes or {})["llmtrace.tenant.id"] == "team-b"
    assert len(guard.completed) == 1
    result = guard.completed[0]
    assert result.status_code == 200 and result.error_type is None
    assert result.response is not None and result.response.usage is not None
    assert result.response.usage.input_tokens


def test_completion_reports_upstream_errors_and_streams(upstream: FakeUpstream,
                                                        tmp_path: Path) -> None:
    guard = RecordingGuard("limits")
    with running_proxy(upstream.url, tmp_path, guards=[guard]) as proxy:
        with pytest.raises(openai.InternalServerError):
            _openai(proxy.url, "error-500").chat.completions.create(model="gpt-4o-mini",
                                                                   messages=MESSAGES)
        stream = _openai(proxy.url).chat.completions.create(model="gpt-4o-mini",
                                                            messages=MESSAGES, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        proxy.spans(2)
    statuses = sorted((r.status_code, r.error_type is None) for r in guard.completed)
    assert statuses == [(200, True), (500, False)]
    streamed = next(r for r in guard.completed if r.status_code == 200)
    assert streamed.response is not None and streamed.response.usage is not None


def test_failing_guard_fails_open_and_is_counted(upstream: FakeUpstream, tmp_path: Path) -> None:
    broken = RecordingGuard("broken", fail=True)
    with running_proxy(upstream.url, tmp_path, guards=[broken]) as proxy:
        reply = _openai(proxy.url).chat.completions.create(model="gpt-4o-mini",
                                                           messages=MESSAGES)
        assert reply.choices[0].message.content
        proxy.only_span()
        metrics = proxy.metrics_text()
    assert ('llmtrace_telemetry_dropped_total{reason="guard_error",stage="guard.broken"} 1.0'
            in metrics)
    assert broken.completed == []  # a guard that failed did not admit the call
