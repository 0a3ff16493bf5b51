"""Compressed response bodies: parsed after decoding, or passed on and noted when we cannot.

The transport is httpx2's own ``MockTransport`` serving the fake upstream's payloads
gzip-compressed, so each test controls exactly what the application's client receives.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import anthropic
import httpx2
import pytest

from llmtrace_processors.attributes import LLMTRACE_PARSE_ERRORS
from tests.sdk.harness import AppTelemetry, instrumented
from tests.support.expectations import assert_genai_span, expected_usage
from tests.support.fake_upstream import (
    REPLY_TEXT,
    anthropic_message,
    anthropic_stream,
    usage_for,
)

MODEL = "claude-haiku-4-5"


def transport(encoding: str, compress: Callable[[bytes], bytes], *, preloaded: bool = False
              ) -> httpx2.MockTransport:
    """Answers like the fake upstream, compressed. ``stream=`` leaves the body to be read
    as a real transport does; ``content=`` makes httpx read it before ``send`` returns."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if body.get("stream"):
            payload, kind = b"".join(anthropic_stream(body, "ok")), "text/event-stream"
        else:
            payload, kind = json.dumps(anthropic_message(body, "ok")).encode(), \
                "application/json"
        data = compress(payload)
        headers = {"content-type": kind, "content-encoding": encoding,
                   "content-length": str(len(data))}
        if preloaded:
            return httpx2.Response(200, content=data, headers=headers)
        return httpx2.Response(200, stream=httpx2.ByteStream(data), headers=headers)

    return httpx2.MockTransport(handle)


def client(mock: httpx2.MockTransport) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url="https://api.anthropic.com", api_key="k",
                               max_retries=0, http_client=httpx2.Client(transport=mock))


@pytest.mark.parametrize("preloaded", [False, True])
@pytest.mark.parametrize("stream", [False, True])
def test_gzip_bodies_are_decoded_for_parsing(app: AppTelemetry, tmp_path: Path,
                                            stream: bool, preloaded: bool) -> None:
    claude = client(transport("gzip", gzip.compress, preloaded=preloaded))
    with instrumented(app, tmp_path):
        if stream:
            with claude.messages.stream(model=MODEL, max_tokens=10,
                                        messages=[{"role": "user", "content": "Hi"}]) as s:
                assert "".join(s.text_stream) == REPLY_TEXT
        else:
            reply = claude.messages.create(model=MODEL, max_tokens=10,
                                           messages=[{"role": "user", "content": "Hi"}])
            assert reply.content[0].text == REPLY_TEXT
    span = app.only_genai_span()
    assert_genai_span(span, operation="chat", provider="anthropic", model=MODEL, stream=stream,
                      response_model=MODEL,
                      usage=expected_usage("anthropic", usage_for("anthropic", "ok")))
    assert (span.attributes or {})["server.address"] == "api.anthropic.com"


def test_an_encoding_we_cannot_decode_is_noted_not_guessed(app: AppTelemetry,
                                                           tmp_path: Path) -> None:
    # "x-unknown" stands for br/zstd: httpx2 passes undecodable encodings through as is.
    claude = client(transport("x-unknown", lambda data: data))
    with instrumented(app, tmp_path), claude.messages.stream(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]) as s:
        assert "".join(s.text_stream) == REPLY_TEXT  # the application is unaffected
    attrs = app.only_genai_span().attributes or {}
    assert "gen_ai.usage.input_tokens" not in attrs
    assert any("x-unknown" in issue for issue in attrs[LLMTRACE_PARSE_ERRORS])


@pytest.mark.parametrize("preloaded", [False, True])
def test_openai_stream_edit_through_any_transport(app: AppTelemetry, tmp_path: Path,
                                                  preloaded: bool) -> None:
    import openai

    from tests.support.fake_upstream import chat_stream

    seen: list[dict[str, object]] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        seen.append(body)
        data = b"".join(chat_stream(body, "ok"))
        headers = {"content-type": "text/event-stream"}
        if preloaded:
            return httpx2.Response(200, content=data, headers=headers)
        return httpx2.Response(200, stream=httpx2.ByteStream(data), headers=headers)

    gpt = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="k", max_retries=0,
                        http_client=httpx2.Client(transport=httpx2.MockTransport(handle)))
    with instrumented(app, tmp_path):
        chunks = list(gpt.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert seen[0]["stream_options"] == {"include_usage": True}
    assert chunks and all(c.choices for c in chunks)  # the added usage chunk stays hidden
    assert all(c.usage is None for c in chunks)
    assert_genai_span(app.only_genai_span(), operation="chat", provider="openai",
                      model="gpt-4o-mini", stream=True,
                      usage=expected_usage("openai", usage_for("openai", "ok")))


def test_a_gzip_body_that_inflates_past_the_limit_is_noted_not_parsed(
        app: AppTelemetry, tmp_path: Path) -> None:
    # 33 MiB of padding compresses to ~33 KB. Read as a stream (the application decodes it
    # itself, piece by piece), the body must not be inflated whole for parsing: that stops
    # at 32 MiB. (A body httpx has read already is parsed as the application holds it.)
    def handle(request: httpx2.Request) -> httpx2.Response:
        message = {**anthropic_message(json.loads(request.content), "ok"),
                   "x_pad": " " * (33 * 1024 * 1024)}
        data = gzip.compress(json.dumps(message).encode(), compresslevel=1)
        return httpx2.Response(200, stream=httpx2.ByteStream(data), headers={
            "content-type": "application/json", "content-encoding": "gzip"})

    http = httpx2.Client(transport=httpx2.MockTransport(handle))
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}
    with instrumented(app, tmp_path), http.stream(
            "POST", "https://api.anthropic.com/v1/messages", json=body,
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}) as response:
        reply = json.loads(response.read())
    assert reply["content"][0]["text"] == REPLY_TEXT
    attrs = app.only_genai_span().attributes or {}
    assert "gen_ai.usage.input_tokens" not in attrs
    assert any("decodes to more than" in issue for issue in attrs[LLMTRACE_PARSE_ERRORS])
