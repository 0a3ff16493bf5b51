"""Attacks on the proxy's port that are answered before a body is read (issue: trust).

Each test reproduces what a security review did against the running proxy: a browser page
that rebinds its DNS name to 127.0.0.1, bodies sent to routes that take none, bodies held
open to exhaust memory, dot segments that a relay would pass on.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import RunningProxy, running_proxy

ADMIN = "admin-token-0123456789"


def _raw(port: int, data: bytes, *, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _get(url: str, host: str | None = None, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Host": host} if host else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_rebound_host_name_reads_nothing(upstream: FakeUpstream, tmp_path: Path) -> None:
    """DNS rebinding: a page on attacker.example, now resolving to 127.0.0.1, asks the
    proxy for its captured prompts. The browser sends Host: attacker.example."""
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        for path in ("/api/v1/traces", "/ui/", "/api/v1/budgets", "/metrics",
                     "/v1/chat/completions"):
            status, body = _get(proxy.url + path, host="attacker.example")
            assert status == 403, path
            assert json.loads(body)["error"]["code"] == "host_not_allowed"
        assert upstream.requests == []
        for host in ("localhost", f"localhost:{proxy.port}", f"127.0.0.1:{proxy.port}",
                     f"[::1]:{proxy.port}"):
            assert _get(proxy.url + "/api/v1/traces", host=host)[0] == 200, host


def test_allowed_hosts_names_the_hosts_answered(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, allowed_hosts="proxy.internal,*.corp") as proxy:
        assert _get(proxy.url + "/health", host="proxy.internal:8080")[0] == 200
        assert _get(proxy.url + "/health", host="llm.corp")[0] == 200
        assert _get(proxy.url + "/health", host="127.0.0.1")[0] == 403  # not in the list


def test_metrics_need_the_admin_token_when_one_is_set(upstream: FakeUpstream,
                                                      tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, api_admin_token=ADMIN) as proxy:
        status, body = _get(proxy.url + "/metrics")
        assert status == 401
        assert json.loads(body)["error"]["type"] == "authentication_error"
        assert _get(proxy.url + "/metrics", token="wrong-token-0123456789")[0] == 401
        status, body = _get(proxy.url + "/metrics", token=ADMIN)
        assert status == 200 and b"llmtrace_" in body
        assert _get(proxy.url + "/health")[0] == 200  # probes need no token


def test_a_body_sent_to_health_is_refused_before_it_is_read(upstream: FakeUpstream,
                                                            tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy:
        started = time.monotonic()
        # 60 MiB announced, none sent: answered at once, nothing buffered.
        answer = _raw(proxy.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Content-Length: 62914560\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
        assert time.monotonic() - started < 5
        # A chunked body to the API stops at 64 KiB: Tornado hangs up past the route's limit.
        chunk = b"x" * 32768
        chunked = (b"GET /api/v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n"
                   + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 8 + b"0\r\n\r\n")
        try:
            answer = _raw(proxy.port, chunked)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP/1.1 200"), answer[:80]
        _wait_for_no_body_in_flight(proxy)


def _wait_for_no_body_in_flight(proxy: RunningProxy) -> None:
    deadline = time.monotonic() + 10
    while proxy.server.health()["connections"]["body_bytes_in_flight"]:
        assert time.monotonic() < deadline, "body bytes still counted as in flight"
        time.sleep(0.01)


def test_bodies_in_flight_have_a_budget(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, max_body_bytes=16384,
                       max_inflight_body_bytes=20000) as proxy:
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as held:
            held.sendall(head + b"{" + b" " * 15000)  # 15 KB of 16 KB, then nothing
            deadline = time.monotonic() + 10
            while proxy.server.health()["connections"]["body_bytes_in_flight"] < 15000:
                assert time.monotonic() < deadline, "the held body never arrived"
                time.sleep(0.01)
            answer = _raw(proxy.port, head + b"{" + b" " * 15999)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:80]
            assert b"Retry-After: 1" in answer
            assert b"server.max_inflight_body_bytes" in answer
        _wait_for_no_body_in_flight(proxy)  # the held connection closed: its bytes are free
        body = json.dumps({"model": "gpt-4o-mini",
                           "messages": [{"role": "user", "content": "hi"}]}).encode()
        answer = _raw(proxy.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert answer.startswith(b"HTTP/1.1 200 ")


def test_dot_segments_are_refused_not_relayed(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        for path in (b"/v1/../../admin", b"/v1/%2e%2e/admin", b"/v1/./models", b"/v1/.."):
            answer = _raw(proxy.port, b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      b"Connection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 400 "), (path, answer[:60])
            assert b"invalid_path" in answer
        assert upstream.requests == []
        assert _get(proxy.url + "/v1/models..json")[0] == 404  # relayed: dots inside a segment
        assert [r.path for r in upstream.requests] == ["/v1/models..json"]
