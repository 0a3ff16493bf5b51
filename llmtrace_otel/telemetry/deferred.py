"""Metric recordings run on a worker thread, off the proxy's event loop.

One proxied call records seven or more OTel SDK histogram measurements (GenAI duration,
token usage, time to first chunk, one per streamed chunk interval, the ``llmtrace.*``
request duration, three ``http.server.*``), each tens of microseconds of Python in the SDK
(51,000-86,000 CPU instructions a ``Histogram.record``, docs/performance.md). On the event
loop that time sits between one response and the next request: measured on sequential
streamed calls, ~0.1 ms of the time to first chunk. :class:`DeferredRecorder` takes the
call instead (a deque append) and a worker thread makes it, in batches, the way the
analysis worker takes spans (``processors/chain.py``): woken when ``batch_size`` calls are
waiting or ``max_delay_s`` has passed, not per call, since each wake-up costs the loop a
GIL hand-off.

What a reader sees stays exact: whoever collects first calls :meth:`DeferredRecorder.drain`
(the ``/metrics`` handler before it renders, ``Telemetry.force_flush`` and shutdown), which
makes every waiting call on the calling thread, so a scrape right after a response counts it.
A push reader (OTLP, every 60 s by default) may see a call up to ``max_delay_s`` late. Calls
are made in the order they were submitted, one at a time (a lock is held while making them),
so the recording code needs no thread safety of its own beyond the SDK's.

The queue is bounded: past ``max_queue_size`` waiting calls a new one is dropped and counted
(``llmtrace_telemetry_dropped_total{stage="metrics",reason="queue_full"}``); a call that raises
is logged and counted (``reason="recording_error"``); neither reaches the traffic.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["DeferredRecorder"]

_log = logging.getLogger(__name__)

DropCounter = Callable[[str, str], None]
_STAGE = "metrics"


def _ignore_drop(stage: str, reason: str) -> None:
    return None


class DeferredRecorder:
    """Runs submitted calls on a worker thread, in order (see the module docstring)."""

    def __init__(
        self,
        *,
        batch_size: int = 128,
        max_delay_s: float = 0.05,
        max_queue_size: int = 65_536,
        on_drop: DropCounter | None = None,
        thread_name: str = "llmtrace-metrics",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_delay_s <= 0:
            raise ValueError(f"max_delay_s must be > 0, got {max_delay_s}")
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be >= 1, got {max_queue_size}")
        self._batch = batch_size
        self._delay = max_delay_s
        self._max = max_queue_size
        self._on_drop = on_drop or _ignore_drop
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._making = threading.Lock()  # one thread makes calls at a time, in order
        self._stopped = False
        self._worker = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._worker.start()

    @property
    def pending(self) -> int:
        """Calls submitted and not made yet."""
        return len(self._queue)

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        """Make ``call(*args)`` soon, on the worker; after :meth:`shutdown`, right away."""
        if self._stopped:
            self._make(call, args)
            return
        queue = self._queue
        if len(queue) >= self._max:
            self._on_drop(_STAGE, "queue_full")
            return
        queue.append((call, args))
        if len(queue) == self._batch:
            with self._wake:
                self._wake.notify()
        if self._stopped:  # shutdown's last drain may have run before the append
            self.drain()

    def drain(self) -> None:
        """Make every waiting call now, on the calling thread (before a collection)."""
        with self._making:
            queue = self._queue
            while queue:
                try:
                    call, args = queue.popleft()
                except IndexError:  # taken by the worker meanwhile
                    return
                self._make(call, args)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the worker and make what is still waiting; later calls are made at once."""
        if self._stopped:
            return
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._worker.join(timeout=timeout_s)
        self.drain()

    def _make(self, call: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            call(*args)
        except Exception:
            _log.exception("recording a metric failed; the measurement is lost")
            self._on_drop(_STAGE, "recording_error")

    def _ready(self) -> bool:
        return self._stopped or len(self._queue) >= self._batch

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(self._ready, timeout=self._delay)
                stopped = self._stopped
            self.drain()
            if stopped:
                return
