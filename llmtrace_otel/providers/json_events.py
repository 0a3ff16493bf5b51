"""What every stream accumulator of a JSON-per-event API does before its own part."""

from __future__ import annotations

from typing import Any

from llmtrace_otel.providers._json import json_type, loads
from llmtrace_otel.providers.base import ParseError
from llmtrace_otel.providers.types import SSEEvent, StreamSignal

__all__ = ["NOT_A_CHUNK", "JsonEventAccumulator"]

#: An event that carries no part of the answer (keep-alive, ping, unparseable, usage-only).
NOT_A_CHUNK = StreamSignal(counts_as_chunk=False)


class JsonEventAccumulator:
    """The shared front of a :class:`StreamAccumulator` whose events each carry one JSON
    object: it counts events, parses their data and notes what cannot be understood,
    then hands each object to :meth:`_apply` (the API's own part).

    An event without data (a comment or keep-alive), or whose data is not a JSON object,
    is not a chunk; a :class:`ParseError` from ``_apply`` is noted and the event skipped.
    """

    __slots__ = ("_events", "_problems")

    def __init__(self) -> None:
        self._events = 0
        self._problems: list[str] = []

    @property
    def problems(self) -> list[str]:
        return self._problems

    def feed(self, event: SSEEvent) -> StreamSignal:
        self._events += 1
        data = event.data
        if not data:
            return NOT_A_CHUNK
        special = self._plain(data)
        if special is not None:
            return special
        try:
            payload = loads(data)
        except ValueError as exc:
            self._problems.append(f"event {self._events} is not JSON ({exc})")
            return NOT_A_CHUNK
        if not isinstance(payload, dict):
            self._problems.append(
                f"event {self._events} is not a JSON object (got {json_type(payload)})")
            return NOT_A_CHUNK
        try:
            return self._apply(payload, event.event)
        except ParseError as exc:
            self._problems.append(f"event {self._events}: {exc}")
            return NOT_A_CHUNK

    def _plain(self, data: str) -> StreamSignal | None:
        """The signal of an event whose data is not JSON by design (``[DONE]``), else None."""
        return None

    def _apply(self, payload: dict[str, Any], name: str | None) -> StreamSignal:
        """Account for one event's JSON object (``name``: the SSE ``event:`` field)."""
        raise NotImplementedError
