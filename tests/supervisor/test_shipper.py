"""``SpanShipper``: a real tracer provider ships its spans over a real socket pair.

The telemetry process's end is a ``FrameChannel`` that decodes what arrives; it "stops
reading" by not being opened yet: the worker's writes then fill the kernel's buffers (4 KiB
here) and then the worker's own transport buffer, exactly as when the telemetry process
pauses a worker. ``_MAX_IN_FLIGHT_BYTES`` (8 MiB) is lowered to 16 KiB so that a few spans
back the connection up instead of 4,000 of them; its value is not what is tested.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_otel.supervisor import shipper as shipper_module
from llmtrace_otel.supervisor.channel import FrameChannel
from llmtrace_otel.supervisor.shipper import SpanShipper
from llmtrace_otel.supervisor.span_wire import decode_batch
from tests.supervisor.channel_pair import channel_pair, open_channel, socket_pair, until

TELEMETRY = Resource.create({"service.name": "telemetry-process"})
WORKER = Resource.create({"service.name": "worker"})
LIMIT = 16 * 1024
CONTENT = "x" * 2048  # a span of ~2 KiB on the wire
FULL = ("worker.ship", "queue_full")
GONE = ("worker.ship", "telemetry_process_gone")


@pytest.fixture(autouse=True)
def _small_in_flight_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(shipper_module, "_MAX_IN_FLIGHT_BYTES", LIMIT)
    yield


class Worker:
    """A worker's tracer provider whose one processor is the shipper under test."""

    def __init__(self, channel: FrameChannel, **options: object) -> None:
        self.drops: list[tuple[str, str]] = []
        # batches sent at the next loop iteration unless a test says otherwise: the tests
        # back the connection up span by span (the 5 ms default has a test of its own)
        options.setdefault("delay_s", 0.0)
        self.shipper = SpanShipper(channel, asyncio.get_running_loop(),
                                   on_drop=lambda *drop: self.drops.append(drop),
                                   **options)  # type: ignore[arg-type]
        provider = TracerProvider(resource=WORKER)
        provider.add_span_processor(self.shipper)
        self.tracer = provider.get_tracer("llmtrace.test")
        self.ended = 0

    def end(self, count: int = 1) -> None:
        for _ in range(count):
            with self.tracer.start_as_current_span(f"call {self.ended}",
                                                   attributes={"content": CONTENT}):
                pass
            self.ended += 1

    async def back_up(self, channel: FrameChannel) -> None:
        """End spans until the unread connection holds more than LIMIT bytes unsent."""
        deadline = time.monotonic() + 10
        while channel.buffered() <= LIMIT:
            assert time.monotonic() < deadline, "the connection never backed up"
            self.end()
            await asyncio.sleep(0)


class Telemetry:
    """The reading end: every span batch decoded, in arrival order."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.batches = 0
        self.channel: FrameChannel | None = None

    async def read(self, sock: socket.socket) -> None:
        self.channel = await open_channel(sock, "telemetry")
        self.channel.on_spans(self._batch)
        asyncio.get_running_loop().create_task(self.channel.serve())

    def _batch(self, data: bytes) -> None:
        self.batches += 1
        self.spans.extend(decode_batch(data, TELEMETRY))

    @property
    def names(self) -> list[str]:
        return [span.name for span in self.spans]


async def _connected(*, small_buffers: bool = True) -> tuple[FrameChannel, socket.socket]:
    """The worker's channel (serving) and the telemetry end's socket, not read yet."""
    one, other = socket_pair(small_buffers=small_buffers)
    channel = await open_channel(one, "worker")
    asyncio.get_running_loop().create_task(channel.serve())
    return channel, other


def test_spans_arrive_decoded_in_order_from_the_loop_and_from_threads() -> None:
    async def main() -> None:
        channel, sock = await _connected(small_buffers=False)
        telemetry = Telemetry()
        await telemetry.read(sock)
        worker = Worker(channel, batch_size=7)
        for _ in range(5):
            worker.end(10)  # on the loop, as the relay does
            await asyncio.sleep(0)
        await asyncio.to_thread(worker.end, 50)  # on a thread, as the collector's intake
        await until(lambda: len(telemetry.spans) == 100, "100 spans")
        assert telemetry.names == [f"call {index}" for index in range(100)]
        assert telemetry.spans[42].attributes == {"content": CONTENT}
        assert all(span.resource is TELEMETRY for span in telemetry.spans)
        assert worker.drops == []

    asyncio.run(main())


def test_relayed_spans_keep_their_resource_own_spans_take_the_telemetry_processs() -> None:
    sender = TracerProvider(resource=Resource.create({"service.name": "batch-app"}))
    memory = InMemorySpanExporter()
    sender.add_span_processor(SimpleSpanProcessor(memory))
    with sender.get_tracer("app").start_as_current_span("received over OTLP"):
        pass
    relayed = memory.get_finished_spans()

    async def main() -> None:
        worker_channel, telemetry_channel = await channel_pair()
        telemetry = Telemetry()
        telemetry_channel.on_spans(
            lambda data: telemetry.spans.extend(decode_batch(data, TELEMETRY)))
        asyncio.get_running_loop().create_task(telemetry_channel.serve())
        worker = Worker(worker_channel)
        worker.end()
        worker.shipper.on_end(relayed[0])  # the collector's intake hands spans to on_end
        await until(lambda: len(telemetry.spans) == 2, "both spans")
        own, received = telemetry.spans
        assert own.resource is TELEMETRY
        assert received.resource.attributes["service.name"] == "batch-app"

    asyncio.run(main())


def test_past_max_queue_spans_are_dropped_and_counted_then_the_rest_arrives() -> None:
    async def main() -> None:
        channel, sock = await _connected()
        worker = Worker(channel, max_queue=20, batch_size=5)
        await worker.back_up(channel)
        sent = worker.ended
        for _ in range(25):
            worker.end()
            await asyncio.sleep(0)  # the shipper runs: the connection is still backed up
        assert worker.shipper.queue_depth == 20
        assert worker.drops == [FULL] * 5
        telemetry = Telemetry()
        await telemetry.read(sock)  # reading again: the queue drains
        await until(lambda: len(telemetry.spans) == sent + 20, f"{sent + 20} spans")
        assert telemetry.names == [f"call {index}" for index in range(sent + 20)]
        assert worker.drops == [FULL] * 5

    asyncio.run(main())


def test_block_when_full_makes_the_ending_thread_wait_instead_of_dropping() -> None:
    async def main() -> None:
        channel, sock = await _connected()
        worker = Worker(channel, max_queue=5, batch_size=1, block_when_full=True)
        await worker.back_up(channel)
        worker.end(5)  # the queue is full now
        await asyncio.sleep(0)
        assert worker.shipper.queue_depth == 5
        ending = threading.Thread(target=worker.end, args=(3,))
        ending.start()
        await asyncio.sleep(0.3)  # the loop runs meanwhile: the shipper is not what blocks
        assert ending.is_alive(), "the thread ending a span did not wait for room"
        assert worker.drops == []
        telemetry = Telemetry()
        await telemetry.read(sock)
        await until(lambda: not ending.is_alive(), "the ending thread to continue")
        await until(lambda: len(telemetry.spans) == worker.ended, "every span")
        assert telemetry.names == [f"call {index}" for index in range(worker.ended)]
        assert worker.drops == []

    asyncio.run(main())


def test_a_closed_connection_drops_what_is_queued_counted() -> None:
    async def main() -> None:
        channel, sock = await _connected()
        worker = Worker(channel, max_queue=50, batch_size=100)
        await worker.back_up(channel)
        worker.end(4)
        await asyncio.sleep(0)
        assert worker.shipper.queue_depth == 4
        sock.close()  # the telemetry process is gone
        await until(lambda: channel.closed, "the worker to see the connection close")
        await until(lambda: worker.drops == [GONE] * 4, "the queued spans counted")
        worker.end()
        await until(lambda: worker.drops == [GONE] * 5, "a later span counted")
        assert worker.shipper.queue_depth == 0

    asyncio.run(main())


def test_spans_ending_within_the_delay_travel_in_one_batch() -> None:
    async def main() -> None:
        channel, sock = await _connected(small_buffers=False)
        telemetry = Telemetry()
        await telemetry.read(sock)
        worker = Worker(channel, delay_s=0.2)  # long enough for a loaded machine
        for _ in range(3):  # three calls ending on three loop iterations
            worker.end()
            await asyncio.sleep(0.01)
        await until(lambda: len(telemetry.spans) == 3, "the three spans")
        assert telemetry.batches == 1
        assert telemetry.names == ["call 0", "call 1", "call 2"]
        # with no delay, each loop iteration's spans go on their own
        eager = Worker(channel, delay_s=0.0)
        for _ in range(3):
            eager.end()
            await asyncio.sleep(0.01)
        await until(lambda: len(telemetry.spans) == 6, "the next three spans")
        assert telemetry.batches == 4

    asyncio.run(main())


def test_force_flush_from_another_thread_delivers_everything() -> None:
    async def main() -> None:
        channel, sock = await _connected(small_buffers=False)
        telemetry = Telemetry()
        await telemetry.read(sock)
        worker = Worker(channel, delay_s=60.0)  # unflushed, spans would wait a minute
        worker.end(10)
        await asyncio.sleep(0.05)
        assert telemetry.spans == []
        assert await asyncio.to_thread(worker.shipper.force_flush, 5000) is True
        await until(lambda: len(telemetry.spans) == 10, "the flushed spans", timeout_s=5)
        assert telemetry.names == [f"call {index}" for index in range(10)]

    asyncio.run(main())


def test_a_span_ended_after_shutdown_is_counted() -> None:
    async def main() -> None:
        channel, sock = await _connected(small_buffers=False)
        telemetry = Telemetry()
        await telemetry.read(sock)
        worker = Worker(channel)
        worker.end(3)
        await asyncio.to_thread(worker.shipper.shutdown)
        await until(lambda: len(telemetry.spans) == 3, "the spans ended before shutdown")
        worker.end()
        assert worker.drops == [("worker.ship", "shutdown")]
        await asyncio.sleep(0.05)
        assert len(telemetry.spans) == 3

    asyncio.run(main())


def test_a_backed_up_connection_does_not_spin_the_workers_loop() -> None:
    """While the telemetry process does not read, the shipper retries now and then: the
    relay's event loop must not be kept busy polling the connection."""

    async def main() -> None:
        channel, sock = await _connected()
        worker = Worker(channel, max_queue=1000, batch_size=1)
        await worker.back_up(channel)
        worker.end(50)  # several batches due while backed up
        await asyncio.sleep(0)
        cpu = time.process_time()
        await asyncio.sleep(0.5)
        busy = time.process_time() - cpu
        assert busy < 0.1, f"{busy:.2f} s of CPU in 0.5 s idle, backed up"
        telemetry = Telemetry()
        await telemetry.read(sock)
        await until(lambda: len(telemetry.spans) == worker.ended, "every span")

    asyncio.run(main())


def test_a_span_ended_once_the_workers_loop_is_closed_is_counted_not_raised() -> None:
    loop = asyncio.new_event_loop()
    worker_channel, telemetry_channel = loop.run_until_complete(channel_pair())
    drops: list[tuple[str, str]] = []
    shipper = SpanShipper(worker_channel, loop, on_drop=lambda *drop: drops.append(drop))
    loop.run_until_complete(worker_channel.close())
    loop.run_until_complete(telemetry_channel.close())
    loop.close()
    provider = TracerProvider(resource=WORKER)
    provider.add_span_processor(shipper)
    with provider.get_tracer("llmtrace.test").start_as_current_span("late"):
        pass  # ending it must not raise into the code that ended it
    assert drops == [("worker.ship", "shutdown")]
    assert shipper.queue_depth == 0
