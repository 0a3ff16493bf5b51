"""Incremental server-sent-events decoder.

Network chunks do not respect event boundaries: one chunk may hold several events, or
half of one. :class:`SSEDecoder` buffers the tail and yields complete events, each with
the exact bytes received (``raw``) so a relay can forward or drop whole events without
re-encoding them. Field parsing follows the WHATWG EventSource rules (``data`` lines are
joined with ``\\n``, comments start with ``:``, one leading space is stripped).
"""

from __future__ import annotations

import re

from llmtrace_otel.providers.types import SSEEvent

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")

__all__ = ["SSEDecoder", "parse_event"]


def parse_event(raw: bytes) -> SSEEvent:
    """Parse the fields of one complete event block (separator included or not)."""
    text = raw.decode("utf-8", errors="replace")
    event: str | None = None
    data_lines: list[str] = []
    for line in _LINE_SPLIT.split(text):
        if not line or line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event = value
    return SSEEvent(raw=raw, event=event, data="\n".join(data_lines))


class SSEDecoder:
    """Feed bytes, get complete events. One instance per stream."""

    __slots__ = ("_buffer", "max_event_bytes")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add a network chunk; return the events it completed (possibly none).

        Raises ValueError if a single event grows past ``max_event_bytes`` (a stream
        that never sends a separator must not grow memory without bound).
        """
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[SSEEvent] = []
        start = 0
        while True:
            match = _EVENT_END.search(buffer, start)
            if match is None:
                break
            end = match.end()
            events.append(parse_event(buffer[start:end]))
            start = end
        self._buffer = buffer[start:]
        if len(self._buffer) > self.max_event_bytes:
            self._buffer = b""
            raise ValueError(f"SSE event larger than {self.max_event_bytes} bytes")
        return events

    def flush(self) -> list[SSEEvent]:
        """At end of stream: the unterminated last event, if it carries any field."""
        rest, self._buffer = self._buffer, b""
        if not rest.strip():
            return []
        return [parse_event(rest)]

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet part of a complete event."""
        return self._buffer
