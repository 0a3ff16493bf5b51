"""``FrameChannel``: framed requests, events and span batches over a real socket pair."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest

from llmtrace_otel.supervisor.channel import MAX_FRAME, ChannelError, FrameChannel, Kind
from tests.supervisor.channel_pair import channel_pair, open_channel, socket_pair, until

Pair = tuple[FrameChannel, FrameChannel]


def _run(test: Callable[[FrameChannel, FrameChannel], Awaitable[None]]) -> None:
    """``test`` with two channels serving each other; both closed after it."""

    async def main() -> None:
        one, other = await channel_pair()
        serving = [asyncio.create_task(one.serve()), asyncio.create_task(other.serve())]
        try:
            await asyncio.wait_for(test(one, other), 20)
        finally:
            await one.close()
            await other.close()
            await asyncio.wait_for(asyncio.gather(*serving), 5)

    asyncio.run(main())


def _echo(prefix: bytes) -> Callable[[bytes], Awaitable[bytes]]:
    async def answer(data: bytes) -> bytes:
        return prefix + data

    return answer


def test_requests_are_answered_in_both_directions() -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        telemetry.on_request("render_health", _echo(b"telemetry:"))
        worker.on_request("metrics", _echo(b"worker:"))
        assert await worker.request("render_health", b"{}") == b"telemetry:{}"
        assert await telemetry.request("metrics") == b"worker:"
        assert await telemetry.request("metrics", b"\n\x00binary\n") == b"worker:\n\x00binary\n"

    _run(test)


def test_concurrent_requests_get_their_own_answers_when_answered_out_of_order() -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        finished: list[int] = []

        async def slow_then_fast(data: bytes) -> bytes:
            number = int(data)
            await asyncio.sleep(0.02 * (5 - number))  # the first asked is answered last
            finished.append(number)
            return b"answer %d" % number

        telemetry.on_request("work", slow_then_fast)
        answers = await asyncio.gather(*(worker.request("work", b"%d" % n) for n in range(5)))
        assert answers == [b"answer %d" % n for n in range(5)]
        assert finished == [4, 3, 2, 1, 0]

    _run(test)


def test_a_request_without_a_handler_fails_naming_the_op() -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        with pytest.raises(ChannelError, match="no handler for 'render_nothing'"):
            await worker.request("render_nothing")

    _run(test)


def test_a_handler_that_raises_fails_the_request_and_the_channel_goes_on() -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        async def broken(data: bytes) -> bytes:
            raise ValueError("the renderer is broken")

        telemetry.on_request("render_metrics", broken)
        telemetry.on_request("render_health", _echo(b"ok"))
        with pytest.raises(ChannelError, match="the renderer is broken"):
            await worker.request("render_metrics")
        assert await worker.request("render_health") == b"ok"
        assert not worker.closed and not telemetry.closed

    _run(test)


def test_a_request_nobody_answers_times_out() -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        async def never(data: bytes) -> bytes:
            await asyncio.Event().wait()
            return b""

        telemetry.on_request("metrics", never)
        with pytest.raises(ChannelError, match=r"no answer to metrics within 0\.2 s"):
            await worker.request("metrics", timeout_s=0.2)
        telemetry.on_request("health", _echo(b"still here"))
        assert await worker.request("health") == b"still here"

    _run(test)


def test_pending_requests_fail_when_the_peer_closes() -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        asked = asyncio.Event()

        async def never(data: bytes) -> bytes:
            asked.set()
            await asyncio.Event().wait()
            return b""

        telemetry.on_request("metrics", never)
        pending = [asyncio.create_task(worker.request("metrics", timeout_s=60)) for _ in "ab"]
        await asked.wait()
        await telemetry.close()
        for request in pending:  # long before their 60 s timeout
            with pytest.raises(ChannelError, match="the connection closed"):
                await asyncio.wait_for(request, 5)
        assert worker.closed
        with pytest.raises(ChannelError, match="closed"):
            await worker.request("metrics")

    _run(test)


def test_events_and_span_batches_reach_their_handlers() -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        events: list[bytes] = []
        batches: list[bytes] = []
        worker.on_event("spend", events.append)
        telemetry.on_spans(batches.append)
        telemetry.send_event("spend", b'{"tenant":"t","agent":null,"usd":0.5}')
        telemetry.send_event("nobody_listens", b"ignored")
        worker.send_spans(b"\x80\x05a batch\n")
        worker.send_spans(b"")
        await until(lambda: len(batches) == 2 and len(events) == 1, "the messages")
        assert events == [b'{"tenant":"t","agent":null,"usd":0.5}']
        assert batches == [b"\x80\x05a batch\n", b""]

    _run(test)


def test_a_handler_of_an_event_or_a_batch_that_raises_does_not_end_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test(worker: FrameChannel, telemetry: FrameChannel) -> None:
        def broken(data: bytes) -> None:
            raise ValueError(f"cannot read {data!r}")

        worker.on_event("spend", broken)
        telemetry.on_spans(broken)
        telemetry.on_request("health", _echo(b"ok"))
        worker.on_request("health", _echo(b"ok too"))
        telemetry.send_event("spend", b"not json")
        worker.send_spans(b"not a batch")
        assert await worker.request("health") == b"ok"
        assert await telemetry.request("health") == b"ok too"
        assert "cannot read b'not json'" in caplog.text
        assert "cannot read b'not a batch'" in caplog.text

    _run(test)


async def _raw_peer(data: bytes) -> tuple[FrameChannel, asyncio.Task[None], socket.socket]:
    """A channel whose peer is a plain socket that writes ``data``."""
    one, raw = socket_pair()
    channel = await open_channel(one, "worker")
    serving = asyncio.create_task(channel.serve())
    raw.sendall(data)
    return channel, serving, raw


def test_a_frame_above_max_frame_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        channel, serving, raw = await _raw_peer(struct.pack(">IB", MAX_FRAME + 1, Kind.SPANS))
        with caplog.at_level(logging.ERROR):
            await asyncio.wait_for(serving, 5)  # returns: no 256 MiB read is waited for
        assert channel.closed
        raw.settimeout(5)
        assert raw.recv(1) == b""  # the channel closed its end
        raw.close()

    asyncio.run(main())
    assert f"a frame of {MAX_FRAME + 1} bytes" in caplog.text


def test_a_malformed_frame_closes_the_connection_with_a_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        # a response too short to hold a call id
        channel, serving, raw = await _raw_peer(struct.pack(">IB", 2, Kind.RESPONSE) + b"ab")
        await asyncio.wait_for(serving, 5)  # ends without an exception escaping
        assert channel.closed
        raw.close()

    asyncio.run(main())
    assert "worker: a frame of kind 3 without a call id" in caplog.text


def test_sending_on_a_connection_being_closed_is_an_error_not_a_silent_loss() -> None:
    """Between the connection failing and serve() noticing, what is sent must not vanish."""

    async def main() -> None:
        one, other = await channel_pair()  # nothing serves: only close() knows
        await one.close()
        with pytest.raises(ChannelError, match="closed"):
            one.send_spans(b"batch")
        with pytest.raises(ChannelError, match="closed"):
            one.send_event("spend", b"{}")
        await other.close()

    asyncio.run(main())
