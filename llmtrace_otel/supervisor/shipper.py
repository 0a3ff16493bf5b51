"""The relay worker's end of the pipeline: finished spans go to the telemetry process.

:class:`SpanShipper` is the one span processor of a worker's tracer provider. ``on_end``
only appends the span to a bounded queue (O(1), on whatever thread ends it); the worker's
event loop sends what is queued as one batch ``delay_s`` (5 ms) after the first span of the
batch ended, or as soon as ``batch_size`` spans are waiting: under load, spans that end
close together share one write (one write per span cost ~7 % of a loaded worker's time),
and a span is in the telemetry process's hands within 5 ms of its call's end, so a worker
killed with SIGKILL loses at most the spans of calls that ended in its last 5 ms.
Analysis and export happen in the telemetry process, off this process's GIL.

When the telemetry process does not keep up (it asks the worker to hold its batches while
its analysis queue is full, :meth:`SpanShipper.hold`; or its end of the connection backs
up), the batch stays queued; past ``max_queue`` spans new ones are dropped and counted
(``llmtrace_telemetry_dropped_total{stage="worker.ship",reason="queue_full"}``), or, with
``block_when_full`` (collector mode: backpressure goes back to the OTLP senders), the thread
that ends a span waits for room; meanwhile the shipper looks at the connection again every
few milliseconds (a timer, not every loop iteration: the relay shares this loop). A
connection that is gone drops what is queued, counted (``reason="telemetry_process_gone"``);
a span that ends after :meth:`SpanShipper.shutdown`, or once the worker's loop is closed,
is counted with ``reason="shutdown"`` (never an error raised where the span ended).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from llmtrace_otel.supervisor.channel import ChannelError, FrameChannel
from llmtrace_otel.supervisor.span_wire import encode_batch
from llmtrace_processors.chain import DropCounter

__all__ = ["SpanShipper"]

_log = logging.getLogger(__name__)
_STAGE = "worker.ship"
#: Bytes the connection may hold unsent before batches wait in the queue instead.
_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024
#: While the connection is backed up, how often the shipper looks again (at least).
_RETRY_S = 0.01


class SpanShipper(SpanProcessor):
    """Sends finished spans to the telemetry process in batches (see the module docstring).
    Build it on the thread that runs ``loop``."""

    def __init__(
        self,
        channel: FrameChannel,
        loop: asyncio.AbstractEventLoop,
        *,
        on_drop: DropCounter,
        max_queue: int = 8192,
        batch_size: int = 512,
        delay_s: float = 0.005,
        block_when_full: bool = False,
    ) -> None:
        self._channel = channel
        self._loop = loop
        self._on_drop = on_drop
        self._max = max_queue
        self._batch = batch_size
        self._delay = delay_s
        self._block = block_when_full
        self._queue: deque[ReadableSpan] = deque()
        self._room = threading.Condition()
        self._scheduled = False
        self._retrying = False
        self._stopped = False
        #: The telemetry process asked to hold span batches (its analysis queue is full).
        self._held = False
        self._local: Resource | None = None
        #: The thread running ``loop`` (the shipper is built on it).
        self._loop_thread = threading.get_ident()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def capacity(self) -> int:
        return self._max

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # Spans this worker's tracer provider starts are its own: they travel without their
        # resource and take the telemetry process's. Spans it only relays (the collector's
        # receivers hand them to on_end) keep the resource their sender gave them.
        self._local = span.resource

    def on_end(self, span: ReadableSpan) -> None:
        with self._room:
            if self._stopped or self._loop.is_closed():
                self._on_drop(_STAGE, "shutdown")
                return
            while len(self._queue) >= self._max:
                if not self._block:
                    self._on_drop(_STAGE, "queue_full")
                    return
                self._room.wait(0.5)
                if self._stopped or self._loop.is_closed():
                    self._on_drop(_STAGE, "shutdown")
                    return
            self._queue.append(span)
            due = len(self._queue) >= self._batch
            if self._scheduled and not due:
                return
            self._scheduled = True
        # spans mostly end on the event loop itself: no wake-up of the loop needed then
        schedule = (self._loop.call_soon if threading.get_ident() == self._loop_thread
                    else self._loop.call_soon_threadsafe)
        try:
            if due or not self._delay:
                schedule(self._send)
            else:
                schedule(self._loop.call_later, self._delay, self._send)
        except RuntimeError:  # the loop closed meanwhile: nothing will send what is queued
            with self._room:
                self._scheduled = False
                self._drop_queued("shutdown")

    def _drop_queued(self, reason: str) -> None:
        """With ``_room`` held: count every queued span as dropped, and make room."""
        dropped = len(self._queue)
        self._queue.clear()
        self._room.notify_all()
        for _ in range(dropped):
            self._on_drop(_STAGE, reason)

    def _send(self) -> None:
        """On the event loop: send what is queued, unless the connection is backed up."""
        with self._room:
            self._scheduled = False
            if not self._queue:
                return
            if self._channel.closed:
                self._drop_queued("telemetry_process_gone")
                return
            if self._held:  # resume() sends what waits
                self._scheduled = True
                return
            if self._channel.buffered() > _MAX_IN_FLIGHT_BYTES:
                # try again shortly (one timer, however many batches came due meanwhile;
                # not at every loop iteration: the relay shares this loop); the queue
                # bounds what waits
                self._scheduled = True
                if not self._retrying:
                    self._retrying = True
                    self._loop.call_later(max(self._delay, _RETRY_S), self._retry)
                return
            batch = list(self._queue)
            self._queue.clear()
            self._room.notify_all()
        try:
            self._channel.send_spans(encode_batch(batch, local=self._local))
        except ChannelError:
            for _ in batch:
                self._on_drop(_STAGE, "telemetry_process_gone")
        except Exception:  # telemetry never breaks traffic
            _log.exception("could not send %d spans to the telemetry process", len(batch))
            for _ in batch:
                self._on_drop(_STAGE, "processor_error")

    def hold(self) -> None:
        """On the event loop: keep span batches queued until :meth:`resume` (the telemetry
        process's analysis queue is full; the queue's bound then applies)."""
        self._held = True

    def resume(self) -> None:
        """On the event loop: send again, starting with what waited."""
        self._held = False
        self._send()

    def _retry(self) -> None:
        self._retrying = False
        self._send()

    async def drain(self, timeout_s: float) -> bool:
        """Send everything queued and wait until the connection has written it."""
        deadline = self._loop.time() + timeout_s
        while self._loop.time() < deadline:
            self._send()
            if not self._queue and self._channel.buffered() == 0:
                return True
            if self._channel.closed:
                return False
            await asyncio.sleep(0.01)
        return False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._loop.is_running() and not self._on_loop():
            future = asyncio.run_coroutine_threadsafe(self.drain(timeout_millis / 1000), self._loop)
            return future.result(timeout_millis / 1000 + 1)
        self._send()
        return not self._queue

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def shutdown(self) -> None:
        self.force_flush(10_000)
        with self._room:
            self._stopped = True
            self._room.notify_all()
