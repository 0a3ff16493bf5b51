"""The receiver is bounded and guarded like the proxy (issue: trust, items 8 and 12).

Reproduced as the review did: no token by default on any address, no body timeout and no
connection cap on OTLP/HTTP (a body trickled at 1 byte per 10 s stayed open for over 100 s),
and any Host accepted.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from llmtrace_otel.config import ConfigError, load_settings
from tests.receiver.harness import running_collector


@pytest.mark.parametrize("overrides", [
    {"receiver_http_endpoint": "0.0.0.0:4318"},
    {"receiver_grpc_endpoint": "10.1.2.3:4317"},
    {"receiver_on_proxy": True, "host": "0.0.0.0"},
])
def test_a_receiver_beyond_loopback_needs_a_token(overrides: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match="without a token|set receiver.auth_token"):
        load_settings(env={}, overrides=overrides)
    accepted = load_settings(env={}, overrides={**overrides,
                                                "receiver_auth_token": "t" * 16})
    assert accepted.receiver_auth_token == "t" * 16
    assert load_settings(env={}, overrides={**overrides,
                                            "receiver_allow_unauthenticated": True})


def test_a_short_receiver_token_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"receiver.auth_token \(flag --receiver-auth-token\)"
                                          r": must be at least 16 characters"):
        load_settings(env={}, overrides={"receiver_auth_token": "short"})


def test_a_trickled_body_is_cut_at_the_body_timeout(tmp_path: Path) -> None:
    with running_collector(tmp_path, body_timeout_s=1.0) as collector:
        port = collector.server.http_port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n")
            started = time.monotonic()
            closed = False
            while time.monotonic() - started < 20:
                sock.sendall(b"\x00")
                try:
                    sock.settimeout(0.5)
                    if sock.recv(1024) == b"":
                        closed = True
                        break
                except TimeoutError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
            elapsed = time.monotonic() - started
        assert closed and elapsed < 10, f"still open after {elapsed:.1f} s"


def test_the_collector_answers_only_loopback_host_names(tmp_path: Path) -> None:
    with running_collector(tmp_path) as collector:
        for url in (collector.http_url, collector.ops_url):
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: attacker.example\r\n"
                             b"Content-Type: application/x-protobuf\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 403 "), answer[:60]
