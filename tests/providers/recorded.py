"""Recorded provider payloads (``payloads/``) and helpers to replay them.

The payloads have the exact shape of the real APIs' bodies and streams (validated against
the official SDKs' models in ``test_payload_shapes.py``), with keys and ids scrubbed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from llmtrace_otel.providers.base import APIAdapter, StreamAccumulator
from llmtrace_otel.providers.sse import SSEDecoder
from llmtrace_otel.providers.types import LLMResponse, SSEEvent, StreamSignal

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def payload_json(name: str) -> Any:
    return json.loads(payload(name))


def as_body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def fixed_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def random_chunks(data: bytes, seed: int, largest: int = 64) -> Iterator[bytes]:
    rng = random.Random(seed)
    start = 0
    while start < len(data):
        size = rng.randint(1, largest)
        yield data[start:start + size]
        start += size


def decode(chunks: Iterable[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def replay(adapter: APIAdapter, chunks: Iterable[bytes]
           ) -> tuple[LLMResponse, list[StreamSignal], list[str]]:
    """Feed network chunks through an SSEDecoder into a fresh accumulator."""
    accumulator: StreamAccumulator = adapter.new_stream_accumulator()
    signals = [accumulator.feed(event) for event in decode(chunks)]
    return accumulator.result(), signals, list(accumulator.problems)


def event(data: str, name: str | None = None) -> SSEEvent:
    head = f"event: {name}\n" if name else ""
    return SSEEvent(raw=f"{head}data: {data}\n\n".encode(), event=name, data=data)
