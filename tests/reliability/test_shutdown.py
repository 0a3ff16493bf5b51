"""Graceful shutdown with streams in flight: drained up to the deadline, every exporter
flushed, nothing stored twice or lost; in-process and as a real process getting SIGTERM."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.load import (
    Call,
    LoadReport,
    health,
    mix,
    run_load,
    stored_spans,
    wait_until,
)
from tests.reliability.process import ProxyProcess
from tests.support.fake_upstream import FakeUpstream
from tests.support.otlp_sink import OTLPSink
from tests.support.proxy_harness import running_proxy


class _Background:
    """``run_load`` on a thread, so the test can shut the proxy down under it."""

    def __init__(self, url: str, calls: list[Call], concurrency: int) -> None:
        self.report: LoadReport | None = None
        self._thread = threading.Thread(
            target=lambda: setattr(self, "report", run_load(url, calls,
                                                            concurrency=concurrency)),
            daemon=True)
        self._thread.start()

    def join(self, timeout_s: float = 60.0) -> LoadReport:
        self._thread.join(timeout_s)
        assert self.report is not None, "the load did not finish"
        return self.report


def _in_flight_calls(streams: int) -> list[Call]:
    # Streams of ~0.8 s (7 events, 0.12 s apart) and non-streamed calls of ~0.5 s.
    return [Call("slow-stream", True, index % 3 == 0, delay_s=0.12) for index in range(streams)
            ] + [Call("slow", False, delay_s=0.5) for _ in range(streams // 2)]


def test_stop_drains_streams_in_flight_and_flushes_every_exporter(
        upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")
    db = tmp_path / "spans.db"
    with OTLPSink() as sink, running_proxy(upstream.url, tmp_path,
                                           otlp_endpoint=f"http://{sink.grpc_endpoint}",
                                           shutdown_timeout_s=20) as proxy:
        run_load(proxy.url, mix(40), concurrency=8).assert_all_answered()
        calls = _in_flight_calls(24)
        load = _Background(proxy.url, calls, concurrency=len(calls))
        wait_until(lambda: proxy.server.in_flight.count == len(calls), what="all calls in flight")
        stopped = asyncio.run_coroutine_threadsafe(proxy.server.stop(20), proxy.loop)
        report = load.join()
        stopped.result(30)
        report.assert_all_answered()  # every stream in flight ran to its end
        with pytest.raises(OSError):  # and nothing new is accepted
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
        total = 40 + len(calls)
        assert stored_spans(db) == total  # flushed by stop, before it returned
        assert len({(s.trace_id_hex, s.span_id_hex) for s in sink.spans()}) == total


def test_stop_cuts_calls_off_at_the_deadline_and_still_records_them(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    with running_proxy(upstream.url, tmp_path, read_timeout_s=60) as proxy:
        calls = [Call("hang", stream) for stream in (True, False) * 4]
        load = _Background(proxy.url, calls, concurrency=len(calls))
        wait_until(lambda: proxy.server.in_flight.count == len(calls), what="all calls in flight")
        started = time.monotonic()
        asyncio.run_coroutine_threadsafe(proxy.server.stop(0.5), proxy.loop).result(30)
        took = time.monotonic() - started
        report = load.join()
        # The clients were not left hanging: their connection was closed at the deadline.
        assert all(o.kind == "unclear" and "Disconnected" in o.detail for o in report.outcomes
                   ), report.outcomes[:2]
        assert took < 20, f"stop took {took:.1f} s with a 0.5 s deadline"
        assert proxy.server.in_flight.count == 0
        assert stored_spans(db) == len(calls)
        errors = {(s.attributes or {}).get("error.type") for s in proxy.memory.get_finished_spans()}
        assert errors == {"client_disconnected"}


def test_sigterm_drains_streams_then_exits_cleanly(upstream: FakeUpstream,
                                                  tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    with ProxyProcess(upstream.url, db) as proxy:
        run_load(proxy.url, mix(30), concurrency=6).assert_all_answered()
        calls = _in_flight_calls(16)
        load = _Background(proxy.url, calls, concurrency=len(calls))
        wait_until(lambda: health(proxy.url)["in_flight"] == len(calls),
                   what="all calls in flight")
        status = proxy.terminate()
        report = load.join()
        assert status == 0, proxy.output()
    report.assert_all_answered()
    assert stored_spans(db) == 30 + len(calls)
