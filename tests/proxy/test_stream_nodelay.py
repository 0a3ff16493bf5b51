"""Streamed responses go out chunk by chunk with Nagle's algorithm off (TCP_NODELAY).

Tornado leaves Nagle on while a response is written: a relayed chunk written while the
previous segment is unacknowledged would wait for the client's (possibly delayed) ACK.
The proxy turns it off for a stream; Tornado turns it back on when the response finishes.
The option is on the proxy's side of the connection, so the test finds that socket among
the file descriptors of this process (the proxy runs in it): a duplicate of the descriptor
reads the same socket's options. It looks for it once, before the request is complete, so
the check mid-stream is a single system call. (An earlier version scanned the heap for the
proxy's IOStream; on a loaded machine the scan held the GIL long enough to starve the
proxy's thread and time out.)
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time

from tests.support.fake_upstream import SCENARIO_HEADER
from tests.support.proxy_harness import RunningProxy


def _proxy_side_socket(client: socket.socket, timeout_s: float = 10.0) -> socket.socket:
    """A duplicate of the proxy's socket for ``client``'s connection (close it after use),
    once the proxy has accepted it."""
    peer = client.getsockname()
    mine = client.fileno()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                if fd == mine or not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    continue
                dup = socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM)
            except OSError:
                continue  # closed meanwhile, or not an inet socket
            try:
                if dup.getpeername() == peer:
                    return dup
            except OSError:
                pass
            dup.close()
        time.sleep(0.01)
    raise AssertionError(f"no proxy-side socket for client {peer}")


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
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n"
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
