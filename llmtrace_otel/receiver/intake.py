"""The bounded queue between the OTLP transports and the processor chain.

A transport thread (gRPC worker, Tornado loop) only screens a request and calls
:meth:`SpanIntake.submit` (traces) or :meth:`SpanIntake.submit_logs`, which either queues it
or refuses it at once: when the spans and records waiting here would exceed ``max_spans``
the sender gets RESOURCE_EXHAUSTED / 429 with a retry delay, so nothing is dropped silently.
One worker thread turns queued requests into normalised ``ReadableSpan``s and hands them to
the head of the chain (the ``BackgroundSpanProcessor``), waiting while *its* queue is full
rather than letting it drop: slow analysis or export backs up into this queue, and from here
to the senders.

With a :class:`~llmtrace_otel.receiver.join.CallJoin`, GenAI log events are joined to their
spans and a call's twin spans paired before the chain sees them; spans held for that count
in the queue's depth until they go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor

from llmtrace_otel.receiver.decode import Normaliser, decode_spans
from llmtrace_otel.receiver.join import CallJoin
from llmtrace_otel.receiver.logs import genai_events
from llmtrace_otel.receiver.status import Refused
from llmtrace_processors.chain import BackgroundSpanProcessor

__all__ = ["SpanIntake"]

_log = logging.getLogger(__name__)
_FULL_POLL_S = 0.002


class SpanIntake:
    """Bounded queue (counted in spans) + one worker feeding ``head.on_end``."""

    def __init__(
        self,
        head: SpanProcessor,
        *,
        max_spans: int,
        retry_after_s: float,
        normalise: Normaliser | None = None,
        on_drop: Callable[[str, int], None] = lambda reason, n: None,
        on_normalise_error: Callable[[], None] = lambda: None,
        join: CallJoin | None = None,
        on_records: Callable[[str, int], None] = lambda outcome, n: None,
        on_span: Callable[[ReadableSpan], None] = lambda span: None,
    ) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be >= 1, got {max_spans}")
        self._head = head
        self._max = max_spans
        self._retry_after_s = retry_after_s
        self._normalise = normalise
        self._on_drop = on_drop
        self._on_normalise_error = on_normalise_error
        self._join = join
        self._on_records = on_records
        self._on_span = on_span  # each span as it goes on (the call metrics)
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[ExportTraceServiceRequest | ExportLogsServiceRequest, int]] = (
            deque())
        self._queued = 0  # spans submitted and not yet handed to the chain
        self._closing = False
        self._abandon = False
        self._worker = threading.Thread(target=self._run, name="llmtrace-receiver", daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        return self._queued + (self._join.held if self._join is not None else 0)

    @property
    def capacity(self) -> int:
        return self._max

    def submit(self, request: ExportTraceServiceRequest | ExportLogsServiceRequest,
               spans: int) -> None:
        """Queue a screened request holding ``spans`` spans (or log records), or raise
        :class:`Refused`.

        A request larger than the whole queue is taken when the queue is empty, so a
        sender with big batches is slowed down, never starved.
        """
        if spans == 0:
            return
        with self._cond:
            if self._closing:
                raise Refused.shutting_down(self._retry_after_s)
            depth = self.depth
            if depth and depth + spans > self._max:
                raise Refused.busy(
                    f"receiver queue is full ({depth} of {self._max} spans waiting); "
                    f"retry after {self._retry_after_s:g}s",
                    self._retry_after_s,
                )
            self._queue.append((request, spans))
            self._queued += spans
            self._cond.notify_all()

    def _safe_normalise(
        self, attributes: dict[str, Any], events: list[Event], *, start_ns: int
    ) -> tuple[dict[str, Any], list[Event]] | None:
        assert self._normalise is not None
        try:
            return self._normalise(attributes, events, start_ns=start_ns)
        except Exception:  # the span goes on as received
            _log.exception("normalising a received span failed; forwarded as received")
            self._on_normalise_error()
            return None

    def _next(self) -> tuple[ExportTraceServiceRequest | ExportLogsServiceRequest, int] | None:
        """The next queued request; None when only held spans are due (or at the end)."""
        join = self._join
        with self._cond:
            while not self._queue and not self._closing:
                deadline = join.next_deadline() if join is not None else None
                if deadline is None:
                    self._cond.wait()
                    continue
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return None
                self._cond.wait(wait)
            return self._queue.popleft() if self._queue else None

    def _run(self) -> None:
        normalise = self._safe_normalise if self._normalise is not None else None
        join = self._join
        while True:
            item = self._next()
            if item is None and self._closing:
                if join is not None:
                    self._hand_off(join.drain())
                return
            if item is not None:
                request, count = item
                try:
                    spans = self._decode(request, normalise)
                except Exception:
                    _log.exception("could not convert %d received spans; dropped", count)
                    self._on_drop("decode_error", count)
                    spans = []
                handed = self._hand_off(spans)
                if handed < len(spans):
                    self._on_drop("shutdown", len(spans) - handed)
                with self._cond:
                    self._queued -= count
                    self._cond.notify_all()
            if join is not None:
                self._hand_off(join.due())

    def _decode(self, request: ExportTraceServiceRequest | ExportLogsServiceRequest,
                normalise: Normaliser | None) -> list[ReadableSpan]:
        join = self._join
        if isinstance(request, ExportLogsServiceRequest):
            events, other = genai_events(request)
            if other:
                self._on_records("not_genai", other)
            if join is None:
                self._on_records("unjoined", len(events))
            else:
                join.add_events(events)
            return []
        spans = decode_spans(request, normalise, join.events_for if join is not None else None)
        if join is None:
            return spans
        return [ready for span in spans for ready in join.admit(span)]

    def _hand_off(self, spans: list[ReadableSpan]) -> int:
        head = self._head
        bounded = head if isinstance(head, BackgroundSpanProcessor) else None
        for index, span in enumerate(spans):
            if bounded is not None:
                while bounded.queue_depth >= bounded.capacity:
                    if self._abandon:
                        return index
                    time.sleep(_FULL_POLL_S)
            try:
                self._on_span(span)
                head.on_end(span)
            except Exception:
                _log.exception("span pipeline failed on a received span")
        return len(spans)

    def close(self, timeout_s: float = 30.0) -> bool:
        """Refuse new requests, hand every queued span on; True when all were handed on.

        If the chain stays full past ``timeout_s``, the rest is dropped and counted.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout_s)
        if self._worker.is_alive():
            self._abandon = True
            with self._cond:
                left = sum(count for _, count in self._queue)
                self._queue.clear()
                self._cond.notify_all()
            self._worker.join(5.0)
            if left:
                self._on_drop("shutdown", left)
            return False
        return True
