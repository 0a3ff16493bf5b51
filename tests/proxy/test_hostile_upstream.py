"""An upstream that sends what the parsers must not hold whole: still relayed byte for byte.

The proxy parses a copy of every response for telemetry. Two things it must not hold
without bound: one SSE event larger than the decoder's limit (16 MiB), and a compressed
body that inflates to more than ``server.max_body_bytes`` (deflate inflates ~1,000 times).
Either way parsing stops, the span says why, and the client gets exactly what the upstream
sent, as if the proxy were not there.
"""

from __future__ import annotations

import json
import urllib.request
import zlib
from pathlib import Path

from llmtrace_processors.attributes import LLMTRACE_PARSE_ERRORS
from tests.support.fake_upstream import ENCODING_HEADER, SCENARIO_HEADER, SIZE_HEADER, FakeUpstream
from tests.support.proxy_harness import running_proxy

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}


def _post(base: str, body: dict[str, object], **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{base}/v1/chat/completions", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-test",
                 **headers})
    with urllib.request.urlopen(request, timeout=60) as response:  # never decodes gzip
        return response.status, dict(response.headers), response.read()


def _issues(attributes: object) -> str:
    return " | ".join(dict(attributes or {}).get(LLMTRACE_PARSE_ERRORS, ()))  # type: ignore[call-overload]


def test_an_sse_event_over_the_limit_is_relayed_and_the_stream_goes_on(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    headers = {SCENARIO_HEADER: "huge-event"}  # 17 MiB of data in one event, mid-stream
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        status, _, relayed = _post(proxy.url, body, **headers)
        span = proxy.only_span()
    assert status == 200
    assert relayed == upstream.requests[-1].sent
    assert len(relayed) > 17 * 1024 * 1024 and relayed.endswith(b"data: [DONE]\n\n")
    assert "SSE event larger than" in _issues(span.attributes)


def test_after_an_oversized_event_a_stream_the_proxy_edits_passes_on_unedited(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    # The client did not ask for usage: the proxy asks for it and removes the extra chunk.
    # Past an event it cannot parse it can no longer tell which chunk that is, so the rest
    # of the stream passes as the upstream sent it: nothing is lost.
    body = {**CHAT, "stream": True}
    with running_proxy(upstream.url, tmp_path) as proxy:
        status, _, relayed = _post(proxy.url, body, **{SCENARIO_HEADER: "huge-event"})
        span = proxy.only_span()
    assert status == 200
    events = [event for event in relayed.split(b"\n\n") if event]
    assert b"x" * 1000 in relayed and events[-1] == b"data: [DONE]"
    texts = [json.loads(event[6:])["choices"][0]["delta"].get("content", "")
             for event in events if event.startswith(b"data: {") and b'"choices":[{' in event]
    assert "".join(texts) == "Hello from fake upstream."
    assert "SSE event larger than" in _issues(span.attributes)


def test_a_gzip_body_that_inflates_past_the_limit_is_relayed_not_parsed(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    headers = {SCENARIO_HEADER: "huge-event", SIZE_HEADER: str(8 * 1024 * 1024),
               ENCODING_HEADER: "gzip"}  # ~8 KB on the wire, 8 MiB inflated
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, max_body_bytes=1024 * 1024) as proxy:
        status, relayed_headers, relayed = _post(proxy.url, CHAT, **headers)
        span = proxy.only_span()
    assert status == 200 and relayed_headers["Content-Encoding"] == "gzip"
    assert relayed == upstream.requests[-1].sent and len(relayed) < 100_000
    assert "gzip body decodes to more than 1048576 bytes" in _issues(span.attributes)
    assert "gen_ai.usage.input_tokens" not in (span.attributes or {})


def test_a_gzip_body_within_the_limit_is_parsed(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy:
        status, _, relayed = _post(proxy.url, CHAT, **{ENCODING_HEADER: "gzip"})
        span = proxy.only_span()
    assert status == 200
    reply = json.loads(zlib.decompress(relayed, 16 + zlib.MAX_WBITS))
    assert reply["choices"][0]["message"]["content"] == "Hello from fake upstream."
    assert (span.attributes or {})["gen_ai.usage.input_tokens"] == reply["usage"]["prompt_tokens"]


def test_a_gzip_stream_with_an_oversized_event_is_relayed_and_inflated_in_pieces(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    headers = {SCENARIO_HEADER: "huge-event", ENCODING_HEADER: "gzip"}
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        status, _, relayed = _post(proxy.url, body, **headers)
        span = proxy.only_span()
    assert status == 200 and relayed == upstream.requests[-1].sent
    assert len(relayed) < 1_000_000  # 17 MiB of "x" compresses to a few tens of KB
    assert zlib.decompress(relayed, 16 + zlib.MAX_WBITS).endswith(b"data: [DONE]\n\n")
    assert "SSE event larger than" in _issues(span.attributes)
