"""Upstream faults under concurrent load: 5xx/429 (with Retry-After), resets mid-stream,
hangs, clients hanging up mid-stream; and the one retry the proxy allows itself (a
connection that failed before the request was sent)."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
from opentelemetry.trace import StatusCode

from llmtrace_processors.attributes import LLMTRACE_UPSTREAM_CONNECT_RETRIES
from tests.reliability.conftest import RSS_TOLERANCE, calls, fault_proxy, settled_rss
from tests.reliability.load import (
    Books,
    Probe,
    expected_kinds,
    mix,
    run_load,
    stored_spans,
    wait_until,
)
from tests.support.fake_upstream import (
    RETRY_AFTER_HEADER,
    SCENARIO_HEADER,
    FakeUpstream,
    chat_completion,
)
from tests.support.proxy_harness import running_proxy

MESSAGES = [{"role": "user", "content": "hi"}]
FAULTS = ("error-429", "error-500", "error-503", "reset-midstream", "hang", "malformed-sse")


def test_upstream_faults_under_load(upstream: FakeUpstream, tmp_path: Path) -> None:
    with fault_proxy(upstream.url, tmp_path) as proxy:
        warm = run_load(proxy.url, mix(calls(200)), concurrency=16)
        warm.assert_all_answered()
        baseline = settled_rss()
        load = mix(calls(600), faults=FAULTS, fault_every=3, disconnect_every=7)
        with Probe(proxy.port) as probe:
            report = run_load(proxy.url, load, concurrency=24)
        report.assert_clear(expected_kinds)
        kinds = report.kinds()
        assert kinds["upstream_error"] and kinds["proxy_error"] and kinds["broken_stream"]
        assert kinds["client_abort"] and kinds["answer"]
        probe.assert_responsive()
        sent = len(warm.outcomes) + len(report.outcomes)
        wait_until(lambda: Books.read(proxy.url).requests >= sent, what="every span ended")
        assert proxy.server.in_flight.count == 0
        proxy.telemetry.tracer_provider.force_flush(10_000)
        books = Books.read(proxy.url)
        assert books.requests == sent and not books.drops
        assert stored_spans(tmp_path / "spans.db") == sent
        # Each failure is on its span, as the client saw it.
        errors = [(s.attributes or {}).get("error.type") for s in proxy.memory.get_finished_spans()
                  if s.status.status_code is StatusCode.ERROR]
        assert errors.count("client_disconnected") == kinds["client_abort"]
        assert errors.count("upstream_read_timeout") == sum(
            1 for o in report.outcomes if o.call.scenario == "hang")
        assert settled_rss() - baseline < RSS_TOLERANCE


@pytest.mark.parametrize(("scenario", "status", "retry_after"), [
    ("error-429", 429, "7"),
    ("error-503", 503, "120"),
    ("error-503", 503, "Wed, 21 Oct 2026 07:28:00 GMT"),
])
def test_retry_after_is_relayed_unchanged_and_the_proxy_does_not_retry(
        upstream: FakeUpstream, tmp_path: Path, scenario: str, status: int,
        retry_after: str) -> None:
    with running_proxy(upstream.url, tmp_path, retry_connect_failures=3) as proxy:
        upstream.clear()
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0,
                               default_headers={SCENARIO_HEADER: scenario,
                                                RETRY_AFTER_HEADER: retry_after})
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert caught.value.status_code == status
        assert caught.value.response.headers["retry-after"] == retry_after
        assert len(upstream.requests) == 1  # relayed, not retried by the proxy


# -- the connect retry -----------------------------------------------------------------


class _CannedUpstream(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps(chat_completion(json.loads(body), "ok")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


class _LateUpstream:
    """A port that refuses connections (bound, not listening) until :meth:`come_up`."""

    def __init__(self) -> None:
        self.server = http.server.HTTPServer(("127.0.0.1", 0), _CannedUpstream,
                                             bind_and_activate=False)
        self.server.server_bind()  # bound: connecting is refused until it listens
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def come_up(self) -> None:
        self.server.server_activate()
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


class _OnRetry(logging.Handler):
    """Brings the upstream up the moment the proxy decides to retry: the first connect was
    refused for real, the retry connects for real."""

    def __init__(self, late: _LateUpstream) -> None:
        super().__init__(logging.INFO)
        self.late = late
        self.retries: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "; retry " in message:
            self.retries.append(message)
            if len(self.retries) == 1:
                self.late.come_up()


@contextmanager
def _retry_log(late: _LateUpstream) -> Iterator[_OnRetry]:
    logger = logging.getLogger("llmtrace_otel.proxy.upstream")
    handler = _OnRetry(late)
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def test_refused_connection_is_retried_once_and_succeeds(tmp_path: Path) -> None:
    late = _LateUpstream()
    try:
        with _retry_log(late) as retries, running_proxy(f"http://127.0.0.1:{late.port}",
                                                        tmp_path) as proxy:
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert reply.choices[0].message.content
            assert len(retries.retries) == 1
            span = proxy.only_span()
            assert (span.attributes or {})[LLMTRACE_UPSTREAM_CONNECT_RETRIES] == 1
            assert span.status.status_code is not StatusCode.ERROR
    finally:
        late.close()


@pytest.mark.parametrize("retries", [0, 2])
def test_unreachable_upstream_is_retried_as_configured_then_502(
        tmp_path: Path, free_port: int, retries: int) -> None:
    with running_proxy(f"http://127.0.0.1:{free_port}", tmp_path,
                       retry_connect_failures=retries) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert caught.value.status_code == 502
        assert caught.value.body["code"] == "upstream_unreachable"  # type: ignore[index]
        attributes = proxy.only_span().attributes or {}
        assert attributes.get(LLMTRACE_UPSTREAM_CONNECT_RETRIES) == (retries or None)


def test_a_request_the_upstream_received_is_never_retried(tmp_path: Path) -> None:
    """The upstream reads the whole request, then resets the connection: it may have
    processed the call, so the proxy answers 502 instead of sending it again."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            accepted.append(body)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST after the request was read

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with running_proxy(f"http://127.0.0.1:{port}", tmp_path,
                           retry_connect_failures=5) as proxy:
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
            with pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert caught.value.status_code == 502
            assert len(accepted) == 1
            assert LLMTRACE_UPSTREAM_CONNECT_RETRIES not in (proxy.only_span().attributes or {})
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        listener.close()
        thread.join(5)
