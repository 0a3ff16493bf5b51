"""Clients that misbehave: slow headers and bodies, huge or countless headers, oversized
bodies, invalid UTF-8, thousands of idle connections. Each is bounded with a clear error,
and none stalls the well-behaved clients running at the same time."""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from llmtrace_processors.attributes import LLMTRACE_PARSE_ERRORS
from tests.reliability.load import FULL, Probe, health, mix, rss_bytes, run_load, wait_until
from tests.reliability.process import ProxyProcess
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy

CHAT = "/v1/chat/completions"


def _closed_by_peer(sock: socket.socket, timeout_s: float = 15.0) -> bytes:
    """Read until the proxy closes the connection; what it sent before (may be nothing)."""
    sock.settimeout(timeout_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data``; the response (head and Content-Length body), or what came before the
    proxy closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                head, sep, body = received.partition(b"\r\n\r\n")
                lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")]
                if sep and lengths and len(body) >= lengths[0]:
                    break
        except ConnectionResetError:
            pass
        return received


class _Dripper:
    """A slowloris client: sends ``data`` one byte every ``every_s`` seconds."""

    def __init__(self, port: int, data: bytes, every_s: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._data = data
        self._every = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        for byte in self._data:
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                return  # the proxy hung up on us: that is the point
            if self._stop.wait(self._every):
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_slow_clients_are_cut_off_without_stalling_others(upstream: FakeUpstream,
                                                          tmp_path: Path) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    head = (f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode()
    with running_proxy(upstream.url, tmp_path, idle_timeout_s=1, body_timeout_s=1) as proxy:
        # Headers dripped a byte every 50 ms would take 40 s; bodies that stop half-way;
        # connections that never send anything.
        drippers = [_Dripper(proxy.port, head + b"X-Pad: " + b"p" * 700 + b"\r\n\r\n", 0.05)
                    for _ in range(20)]
        stalled = []
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            sock.sendall(head + b"\r\n" + body.encode()[:10])
            stalled.append(sock)
        idle = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(20)]
        try:
            with Probe(proxy.port) as probe:
                report = run_load(proxy.url, mix(100 * (10 if FULL else 1)), concurrency=8)
                report.assert_all_answered()
                # Every slow client is disconnected by the proxy; none got a request through.
                for sock in [d.sock for d in drippers] + stalled + idle:
                    assert _closed_by_peer(sock) == b""
        finally:
            for dripper in drippers:
                dripper.close()
            for sock in stalled + idle:
                sock.close()
        probe.assert_responsive()
        assert proxy.server.in_flight.count == 0
        assert len(proxy.spans(len(report.outcomes))) == len(report.outcomes)  # theirs only


def test_oversized_and_countless_headers_get_431(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, max_header_bytes=8192) as proxy:
        upstream.clear()
        big = b"x" * 9000
        answer = _raw(proxy.port, f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
                      + b"X-Big: " + big + b"\r\nContent-Length: 2\r\n\r\n{}")
        status, _, rest = answer.partition(b"\r\n")
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
        error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
        assert error["code"] == "request_headers_too_large"
        assert "server.max_header_bytes" in error["message"]
        # Anthropic clients get Anthropic's error shape.
        anthropic = _raw(proxy.port, b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"anthropic-version: 2023-06-01\r\nX-Big: " + big + b"\r\n\r\n")
        assert json.loads(anthropic.partition(b"\r\n\r\n")[2])["type"] == "error"
        # Thousands of tiny headers are the same thing.
        many = b"".join(b"h%d: v\r\n" % i for i in range(1200))  # ~11 KB
        assert _raw(proxy.port, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many + b"\r\n"
                    ).startswith(b"HTTP/1.1 431 ")
        # Far beyond the limit, the proxy stops reading and hangs up.
        assert _raw(proxy.port, b"GET /v1/models HTTP/1.1\r\nX-Huge: " + b"x" * 40000
                    + b"\r\n\r\n") == b""
        assert upstream.requests == []
        assert proxy.server.health()["connections"]["oversized_headers"] == 3
        # Under the limit all is well.
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("GET", "/v1/models", headers={"X-Fine": "y" * 4000})
        assert conn.getresponse().status == 200
        conn.close()


def test_oversized_bodies_get_413_chunked_or_not(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, max_body_bytes=4096) as proxy:
        upstream.clear()
        declared = _raw(proxy.port, f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Length: 100000\r\n\r\n".encode() + b"{" * 100000)
        assert declared.startswith(b"HTTP/1.1 413 ")
        # A declared length far past any bound is refused before any body is read.
        far = _raw(proxy.port, f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Length: 50000000\r\n\r\n".encode())
        assert far.startswith(b"HTTP/1.1 413 ")
        assert json.loads(far.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_too_large"
        chunk = b"{" * 3000
        chunked = (f"POST {CHAT} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   .encode() + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3 + b"0\r\n\r\n")
        answer = _raw(proxy.port, chunked)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"server.max_body_bytes" in answer
        assert upstream.requests == []
        assert [s.attributes["error.type"] for s in proxy.spans(2)] == [  # type: ignore[index]
            "request_too_large", "request_too_large"]


def test_invalid_utf8_json_body_is_forwarded_and_noted(upstream: FakeUpstream,
                                                       tmp_path: Path) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "caf\xe9 \xff"}]}'
    with running_proxy(upstream.url, tmp_path) as proxy:
        upstream.clear()
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("POST", CHAT, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        relayed = response.read()
        conn.close()
        assert upstream.requests[-1].body == body  # byte for byte
        assert response.status == 400 and json.loads(relayed)["error"]  # the upstream's answer
        issues = (proxy.only_span().attributes or {})[LLMTRACE_PARSE_ERRORS]
        assert any(issue.startswith("request:") for issue in issues), issues


def _status(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        conn.close()


def _open_idle(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def _wait_all_closed(sockets: list[socket.socket], timeout_s: float) -> int:
    """Wait until the proxy has closed every socket; returns how many it closed."""
    closed = 0
    with selectors.DefaultSelector() as selector:  # epoll: no FD_SETSIZE limit
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while closed < len(sockets) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(1)
                except ConnectionResetError:
                    data = b""
                if data == b"":
                    closed += 1
                    selector.unregister(sock)
    return closed


def _open_connections(url: str) -> int:
    """Open client connections, as /health says (at the bound /health itself gets a 503)."""
    try:
        return int(health(url)["connections"]["open"])
    except urllib.error.HTTPError as exc:
        assert exc.code == 503
        return sys.maxsize


def _fill_to_the_bound(proxy: ProxyProcess, count: int, spare: int) -> list[socket.socket]:
    """``count`` idle connections, then more until the bound: the rest get a clear 503."""
    idle = _open_idle(proxy.port, count)
    wait_until(lambda: _open_connections(proxy.url) >= count, what="idle connections accepted")
    extra = _open_idle(proxy.port, spare + 5)
    answers = [_closed_by_peer(sock) for sock in extra[spare - 1:]]
    assert all(answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer
               for answer in answers), answers[:1]
    for sock in extra:
        sock.close()
    return idle


@pytest.mark.parametrize("count", [5000 if FULL else 1000])
def test_thousands_of_idle_connections_are_bounded(upstream: FakeUpstream, tmp_path: Path,
                                                   count: int) -> None:
    spare = 20  # the bound is count + spare; the probe holds one connection
    with ProxyProcess(upstream.url, tmp_path / "spans.db", max_connections=count + spare,
                      idle_timeout_s=3) as proxy:
        run_load(proxy.url, mix(100), concurrency=8).assert_all_answered()
        baseline = rss_bytes(proxy.pid)
        with Probe(proxy.port) as probe:
            wait_until(lambda: probe.latencies, what="the probe's connection")
            # Round 1: the clients give up (close) on their own.
            idle = _fill_to_the_bound(proxy, count, spare)
            held = rss_bytes(proxy.pid)
            for sock in idle:
                sock.close()
            wait_until(lambda: _open_connections(proxy.url) <= 2, what="closes noticed")
            # Round 2: the proxy's idle timeout closes them; memory is reused, not grown.
            idle = _fill_to_the_bound(proxy, count, spare)
            held_again = rss_bytes(proxy.pid)
            try:
                wait_until(lambda: _status(proxy.port) == 200, what="a free connection slot")
                run_load(proxy.url, mix(50), concurrency=1).assert_all_answered()
                assert _wait_all_closed(idle, 30) == count
            finally:
                for sock in idle:
                    sock.close()
            report = health(proxy.url)["connections"]
        probe.assert_responsive()
        after = rss_bytes(proxy.pid)
    assert report["refused"] >= 2 * 6 and report["max"] == count + spare
    per_connection = (held - baseline) / count
    print(f"\nidle connections: {count}; RSS baseline {baseline / 2**20:.1f} MiB, held "
          f"{held / 2**20:.1f} MiB ({per_connection / 1024:.1f} KiB each), again "
          f"{held_again / 2**20:.1f} MiB, after the idle timeout {after / 2**20:.1f} MiB; "
          f"probe p99 {probe.quantile(0.99) * 1000:.1f} ms")
    assert per_connection < 64 * 1024, f"{per_connection / 1024:.1f} KiB per idle connection"
    assert held_again - held < (held - baseline) / 2 + 4 * 2**20, "memory grew on round 2"
