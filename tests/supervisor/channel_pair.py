"""``FrameChannel`` ends of one real socket pair (a worker's and the telemetry process's)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from llmtrace_otel.supervisor.channel import FrameChannel


def socket_pair(*, small_buffers: bool = False) -> tuple[socket.socket, socket.socket]:
    """``small_buffers``: 4 KiB kernel buffers, so that a peer that does not read backs the
    connection up after a few kilobytes instead of a few hundred."""
    one, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if small_buffers:
        for sock in (one, other):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return one, other


async def open_channel(sock: socket.socket, name: str) -> FrameChannel:
    """A channel on ``sock``; it reads from the socket from now on (its stream buffers
    what ``serve`` has not taken yet)."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    return FrameChannel(reader, writer, name=name)


async def channel_pair() -> tuple[FrameChannel, FrameChannel]:
    one, other = socket_pair()
    return await open_channel(one, "worker"), await open_channel(other, "telemetry")


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Yield to the loop until ``predicate`` holds; AssertionError naming ``what`` after the
    deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
