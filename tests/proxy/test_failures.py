"""Upstream failures, bad input and disconnects: clear errors, nothing crashes."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import anthropic
import openai
import pytest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai
from opentelemetry.trace import StatusCode

from llmtrace_processors.attributes import LLMTRACE_PARSE_ERRORS
from tests.support.expectations import assert_genai_span
from tests.support.fake_upstream import SCENARIO_HEADER, FakeUpstream
from tests.support.openapi_check import call
from tests.support.proxy_harness import RunningProxy, running_proxy

MESSAGES = [{"role": "user", "content": "Hi"}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openai_client(url: str, scenario: str = "ok", timeout: float = 10) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-x", max_retries=0, timeout=timeout,
                         default_headers={SCENARIO_HEADER: scenario})


def test_upstream_429_is_passed_through_with_retry_after(proxy: RunningProxy) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client(proxy.url, "error-429").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body["type"] == "requests"  # type: ignore[index]
    span = proxy.only_span()
    assert_genai_span(span, operation="chat", provider="openai", model="gpt-4o-mini",
                      error_type="requests")
    assert (span.attributes or {})["http.response.status_code"] == 429
    # The upstream's own words are kept as the span's status description (the store's
    # status_message, what the viewer shows), not only the class "requests".
    assert span.status.description == \
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3."
    stored = call(proxy.url, "/api/v1/traces", {"status": "error"}).body["items"]
    assert [c["status_message"] for c in stored] == [span.status.description]


def test_an_upstream_error_message_keeps_no_secret(proxy: RunningProxy) -> None:
    key = "sk-proj-" + "Q7vT2mXk9LpR4sWz8NbC3hYd6FgJ1aKe5UoI0tVx"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0,
                      default_headers={SCENARIO_HEADER: "error-401-echo"}
                      ).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = proxy.only_span()
    description = span.status.description or ""
    assert description.startswith("Incorrect API key provided: [SECRET:"), description
    assert key not in description and key[8:20] not in description
    assert "api-keys" in description  # the rest of the message is kept


def test_anthropic_overloaded_keeps_its_message(proxy: RunningProxy) -> None:
    client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0,
                                 default_headers={SCENARIO_HEADER: "error-529"})
    with pytest.raises(anthropic.APIStatusError):
        client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=MESSAGES)
    span = proxy.only_span()
    assert (span.attributes or {})["error.type"] == "overloaded_error"
    assert span.status.description == "Overloaded"


def test_unreachable_upstream_is_502_in_openai_shape(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    with running_proxy(dead, tmp_path) as proxy:
        with pytest.raises(openai.APIStatusError) as caught:
            openai_client(proxy.url).chat.completions.create(model="gpt-4o-mini",
                                                             messages=MESSAGES)
        assert caught.value.status_code == 502
        body = caught.value.body
        assert body["code"] == "upstream_unreachable"  # type: ignore[index]
        assert "cannot connect to the upstream" in body["message"]  # type: ignore[index]
        span = proxy.only_span()
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "upstream_unreachable"
        assert 'llmtrace_upstream_errors_total{error_type="upstream_unreachable"' in \
            proxy.metrics_text()


def test_unreachable_upstream_is_502_in_anthropic_shape(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    with running_proxy(dead, tmp_path) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(model="claude-haiku-4-5", max_tokens=5,
                                   messages=MESSAGES)
        assert caught.value.status_code == 502
        assert caught.value.body["type"] == "error"  # type: ignore[index]
        assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_upstream_timeout_is_504(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, read_timeout_s=0.3) as proxy:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            openai_client(proxy.url, "hang").chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES)
        assert caught.value.status_code == 504
        assert time.monotonic() - started < 5
        assert (proxy.only_span().attributes or {})["error.type"] == "upstream_read_timeout"


def test_body_over_limit_is_413_and_not_forwarded(upstream: FakeUpstream,
                                                  tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, max_body_bytes=1024) as proxy:
        upstream.clear()
        with pytest.raises(openai.APIStatusError) as caught:
            openai_client(proxy.url).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 5000}])
        assert caught.value.status_code == 413
        assert "1024 bytes" in caught.value.body["message"]  # type: ignore[index]
        assert upstream.requests == []


def test_non_json_body_is_forwarded_and_noted(proxy: RunningProxy,
                                              upstream: FakeUpstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body=b"{not json",
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    # The fake answers whatever it received; the proxy forwarded it unchanged.
    assert upstream.requests[-1].body == b"{not json"
    assert response.status == 400 and body
    span = proxy.only_span()
    issues = (span.attributes or {})[LLMTRACE_PARSE_ERRORS]
    assert any("request" in issue for issue in issues)


def test_client_disconnect_mid_stream_ends_span_as_error(upstream: FakeUpstream,
                                                         tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy:
        body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES,
                           "stream": True}).encode()
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n"
            + f"{SCENARIO_HEADER}: slow-stream\r\nx-fake-delay: 0.3\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.close()
        deadline = time.monotonic() + 10
        spans = []
        while time.monotonic() < deadline and not spans:
            spans = proxy.spans()
            time.sleep(0.05)
        assert len(spans) == 1
        assert spans[0].status.status_code is StatusCode.ERROR
        assert (spans[0].attributes or {})["error.type"] == "client_disconnected"
        assert proxy.server.in_flight.count == 0


def test_reset_midstream_is_error_and_client_sees_broken_stream(proxy: RunningProxy) -> None:
    with pytest.raises((openai.APIConnectionError, Exception)):
        list(openai_client(proxy.url, "reset-midstream").chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True))
    span = proxy.only_span()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "upstream_disconnected"


def test_malformed_sse_event_is_relayed_and_noted(proxy: RunningProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("POST", "/v1/chat/completions",
                 body=json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES,
                                  "stream": True, "stream_options": {"include_usage": True}}),
                 headers={"Content-Type": "application/json", SCENARIO_HEADER: "malformed-sse"})
    raw = conn.getresponse().read()
    conn.close()
    assert b"data: [DONE]" in raw
    attrs = proxy.only_span().attributes or {}
    assert any("stream" in issue for issue in attrs[LLMTRACE_PARSE_ERRORS])
    assert attrs[genai.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


def test_split_sse_events_are_reassembled(proxy: RunningProxy) -> None:
    chunks = list(openai_client(proxy.url, "split-events").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in chunks)
    attrs = proxy.only_span().attributes or {}
    assert attrs[genai.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


def test_hop_by_hop_and_llmtrace_headers_not_forwarded(proxy: RunningProxy,
                                                       upstream: FakeUpstream) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", "/v1/models?limit=2", headers={
        "Connection": "keep-alive, X-Custom-Hop", "X-Custom-Hop": "1", "Keep-Alive": "5",
        "X-LLMTrace-Tenant-ID": "team-a", "X-Other": "kept", "Authorization": "Bearer k",
    })
    conn.getresponse().read()
    conn.close()
    received = upstream.requests[-1]
    assert received.query == "limit=2"
    assert received.headers["x-other"] == "kept"
    assert received.headers["authorization"] == "Bearer k"
    for name in ("x-custom-hop", "keep-alive", "x-llmtrace-tenant-id"):
        assert name not in received.headers
    assert received.headers["host"] == upstream.url.split("//", 1)[1]


def test_incoming_traceparent_makes_the_span_a_child(proxy: RunningProxy) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key="k", max_retries=0,
        default_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    ).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = proxy.only_span()
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent_id


def test_a_response_larger_than_the_body_limit_is_relayed_whole_but_not_parsed(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    # The limit is lower than the fake's chat completion (~600 bytes), above the request.
    with running_proxy(upstream.url, tmp_path, max_body_bytes=300) as proxy:
        raw = openai_client(proxy.url).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES)
        body = raw.http_response.content
        assert len(body) > 300
        assert raw.parse().choices[0].message.content  # the client got all of it
        span = proxy.only_span()
    attrs = dict(span.attributes or {})
    assert any("relayed without parsing" in issue
               for issue in attrs[LLMTRACE_PARSE_ERRORS])  # type: ignore[union-attr]
    assert attrs["http.response.status_code"] == 200
    assert span.status.status_code is not StatusCode.ERROR
