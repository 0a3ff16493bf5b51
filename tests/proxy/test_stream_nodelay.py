"""Streamed responses go out chunk by chunk with Nagle's algorithm off (TCP_NODELAY).

Tornado leaves Nagle on while a response is written: a relayed chunk written while the
previous segment is unacknowledged would wait for the client's (possibly delayed) ACK.
The proxy turns it off for a stream; Tornado turns it back on when the response finishes.
The option is on the proxy's side of the connection, so the test finds that socket among
the proxy's live IOStreams (the proxy runs in this process).
"""

from __future__ import annotations

import gc
import json
import socket
import time

from tornado.iostream import IOStream

from tests.support.fake_upstream import SCENARIO_HEADER
from tests.support.proxy_harness import RunningProxy


def _server_side_nodelay(client: socket.socket) -> int:
    peer = client.getsockname()
    for obj in gc.get_objects():
        if isinstance(obj, IOStream) and obj.socket is not None:
            try:
                if obj.socket.getpeername() == peer:
                    return obj.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                continue
    raise AssertionError(f"no proxy-side stream for client {peer}")


def _read_until(client: socket.socket, marker: bytes, buffer: bytes = b"") -> bytes:
    while marker not in buffer:
        data = client.recv(65536)
        assert data, f"connection closed before {marker!r}; got {buffer!r}"
        buffer += data
    return buffer


def test_a_stream_is_relayed_with_nodelay_and_nagle_is_back_after_it(
        proxy: RunningProxy) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                       "messages": [{"role": "user", "content": "Say hello."}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer sk-test\r\n{SCENARIO_HEADER}: slow-stream\r\n"
            f"x-fake-delay: 0.1\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    port = int(proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(head + body)
        received = _read_until(client, b"data: ")  # headers and the first event, mid-stream
        assert b" 200 " in received.split(b"\r\n", 1)[0]
        assert _server_side_nodelay(client) != 0
        _read_until(client, b"0\r\n\r\n", received)  # the end of the chunked response
        # Tornado restores Nagle for the connection's next request once its write of the
        # response's end completes, on the proxy's loop: a moment after the client has it.
        deadline = time.monotonic() + 5
        while _server_side_nodelay(client) != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _server_side_nodelay(client) == 0
