"""The telemetry process's end of every worker connection.

The hub listens on a control socket in a private directory (0700). Each worker that
connects introduces itself (``hello``: index and pid); from then on the hub

* decodes the span batches it sends and hands every span to the pipeline's head (the
  analysis chain and the exporters run here, once for all workers);
* answers its ``render_metrics`` / ``render_health`` requests with the whole product's
  ``/metrics`` and ``/health``, gathered from every live worker plus this process;
* keeps the last metric snapshot of each worker (refreshed at every scrape and every few
  seconds), so that a worker that dies leaves its counts in the totals (``on_retired``):
  counters on ``/metrics`` never go down because a worker was restarted;
* sends spend events (``spend``) to a worker, which records them in the budgets it enforces.

When the pipeline's queue is nearly full, the hub asks every worker to hold its span
batches (``hold``, then ``go`` once the queue is half empty): their ship queues fill, and (in
collector mode) the receivers refuse new data with a retry: backpressure crosses the process
boundary instead of spans being dropped here. The connections keep being read meanwhile, so
``/health`` and ``/metrics`` still answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor

from llmtrace_otel.supervisor.channel import ChannelError, FrameChannel
from llmtrace_otel.supervisor.span_wire import SpanWireError, decode_batch
from llmtrace_processors.chain import DropCounter

__all__ = ["Hub", "Rendered", "WorkerSnapshots"]

_log = logging.getLogger(__name__)
_SNAPSHOT_EVERY_S = 5.0
_HELLO_TIMEOUT_S = 600.0
#: The pipeline's queue share at which workers are asked to hold their span batches, and
#: the share below which they are let go again.
_HOLD_AT = 0.9
_RELEASE_AT = 0.5

#: What a render answers: (HTTP status, headers, body).
Rendered = tuple[int, dict[str, str], bytes]


@dataclass
class WorkerSnapshots:
    """Every live worker's latest metric snapshot (OTLP protobuf bytes). The last one of a
    worker that is gone goes to the hub's ``on_retired``: its counts stay in the totals."""

    live: dict[int, bytes] = field(default_factory=dict)


@dataclass
class _Connected:
    channel: FrameChannel
    index: int
    pid: int


class Hub:
    """See the module docstring. Built first (the pipeline's spend recorder sends through
    it), then given the pipeline's ``head`` (and ``queue``, its (depth, capacity), for
    backpressure) with :meth:`feed`, and what answers ``/metrics`` and ``/health`` with
    :meth:`answer`: ``render_metrics(snapshots, accept, accept_encoding)`` (on a thread)
    and ``render_health(worker_reports)``."""

    def __init__(self, *, resource: Resource, on_drop: DropCounter,
                 on_retired: Callable[[bytes], None] | None = None) -> None:
        self._resource = resource
        self._on_drop = on_drop
        self._on_retired = on_retired
        self._head: SpanProcessor | None = None
        self._queue: Callable[[], tuple[int, int]] | None = None
        self._render_metrics: Callable[[WorkerSnapshots, str, str], Rendered] | None = None
        self._render_health: Callable[[dict[int, Mapping[str, Any]]], Rendered] | None = None
        self._workers: dict[int, _Connected] = {}
        self.snapshots = WorkerSnapshots()
        self._directory: Path | None = None
        self.control_path = ""
        self._server: asyncio.AbstractServer | None = None
        self._snapshotting: asyncio.Task[None] | None = None
        self._round_robin = itertools.count()
        self._holding = False
        self._tasks: set[asyncio.Task[Any]] = set()

    def feed(self, head: SpanProcessor,
             queue: Callable[[], tuple[int, int]] | None = None) -> None:
        self._head, self._queue = head, queue

    def answer(self, *, metrics: Callable[[WorkerSnapshots, str, str], Rendered],
               health: Callable[[dict[int, Mapping[str, Any]]], Rendered]) -> None:
        self._render_metrics, self._render_health = metrics, health

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a control socket in a new private directory (0700)."""
        self._directory = Path(tempfile.mkdtemp(prefix="llmtrace-otel-"))
        self.control_path = str(self._directory / "control.sock")
        self._server = await asyncio.start_unix_server(self._connected, self.control_path)
        os.chmod(self.control_path, 0o600)
        self._snapshotting = asyncio.get_running_loop().create_task(self._snapshot_often())

    async def stop(self) -> None:
        if self._snapshotting is not None:
            self._snapshotting.cancel()
        if self._server is not None:
            self._server.close()
        for connected in list(self._workers.values()):
            await connected.channel.close()
        if self._directory is not None:
            with contextlib.suppress(OSError):
                Path(self.control_path).unlink()
            with contextlib.suppress(OSError):
                self._directory.rmdir()

    async def wait_disconnected(self, timeout_s: float) -> bool:
        """Wait until every worker has closed its connection (their last spans are in)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._workers:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    @property
    def connected(self) -> dict[int, int]:
        """Worker index -> pid of the workers connected now."""
        return {index: c.pid for index, c in self._workers.items()}

    # -- connections ----------------------------------------------------------------------

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = FrameChannel(reader, writer, name="worker (connecting)")
        hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def on_hello(data: bytes) -> None:
            if not hello.done():
                hello.set_result(json.loads(data))

        channel.on_event("hello", on_hello)
        channel.on_spans(self._spans)
        channel.on_request("render_metrics", self._answer_metrics)
        channel.on_request("render_health", self._answer_health)
        serving = asyncio.get_running_loop().create_task(channel.serve())
        try:  # a worker says hello once it listens: start-up may be slow (valgrind, ...)
            who = await asyncio.wait_for(hello, _HELLO_TIMEOUT_S)
        except TimeoutError:
            _log.error("a process connected to the control socket and did not say hello "
                       "within %.0f s", _HELLO_TIMEOUT_S)
            await channel.close()
            return
        index, pid = int(who["index"]), int(who["pid"])
        channel.name = f"worker {index} (pid {pid})"
        connected = _Connected(channel, index, pid)
        self._workers[index] = connected
        if self._holding:  # a worker that joins while the others hold its batches holds too
            with contextlib.suppress(ChannelError):
                channel.send_event("hold", b"")
        try:
            await serving
        finally:
            if self._workers.get(index) is connected:
                del self._workers[index]
                last = self.snapshots.live.pop(index, None)
                if last is not None and self._on_retired is not None:
                    self._on_retired(last)

    def _spans(self, data: bytes) -> None:
        try:
            spans = decode_batch(data, self._resource)
        except SpanWireError as exc:
            _log.error("a span batch from a worker could not be read: %s", exc)
            self._on_drop("telemetry_process.intake", "undecodable")
            return
        head = self._head
        if head is None:  # not fed yet: start() is called after feed()
            self._on_drop("telemetry_process.intake", "not_ready")
            return
        for span in spans:
            head.on_end(span)
        if self._queue is not None and not self._holding:
            depth, capacity = self._queue()
            if depth >= capacity * _HOLD_AT:
                self._hold()

    def _hold(self) -> None:
        """Ask every worker to hold its span batches until the pipeline's queue is half
        empty. The connections keep being read: requests (/health, /metrics) still pass,
        and batches already on their way are taken."""
        self._holding = True
        self._tell_all("hold")

        async def release() -> None:
            try:
                while self._queue is not None:
                    depth, capacity = self._queue()
                    if depth < capacity * _RELEASE_AT:
                        break
                    await asyncio.sleep(0.02)
            finally:
                self._holding = False
                self._tell_all("go")

        task = asyncio.get_running_loop().create_task(release())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tell_all(self, op: str) -> None:
        for connected in list(self._workers.values()):
            with contextlib.suppress(ChannelError):
                connected.channel.send_event(op, b"")

    # -- gathering from the workers --------------------------------------------------------

    async def _ask_all(self, op: str) -> dict[int, bytes]:
        workers = list(self._workers.values())

        async def ask(connected: _Connected) -> tuple[int, bytes | None]:
            try:
                return connected.index, await connected.channel.request(op, timeout_s=5.0)
            except ChannelError as exc:
                _log.warning("%s did not answer %s: %s", connected.channel.name, op, exc)
                return connected.index, None

        answers = await asyncio.gather(*(ask(c) for c in workers))
        return {index: data for index, data in answers if data is not None}

    async def refresh_snapshots(self) -> WorkerSnapshots:
        """Ask every live worker for its metrics; keep the answers."""
        for index, data in (await self._ask_all("metrics")).items():
            self.snapshots.live[index] = data
        return self.snapshots

    async def _snapshot_often(self) -> None:
        while True:
            await asyncio.sleep(_SNAPSHOT_EVERY_S)
            with contextlib.suppress(Exception):
                await self.refresh_snapshots()

    async def worker_reports(self) -> dict[int, Mapping[str, Any]]:
        return {index: json.loads(data) for index, data in (await self._ask_all("health")).items()}

    # -- answering the workers ------------------------------------------------------------

    async def _answer_metrics(self, data: bytes) -> bytes:
        if self._render_metrics is None:
            raise ChannelError("metrics are not served")
        asked = json.loads(data or b"{}")
        snapshots = await self.refresh_snapshots()
        rendered = await asyncio.get_running_loop().run_in_executor(
            None,
            self._render_metrics,
            snapshots,
            asked.get("accept", ""),
            asked.get("accept_encoding", ""),
        )
        return _encode(rendered)

    async def _answer_health(self, data: bytes) -> bytes:
        if self._render_health is None:
            raise ChannelError("health is not served")
        return _encode(self._render_health(await self.worker_reports()))

    def send_spend(self, data: bytes) -> bool:
        """Hand spend events to a live worker (any: budgets live in their shared state, or
        in the only worker's memory). False, and counted, when no worker can take them."""
        workers = [c for c in self._workers.values() if not c.channel.closed]
        if not workers:
            self._on_drop("telemetry_process.spend", "no_worker")
            return False
        connected = workers[next(self._round_robin) % len(workers)]
        try:
            connected.channel.send_event("spend", data)
        except ChannelError:
            self._on_drop("telemetry_process.spend", "no_worker")
            return False
        return True


def _encode(rendered: Rendered) -> bytes:
    status, headers, body = rendered
    return json.dumps({"status": status, "headers": headers}).encode() + b"\n" + body
