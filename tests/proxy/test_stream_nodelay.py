"""Streamed responses go out chunk by chunk with Nagle's algorithm off (TCP_NODELAY).

Tornado leaves Nagle on while a response is written: a relayed chunk written while the
previous segment is unacknowledged would wait for the client's (possibly delayed) ACK.
The proxy turns it off for a stream; Tornado turns it back on when the response finishes.
The option is on the proxy's side of the connection, so the test opens that socket through
/proc (the proxy runs in this process): a lookup in the kernel's tables, whose time does not
grow with the heap (walking the heap for the proxy's IOStream could outlast the 5 s wait
after a few hundred other tests, in random order).
"""

from __future__ import annotations

import json
import os
import socket
import time

from tests.support.fake_upstream import SCENARIO_HEADER
from tests.support.procfs import tcp_socket_fd
from tests.support.proxy_harness import RunningProxy


def _proxy_side_socket(client: socket.socket, timeout_s: float = 5.0) -> socket.socket:
    """The proxy's socket for ``client``'s connection (a duplicate of its descriptor: socket
    options are the socket's, so reading them through it reads the proxy's), once the
    proxy has accepted the connection."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fd = tcp_socket_fd(client.getpeername(), client.getsockname())
        if fd is not None:
            return socket.socket(fileno=os.dup(fd))
        time.sleep(0.01)
    raise AssertionError(f"no proxy-side socket for client {client.getsockname()}")


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


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
            f"x-fake-delay: 0.25\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    port = int(proxy.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(head)  # the proxy waits for the body, connection accepted
        with _proxy_side_socket(client) as server_side:
            assert _nodelay(server_side) == 0  # Nagle on while the request is read
            client.sendall(body)
            received = _read_until(client, b"data: ")  # headers and the first event
            assert b" 200 " in received.split(b"\r\n", 1)[0]
            assert _nodelay(server_side) != 0  # mid-stream
            _read_until(client, b"0\r\n\r\n", received)  # the end of the chunked response
            # Tornado restores Nagle for the connection's next request once its write of the
            # response's end completes, on the proxy's loop: a moment after the client has it.
            deadline = time.monotonic() + 5
            while _nodelay(server_side) != 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _nodelay(server_side) == 0
