"""A fake OpenAI + Anthropic upstream: a real Tornado server on an unused loopback port.

It runs in a background thread with its own asyncio event loop, so synchronous tests (and the
real ``openai``/``anthropic`` SDKs) can talk to it like to the real APIs::

    with FakeUpstream() as up:
        client = openai.OpenAI(base_url=up.openai_base_url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert up.requests[0].path == "/v1/chat/completions"

Endpoints: POST /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses,
/v1/messages (Anthropic); GET /v1/models and /v1/models/{id}. Every JSON and SSE payload has
the shape of the real API (ids, object fields, created, model echo, usage).

Behaviour is chosen per request with the ``x-fake-scenario`` header (see ``SCENARIOS``);
``x-fake-delay`` (seconds) tunes ``slow``, ``slow-stream`` and ``leak``; ``x-fake-retry-after``
sets the ``Retry-After`` of an ``error-*`` answer (429s carry ``2`` by default). ``huge-event``
adds ``x-fake-size`` bytes (default 17 MiB): one ``data:`` event that size in the middle of a
stream, or an ``x_fake_pad`` field of spaces in a JSON body. ``x-fake-encoding: gzip`` sends
any answer gzip-compressed (a stream flushed event by event). An unknown
scenario is answered with a 400 in the provider's error shape, so a typo never passes silently.

Every response carries ``x-request-id`` and ``x-fake-received-authorization: yes|no`` (whether
the request carried a credential: ``authorization`` or ``x-api-key``; the value is never echoed,
except by ``error-401-echo``: a 401 whose message repeats the key, as some servers' do).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

__all__ = [
    "DELAY_HEADER",
    "EMBEDDING_DIMENSIONS",
    "MODEL_SUFFIX",
    "REPLY_CHUNKS",
    "REPLY_TEXT",
    "RETRY_AFTER_HEADER",
    "SCENARIOS",
    "SCENARIO_HEADER",
    "TOOL_ARGUMENTS",
    "TOOL_ARGUMENT_CHUNKS",
    "USAGE",
    "LEAK_CHUNKS",
    "LEAK_TEXT",
    "FakeUpstream",
    "RecordedRequest",
    "TokenUsage",
    "usage_for",
]

Provider = Literal["openai", "anthropic"]
Json = dict[str, Any]

SCENARIO_HEADER = "x-fake-scenario"
DELAY_HEADER = "x-fake-delay"
RETRY_AFTER_HEADER = "x-fake-retry-after"
SIZE_HEADER = "x-fake-size"
ENCODING_HEADER = "x-fake-encoding"
SCENARIOS = frozenset(
    {
        "ok",
        "tools",
        "cache",
        "reasoning",
        "error-400",
        "error-401-echo",
        "error-429",
        "error-500",
        "error-503",
        "error-529",
        "slow",
        "slow-stream",
        "hang",
        "reset-midstream",
        "malformed-sse",
        "split-events",
        "burst",
        "huge-event",
        "leak",
    }
)
_DEFAULT_DELAY = {"slow": 0.5, "slow-stream": 0.1, "leak": 0.05}

REPLY_CHUNKS: tuple[str, ...] = ("Hello", " from", " fake", " upstream", ".")
REPLY_TEXT = "".join(REPLY_CHUNKS)
# The "leak" scenario: a reply that gives away an AWS key pair, the access key id split
# across two chunks, then keeps going (slowly: x-fake-delay between chunks) so a proxy that
# stops the stream is seen to stop it. The key is made up (base32 id, random secret).
LEAK_CHUNKS: tuple[str, ...] = (
    "Here is the deploy config you asked for: aws_access_key_id = AKIA",
    "2OGYBAH6QNXC5VLP\naws_secret_access_key = ",
    "wJalrXUtnFEMIK7MDENGbPxRfiCYzQ3xa9LmTqH2",
    "\nKeep it safe.",
    " The rest",
    " of this",
    " answer",
    " should",
    " never",
    " arrive.",
)
LEAK_TEXT = "".join(LEAK_CHUNKS)
TOOL_PREAMBLE = "Let me check that."  # Anthropic's text block before a tool_use block
TOOL_ARGUMENT_CHUNKS: tuple[str, ...] = ('{"ci', 'ty": ', '"Par', 'is"}')
TOOL_ARGUMENTS = "".join(TOOL_ARGUMENT_CHUNKS)
DEFAULT_TOOL_NAME = "get_weather"
MODEL_SUFFIX = "-2024-07-18"
EMBEDDING_DIMENSIONS = 8
_SYSTEM_FINGERPRINT = "fp_fake0001"
_SPLIT_SIZES = (1, 2, 3, 5, 7, 11, 13, 4, 9, 17)  # byte sizes for split-events, cycled
_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "text-embedding-3-small")


@dataclass(frozen=True)
class TokenUsage:
    """Token counts a scenario reports, provider-neutral.

    ``cached_tokens`` is OpenAI ``cached_tokens`` / Anthropic ``cache_read_input_tokens``;
    ``cache_creation_tokens`` exists only for Anthropic. For Anthropic ``input_tokens`` excludes
    the cache tokens (as the real API does); for OpenAI the prompt total includes them.
    """

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


USAGE: Mapping[tuple[Provider, str], TokenUsage] = MappingProxyType({
    ("openai", "ok"): TokenUsage(12, 6),
    ("openai", "tools"): TokenUsage(48, 17),
    ("openai", "cache"): TokenUsage(2006, 6, cached_tokens=1024),
    ("openai", "reasoning"): TokenUsage(12, 70, reasoning_tokens=64),
    ("anthropic", "ok"): TokenUsage(12, 6),
    ("anthropic", "tools"): TokenUsage(48, 17),
    ("anthropic", "cache"): TokenUsage(12, 6, cached_tokens=1024, cache_creation_tokens=512),
    ("anthropic", "reasoning"): TokenUsage(12, 70, reasoning_tokens=64),
})


def usage_for(provider: Provider, scenario: str) -> TokenUsage:
    """The usage the fake reports for ``scenario`` (scenarios without own usage report ``ok``)."""
    return USAGE.get((provider, scenario), USAGE[(provider, "ok")])


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake upstream received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    #: The response body bytes as written (compressed when the answer is), for a test
    #: that checks the proxy relayed exactly what the upstream sent.
    sent: bytearray = field(default_factory=bytearray)

    def json(self) -> Any:
        return json.loads(self.body)


# --------------------------------------------------------------------------- payload helpers


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _sse(data: Json | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _reply_chunks(scenario: str) -> tuple[str, ...]:
    return LEAK_CHUNKS if scenario == "leak" else REPLY_CHUNKS


def _dated(model: str) -> str:
    return model + MODEL_SUFFIX if model else "gpt-4o-mini" + MODEL_SUFFIX


def _first_tool_name(request: Json, *, nested: bool) -> str:
    tools = request.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        spec = tools[0].get("function", {}) if nested else tools[0]
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            return str(spec["name"])
    return DEFAULT_TOOL_NAME


def _openai_chat_usage(usage: TokenUsage) -> Json:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _responses_usage(usage: TokenUsage) -> Json:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _anthropic_usage(usage: TokenUsage, *, output_tokens: int | None = None) -> Json:
    body: Json = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_creation_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage.output_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }
    if usage.reasoning_tokens:
        body["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return body


def _error_body(provider: Provider, status: int, request_id: str) -> Json:
    if provider == "anthropic":
        kind, message = {
            400: ("invalid_request_error", "messages: fake invalid request"),
            401: ("authentication_error", "invalid x-api-key"),
            429: ("rate_limit_error", "Number of request tokens has exceeded your rate limit."),
            500: ("api_error", "Internal server error"),
            503: ("overloaded_error", "Overloaded"),
            529: ("overloaded_error", "Overloaded"),
        }.get(status, ("api_error", "Fake upstream error"))
        return {"type": "error", "error": {"type": kind, "message": message},
                "request_id": request_id}
    kind, message, param, code = {
        400: ("invalid_request_error", "Invalid value for 'model': fake invalid request.",
              "model", "invalid_value"),
        401: ("invalid_request_error", "Incorrect API key provided.", None, "invalid_api_key"),
        429: ("requests", "Rate limit reached for requests per min (RPM): Limit 3, Used 3.",
              None, "rate_limit_exceeded"),
        500: ("server_error", "The server had an error while processing your request.",
              None, None),
        503: ("server_error", "The engine is currently overloaded, please try again later.",
              None, None),
    }.get(status, ("server_error", "Fake upstream error", None, None))
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# --------------------------------------------------------------------------- OpenAI chat


def _chat_message(scenario: str, tool_name: str) -> tuple[Json, str]:
    if scenario == "tools":
        call = {"id": "call_fake0001", "type": "function",
                "function": {"name": tool_name, "arguments": TOOL_ARGUMENTS}}
        message = {"role": "assistant", "content": None, "tool_calls": [call],
                   "refusal": None, "annotations": []}
        return message, "tool_calls"
    message = {"role": "assistant", "content": "".join(_reply_chunks(scenario)), "refusal": None,
               "annotations": []}
    return message, "stop"


def chat_completion(request: Json, scenario: str) -> Json:
    message, finish = _chat_message(scenario, _first_tool_name(request, nested=True))
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _dated(str(request.get("model", ""))),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _openai_chat_usage(usage_for("openai", scenario)),
        "service_tier": "default",
        "system_fingerprint": _SYSTEM_FINGERPRINT,
    }


def _chat_deltas(scenario: str, tool_name: str) -> Iterator[tuple[Json, str | None]]:
    if scenario == "tools":
        first = {"index": 0, "id": "call_fake0001", "type": "function",
                 "function": {"name": tool_name, "arguments": ""}}
        yield {"role": "assistant", "content": None, "tool_calls": [first], "refusal": None}, None
        for piece in TOOL_ARGUMENT_CHUNKS:
            yield {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, None
        yield {}, "tool_calls"
        return
    yield {"role": "assistant", "content": "", "refusal": None}, None
    for piece in _reply_chunks(scenario):
        yield {"content": piece}, None
    yield {}, "stop"


def _include_usage(request: Json) -> bool:
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def chat_stream(request: Json, scenario: str) -> list[bytes]:
    base = {"id": _new_id("chatcmpl-"), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": _dated(str(request.get("model", ""))),
            "service_tier": "default", "system_fingerprint": _SYSTEM_FINGERPRINT}
    with_usage = _include_usage(request)
    events = []
    for delta, finish in _chat_deltas(scenario, _first_tool_name(request, nested=True)):
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        chunk = {**base, "choices": [choice]}
        if with_usage:
            chunk["usage"] = None
        events.append(_sse(chunk))
    if with_usage:
        usage = _openai_chat_usage(usage_for("openai", scenario))
        events.append(_sse({**base, "choices": [], "usage": usage}))
    events.append(_sse("[DONE]"))
    return events


# --------------------------------------------------------------------------- OpenAI legacy


def text_completion(request: Json, scenario: str) -> Json:
    usage = usage_for("openai", scenario)
    return {
        "id": _new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": _dated(str(request.get("model", ""))),
        "choices": [{"text": REPLY_TEXT, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                  "total_tokens": usage.total_tokens},
        "system_fingerprint": _SYSTEM_FINGERPRINT,
    }


def text_completion_stream(request: Json, scenario: str) -> list[bytes]:
    base = {"id": _new_id("cmpl-"), "object": "text_completion", "created": int(time.time()),
            "model": _dated(str(request.get("model", ""))),
            "system_fingerprint": _SYSTEM_FINGERPRINT}
    with_usage = _include_usage(request)
    pieces: list[tuple[str, str | None]] = [(p, None) for p in REPLY_CHUNKS] + [("", "stop")]
    events = []
    for text, finish in pieces:
        chunk = {**base, "choices": [{"text": text, "index": 0, "logprobs": None,
                                      "finish_reason": finish}]}
        if with_usage:
            chunk["usage"] = None
        events.append(_sse(chunk))
    if with_usage:
        usage = usage_for("openai", scenario)
        events.append(_sse({**base, "choices": [], "usage": {
            "prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens}}))
    events.append(_sse("[DONE]"))
    return events


# --------------------------------------------------------------------------- embeddings


def _embedding_inputs(raw: Any) -> int:
    """How many embeddings a request asks for (str or token list -> 1, list of them -> n)."""
    if isinstance(raw, list) and raw and not isinstance(raw[0], int):
        return len(raw)
    return 1


def embedding_vector(index: int) -> list[float]:
    """The vector returned for input ``index`` (multiples of 1/8, exact in float32)."""
    return [(index + k + 1) / 8 for k in range(EMBEDDING_DIMENSIONS)]


def embeddings(request: Json, scenario: str) -> Json:
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for index in range(_embedding_inputs(request.get("input"))):
        vector = embedding_vector(index)
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = usage_for("openai", scenario)
    return {"object": "list", "data": data, "model": str(request.get("model", "")),
            "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}}


# --------------------------------------------------------------------------- Responses API


def _responses_item(scenario: str, request: Json, *, done: bool) -> Json:
    status = "completed" if done else "in_progress"
    if scenario == "tools":
        return {"id": "fc_fake0001", "type": "function_call", "status": status,
                "call_id": "call_fake0001", "name": _first_tool_name(request, nested=False),
                "arguments": TOOL_ARGUMENTS if done else ""}
    content = [_output_text("".join(_reply_chunks(scenario)))] if done else []
    return {"id": "msg_fake0001", "type": "message", "status": status, "role": "assistant",
            "content": content}


def _output_text(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_object(request: Json, scenario: str, *, resp_id: str, created: int,
                    done: bool = True) -> Json:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": "completed" if done else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": _dated(str(request.get("model", ""))),
        "output": [_responses_item(scenario, request, done=True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": request.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": request.get("tools", []),
        "top_p": request.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _responses_usage(usage_for("openai", scenario)) if done else None,
        "user": None,
        "metadata": {},
    }


def _responses_body_events(scenario: str, request: Json) -> list[tuple[str, Json]]:
    item_id = "fc_fake0001" if scenario == "tools" else "msg_fake0001"
    where = {"item_id": item_id, "output_index": 0}
    if scenario == "tools":
        events = [("response.function_call_arguments.delta", {**where, "delta": piece})
                  for piece in TOOL_ARGUMENT_CHUNKS]
        events.append(("response.function_call_arguments.done",
                       {**where, "arguments": TOOL_ARGUMENTS}))
        return events
    part = {**where, "content_index": 0}
    events = [("response.content_part.added", {**part, "part": _output_text("")})]
    chunks = _reply_chunks(scenario)
    text = "".join(chunks)
    events += [("response.output_text.delta", {**part, "delta": piece, "logprobs": []})
               for piece in chunks]
    events.append(("response.output_text.done", {**part, "text": text, "logprobs": []}))
    events.append(("response.content_part.done", {**part, "part": _output_text(text)}))
    return events


def responses_stream(request: Json, scenario: str) -> list[bytes]:
    resp_id, created = _new_id("resp_"), int(time.time())
    pending = response_object(request, scenario, resp_id=resp_id, created=created, done=False)
    final = response_object(request, scenario, resp_id=resp_id, created=created)
    typed: list[tuple[str, Json]] = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
        ("response.output_item.added",
         {"output_index": 0, "item": _responses_item(scenario, request, done=False)}),
        *_responses_body_events(scenario, request),
        ("response.output_item.done",
         {"output_index": 0, "item": _responses_item(scenario, request, done=True)}),
        ("response.completed", {"response": final}),
    ]
    return [_sse({"type": name, "sequence_number": seq, **body}, event=name)
            for seq, (name, body) in enumerate(typed)]


def models_list() -> Json:
    return {"object": "list", "data": [model_object(name) for name in _MODELS]}


def model_object(name: str) -> Json:
    return {"id": name, "object": "model", "created": 1721172741, "owned_by": "system"}


# --------------------------------------------------------------------------- Anthropic


def _anthropic_blocks(scenario: str, request: Json) -> list[Json]:
    if scenario == "tools":
        return [{"type": "text", "text": TOOL_PREAMBLE},
                {"type": "tool_use", "id": "toolu_fake0001",
                 "name": _first_tool_name(request, nested=False),
                 "input": json.loads(TOOL_ARGUMENTS)}]
    return [{"type": "text", "text": "".join(_reply_chunks(scenario))}]


def anthropic_message(request: Json, scenario: str) -> Json:
    return {
        "id": _new_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": str(request.get("model", "")),
        "content": _anthropic_blocks(scenario, request),
        "stop_reason": "tool_use" if scenario == "tools" else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(usage_for("anthropic", scenario)),
    }


def _anthropic_block_events(index: int, block: Json) -> list[tuple[str, Json]]:
    if block["type"] == "tool_use":
        start = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": piece}
                  for piece in TOOL_ARGUMENT_CHUNKS]
    else:
        start = {"type": "text", "text": ""}
        pieces = next((c for c in (REPLY_CHUNKS, LEAK_CHUNKS) if block["text"] == "".join(c)),
                      (block["text"],))
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces]
    events: list[tuple[str, Json]] = [("content_block_start",
                                       {"index": index, "content_block": start})]
    if index == 0:
        events.append(("ping", {}))
    events += [("content_block_delta", {"index": index, "delta": d}) for d in deltas]
    events.append(("content_block_stop", {"index": index}))
    return events


def anthropic_stream(request: Json, scenario: str) -> list[bytes]:
    message = anthropic_message(request, scenario)
    usage = usage_for("anthropic", scenario)
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": _anthropic_usage(usage, output_tokens=1)}
    typed: list[tuple[str, Json]] = [("message_start", {"message": start})]
    for index, block in enumerate(message["content"]):
        typed += _anthropic_block_events(index, block)
    typed.append(("message_delta", {
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": usage.output_tokens}}))
    typed.append(("message_stop", {}))
    return [_sse({"type": name, **body}, event=name) for name, body in typed]


# --------------------------------------------------------------------------- handlers


@dataclass(frozen=True)
class _ServerState:
    stopping: asyncio.Event
    upstream: FakeUpstream


class _BaseHandler(tornado.web.RequestHandler):
    provider: Provider = "openai"

    def initialize(self, state: _ServerState) -> None:
        self.state = state
        self.scenario = "ok"
        self.delay = 0.0
        self.size = 17 * 1024 * 1024
        self.gzip: Any = None  # a zlib compressobj when the answer is gzip-encoded
        self.streaming = False
        self.client_gone = asyncio.Event()

    def on_connection_close(self) -> None:
        self.client_gone.set()

    def write(self, chunk: str | bytes | dict[str, Any]) -> None:
        super().write(chunk)
        recorded = getattr(self, "recorded", None)
        if recorded is not None:
            recorded.sent.extend(chunk if isinstance(chunk, bytes) else (
                chunk.encode() if isinstance(chunk, str) else json.dumps(chunk).encode()))

    def prepare(self) -> None:
        request = self.request
        headers = {name.lower(): ", ".join(request.headers.get_list(name))
                   for name in request.headers}
        self.recorded = RecordedRequest(
            method=request.method or "", path=request.path, query=request.query,
            headers=headers, body=request.body or b"")
        self.state.upstream._record(self.recorded)
        self.request_id = _new_id("req_")
        self.set_header("x-request-id", self.request_id)
        if self.provider == "anthropic":
            self.set_header("request-id", self.request_id)
        has_credential = "authorization" in headers or "x-api-key" in headers
        self.set_header("x-fake-received-authorization", "yes" if has_credential else "no")
        self.scenario = headers.get(SCENARIO_HEADER, "ok").strip() or "ok"
        if self.scenario not in SCENARIOS:
            self.send_api_error(400, f"unknown {SCENARIO_HEADER} {self.scenario!r}; "
                                     f"known: {', '.join(sorted(SCENARIOS))}")
            return
        self.delay = self._parse_delay(headers.get(DELAY_HEADER))
        self.size = int(headers.get(SIZE_HEADER, self.size))
        if headers.get(ENCODING_HEADER) == "gzip":
            self.gzip = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)

    def _parse_delay(self, raw: str | None) -> float:
        default = _DEFAULT_DELAY.get(self.scenario, 0.0)
        try:
            return max(0.0, float(raw)) if raw is not None else default
        except ValueError:
            return default

    def send_api_error(self, status: int, message: str | None = None) -> None:
        body = _error_body(self.provider, status, self.request_id)
        if message is not None:
            body["error"]["message"] = message
        retry_after = self.request.headers.get(RETRY_AFTER_HEADER)
        if retry_after is not None:
            self.set_header("retry-after", retry_after)
        elif status == 429:
            self.set_header("retry-after", "2")
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def json_request(self) -> Json | None:
        """The request body as a JSON object, or None after answering 400."""
        try:
            parsed = json.loads(self.request.body or b"{}")
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            self.send_api_error(400, "We could not parse the JSON body of your request.")
            return None
        return parsed

    async def sleep(self, seconds: float | None) -> bool:
        """Sleep (None: forever) unless the server stops or the client goes away first.

        False if interrupted; the connection has then been dropped.
        """
        waiters = [asyncio.ensure_future(self.state.stopping.wait()),
                   asyncio.ensure_future(self.client_gone.wait())]
        done, pending = await asyncio.wait(waiters, timeout=seconds,
                                           return_when=asyncio.FIRST_COMPLETED)
        for waiter in pending:
            waiter.cancel()
        if not done:
            return True
        self.abort_connection()
        return False

    def abort_connection(self) -> None:
        """Close the TCP connection at once, without finishing the HTTP response."""
        self.detach().close()

    async def before_response(self) -> bool:
        """Apply error/slow/hang scenarios; True when the request has been dealt with."""
        if self.scenario == "error-401-echo":
            key = self.request.headers.get("x-api-key") or self.request.headers.get(
                "authorization", "").removeprefix("Bearer ")
            self.send_api_error(401, f"Incorrect API key provided: {key}. You can find your "
                                     "API key at https://platform.openai.com/account/api-keys.")
            return True
        if self.scenario.startswith("error-"):
            self.send_api_error(int(self.scenario.removeprefix("error-")))
            return True
        if self.scenario == "hang":
            await self.sleep(None)
            return True
        if self.scenario == "slow":
            return not await self.sleep(self.delay)
        return False

    async def send_json(self, body: Json) -> None:
        if self.scenario == "huge-event":
            body = {**body, "x_fake_pad": " " * self.size}
        data = json.dumps(body).encode()
        self.set_header("Content-Type", "application/json")
        if self.gzip is not None:
            self.set_header("Content-Encoding", "gzip")
            data = self.gzip.compress(data) + self.gzip.flush()
        if self.scenario == "reset-midstream":
            await self._write_pieces([data[: len(data) // 2]])
            self.abort_connection()
        elif self.scenario == "split-events":
            await self._write_pieces(_split(data))
            self.finish()
        else:
            self.finish(data)

    async def send_stream(self, events: Sequence[bytes]) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        if self.gzip is not None:
            self.set_header("Content-Encoding", "gzip")
        self.streaming = True
        stream = self.request.connection.stream  # type: ignore[union-attr]
        stream.set_nodelay(True)
        try:
            await self._stream_events(list(events))
        except tornado.iostream.StreamClosedError:
            return  # the client went away; nothing to finish

    async def _stream_events(self, events: list[bytes]) -> None:
        middle = len(events) // 2
        if self.scenario == "malformed-sse":
            events.insert(middle, _malformed_like(events[middle]))
        if self.scenario == "huge-event":
            events.insert(middle, b"data: " + b"x" * self.size + b"\n\n")
        if self.scenario == "reset-midstream":
            await self._write_pieces(events[: max(2, middle)])
            self.abort_connection()
            return
        if self.scenario == "split-events":
            await self._write_pieces(_split(b"".join(events)), pause=0.001)
        elif self.scenario == "burst":  # the whole stream in one write, as a cache would
            await self._write_pieces([b"".join(events)])
        else:
            gap = self.delay if self.scenario in ("slow-stream", "leak") else 0.0
            for index, event in enumerate(events):
                if index and gap and not await self.sleep(gap):
                    self.state.upstream._cut_short()
                    return
                await self._write_pieces([event])
        if self.gzip is not None:
            self.write(self.gzip.flush())
        self.finish()

    async def _write_pieces(self, pieces: Sequence[bytes], pause: float = 0.0) -> None:
        for piece in pieces:
            for part in (piece[i : i + 65536] for i in range(0, len(piece), 65536)):
                if self.streaming and self.gzip is not None:  # JSON is compressed whole
                    part = self.gzip.compress(part) + self.gzip.flush(zlib.Z_SYNC_FLUSH)
                self.write(part)
                await self.flush()
            if pause:
                await asyncio.sleep(pause)


def _split(data: bytes) -> list[bytes]:
    pieces, offset, turn = [], 0, 0
    while offset < len(data):
        size = _SPLIT_SIZES[turn % len(_SPLIT_SIZES)]
        pieces.append(data[offset: offset + size])
        offset, turn = offset + size, turn + 1
    return pieces


def _malformed_like(event: bytes) -> bytes:
    """An SSE event with the same ``event:`` line as ``event`` but invalid JSON data."""
    head = event.split(b"\n", 1)[0] + b"\n" if event.startswith(b"event:") else b""
    return head + b'data: {"type": "broken", "oops": tru\n\n'


class _ChatCompletionsHandler(_BaseHandler):
    async def post(self) -> None:
        request = self.json_request()
        if request is None or await self.before_response():
            return
        if request.get("stream"):
            await self.send_stream(chat_stream(request, self.scenario))
        else:
            await self.send_json(chat_completion(request, self.scenario))


class _CompletionsHandler(_BaseHandler):
    async def post(self) -> None:
        request = self.json_request()
        if request is None or await self.before_response():
            return
        if request.get("stream"):
            await self.send_stream(text_completion_stream(request, self.scenario))
        else:
            await self.send_json(text_completion(request, self.scenario))


class _EmbeddingsHandler(_BaseHandler):
    async def post(self) -> None:
        request = self.json_request()
        if request is None or await self.before_response():
            return
        await self.send_json(embeddings(request, self.scenario))


class _ResponsesHandler(_BaseHandler):
    async def post(self) -> None:
        request = self.json_request()
        if request is None or await self.before_response():
            return
        if request.get("stream"):
            await self.send_stream(responses_stream(request, self.scenario))
        else:
            body = response_object(request, self.scenario, resp_id=_new_id("resp_"),
                                   created=int(time.time()))
            await self.send_json(body)


class _ModelsHandler(_BaseHandler):
    async def get(self, model: str | None = None) -> None:
        if await self.before_response():
            return
        await self.send_json(models_list() if model is None else model_object(model))


class _MessagesHandler(_BaseHandler):
    provider: Provider = "anthropic"

    async def post(self) -> None:
        request = self.json_request()
        if request is None or await self.before_response():
            return
        if request.get("stream"):
            await self.send_stream(anthropic_stream(request, self.scenario))
        else:
            await self.send_json(anthropic_message(request, self.scenario))


class _NotFoundHandler(_BaseHandler):
    def prepare(self) -> None:
        super().prepare()
        if not self._finished:
            self.set_status(404)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": {
                "message": f"Unknown request URL: {self.request.method} {self.request.path}.",
                "type": "invalid_request_error", "param": None, "code": "unknown_url"}}))


def _make_app(state: _ServerState) -> tornado.web.Application:
    routes: list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]] = [
        (r"/v1/chat/completions", _ChatCompletionsHandler, {"state": state}),
        (r"/v1/completions", _CompletionsHandler, {"state": state}),
        (r"/v1/embeddings", _EmbeddingsHandler, {"state": state}),
        (r"/v1/responses", _ResponsesHandler, {"state": state}),
        (r"/v1/models", _ModelsHandler, {"state": state}),
        (r"/v1/models/([^/]+)", _ModelsHandler, {"state": state}),
        (r"/v1/messages", _MessagesHandler, {"state": state}),
    ]
    return tornado.web.Application(
        routes,  # type: ignore[arg-type]
        default_handler_class=_NotFoundHandler,
        default_handler_args={"state": state},
        log_function=lambda handler: None,
    )


# --------------------------------------------------------------------------- the server


class FakeUpstream:
    """The fake upstream server; start with ``with FakeUpstream() as up:`` or ``start()``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port = 0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._cut = 0
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None

    # ---- properties
    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("FakeUpstream is not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, no /v1)."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``openai.OpenAI(base_url=...)`` (the OpenAI SDK wants /v1 in it)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for ``anthropic.Anthropic(base_url=...)`` (the SDK appends /v1/...)."""
        return self.url

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._cut = 0

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests arrived; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.requests
            if len(seen) >= count:
                return seen
            time.sleep(0.01)
        raise TimeoutError(f"fake upstream saw {len(self.requests)} requests, wanted {count}")

    @property
    def streams_cut_short(self) -> int:
        """Paced streams (``slow-stream``, ``leak``) whose client went away before the end."""
        with self._lock:
            return self._cut

    def _cut_short(self) -> None:
        with self._lock:
            self._cut += 1

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # ---- lifecycle
    def start(self) -> FakeUpstream:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        sockets = tornado.netutil.bind_sockets(0, self._host)
        self._port = sockets[0].getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, args=(sockets,), name=f"fake-upstream-{self._port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._failure is not None:
            raise RuntimeError(f"fake upstream failed to start: {self._failure!r}")
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections (also hanging ones) and join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed after the check
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        if thread.is_alive():
            raise RuntimeError("fake upstream thread did not stop within 10 s")
        self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, sockets: list[Any]) -> None:
        try:
            asyncio.run(self._serve(sockets))
        except BaseException as error:  # surfaced by start() if it happens before ready
            self._failure = error
            self._ready.set()

    async def _serve(self, sockets: list[Any]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = tornado.httpserver.HTTPServer(
            _make_app(_ServerState(stopping=self._stopping, upstream=self)))
        server.add_sockets(sockets)
        self._ready.set()
        await self._stopping.wait()
        server.stop()
        await asyncio.sleep(0)  # let hanging handlers see `stopping` and drop their connections
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close_all_connections(), timeout=2)
