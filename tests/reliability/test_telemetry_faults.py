"""Telemetry breaks, traffic does not: storage locked or gone, OTLP down, analysis broken.

Each test drives the real proxy with concurrent streaming and non-streaming traffic while a
fault is injected, and checks the four promises of docs/reliability.md:

1. every client got the upstream's answer (the faults are all on the telemetry side);
2. the proxy stayed responsive (p99 of a concurrent /health probe under 500 ms);
3. spans stored = requests answered - drops that were counted on /metrics;
4. memory comes back near its baseline.

And that the breaker went through open -> half-open -> closed, showing on /health
(``degraded``) and in ``llmtrace_circuit_breaker_state``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.conftest import RSS_TOLERANCE, calls, fault_proxy, settled_rss
from tests.reliability.faults import FaultyEnricher, sqlite_locked, sqlite_replaced
from tests.reliability.load import (
    Books,
    Probe,
    health,
    metric_samples,
    mix,
    run_load,
    stored_spans,
    wait_until,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.otlp_sink import OTLPSink
from tests.support.proxy_harness import RunningProxy


def _breaker(proxy: RunningProxy, subsystem: str) -> str:
    return str(health(proxy.url)["breakers"][subsystem]["state"])


def _gauge(proxy: RunningProxy, subsystem: str) -> dict[str, float]:
    return {labels["state"]: value for name, labels, value in metric_samples(proxy.url)
            if name == "llmtrace_circuit_breaker_state" and labels["subsystem"] == subsystem}


def _settle(proxy: RunningProxy, sent: int) -> Books:
    """Wait until every request has ended its span, flush the pipeline, read the books."""
    wait_until(lambda: Books.read(proxy.url).requests >= sent, what=f"{sent} spans ended")
    proxy.telemetry.tracer_provider.force_flush(10_000)
    return Books.read(proxy.url)


def _recover(proxy: RunningProxy, subsystem: str, sent: list[int]) -> None:
    """Keep a trickle of traffic (the probes need spans) until the breaker has closed."""

    def closed() -> bool:
        report = run_load(proxy.url, mix(8), concurrency=4)
        report.assert_all_answered()
        sent[0] += len(report.outcomes)
        proxy.telemetry.tracer_provider.force_flush(10_000)
        return _breaker(proxy, subsystem) == "closed"

    wait_until(closed, timeout_s=30, what=f"breaker {subsystem} to close")


def _fault_round(proxy: RunningProxy, subsystem: str, inject: Callable[[], object],
                 sent: list[int]) -> Probe:
    """Traffic with the fault in place until the breaker opens, more while it is open."""
    with Probe(proxy.port) as probe:
        def opened() -> bool:
            report = run_load(proxy.url, mix(calls(60), disconnect_every=9), concurrency=16)
            report.assert_all_answered()
            sent[0] += len(report.outcomes)
            return _breaker(proxy, subsystem) == "open"

        wait_until(opened, timeout_s=30, what=f"breaker {subsystem} to open")
        # Open, or half-open and probing (the fault is still there): never closed.
        states = _gauge(proxy, subsystem)
        assert set(states) == {"closed", "open", "half_open"}
        assert sum(states.values()) == 1 and states["closed"] == 0
        assert health(proxy.url)["status"] == "degraded"
        report = run_load(proxy.url, mix(calls(120), disconnect_every=9), concurrency=16)
        report.assert_all_answered()  # while open: a pure pass-through for that subsystem
        sent[0] += len(report.outcomes)
    inject()
    return probe


def _warm_up(proxy: RunningProxy, sent: list[int]) -> int:
    for _ in range(2):
        report = run_load(proxy.url, mix(calls(100)), concurrency=16)
        report.assert_all_answered()
        sent[0] += len(report.outcomes)
    proxy.telemetry.tracer_provider.force_flush(10_000)
    return settled_rss()


def test_sqlite_locked_by_another_process(upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    with fault_proxy(upstream.url, tmp_path) as proxy:
        sent = [0]
        baseline = _warm_up(proxy, sent)
        with sqlite_locked(db):
            probe = _fault_round(proxy, "export.sqlite", lambda: None, sent)
        _recover(proxy, "export.sqlite", sent)
        books = _settle(proxy, sent[0])
        assert books.requests == sent[0]
        assert books.dropped("export.sqlite", "export_failed") > 0
        assert books.dropped("export.sqlite", "circuit_open") > 0
        assert stored_spans(db) == books.expected_in("sqlite")
        probe.assert_responsive()
        assert "degraded" in probe.statuses
        assert health(proxy.url)["status"] == "healthy"
        assert settled_rss() - baseline < RSS_TOLERANCE


def test_sqlite_file_replaced_by_something_unwritable(upstream: FakeUpstream,
                                                      tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    with fault_proxy(upstream.url, tmp_path) as proxy:
        sent = [0]
        baseline = _warm_up(proxy, sent)
        with sqlite_replaced(db):
            probe = _fault_round(proxy, "export.sqlite", lambda: None, sent)
            snapshot = health(proxy.url)["breakers"]["export.sqlite"]
            assert snapshot["times_opened"] >= 1
            assert health(proxy.url)["components"]["exporter.sqlite"]["state"] == "failing"
        _recover(proxy, "export.sqlite", sent)
        books = _settle(proxy, sent[0])
        assert books.dropped("export.sqlite", "export_failed") > 0
        assert stored_spans(db) == books.expected_in("sqlite")
        probe.assert_responsive()
        assert settled_rss() - baseline < RSS_TOLERANCE


def test_otlp_endpoint_down_then_back(upstream: FakeUpstream, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      free_port: int) -> None:
    # The gRPC exporter retries for its whole timeout (10 s by default) before it reports a
    # failure; the standard variable shortens that so the breaker sees failures quickly.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    endpoint = f"http://127.0.0.1:{free_port}"
    sink = OTLPSink(grpc_port=free_port).start()
    try:
        with fault_proxy(upstream.url, tmp_path, otlp_endpoint=endpoint) as proxy:
            sent = [0]
            baseline = _warm_up(proxy, sent)
            wait_until(lambda: len(sink.spans()) >= sent[0], what="warm-up spans at the sink")
            sink.stop()  # down: connections refused
            probe = _fault_round(proxy, "export.otlp", sink.start, sent)  # then back
            _recover(proxy, "export.otlp", sent)
            books = _settle(proxy, sent[0])
            assert books.dropped("export.otlp", "export_failed") > 0
            assert books.dropped("export.otlp", "circuit_open") > 0
            received = {(s.trace_id_hex, s.span_id_hex) for s in sink.spans()}
            assert len(received) == books.expected_in("otlp")
            # The other exporter never noticed.
            assert books.dropped("export.sqlite") == 0
            assert stored_spans(tmp_path / "spans.db") == sent[0]
            probe.assert_responsive()
            assert settled_rss() - baseline < RSS_TOLERANCE
    finally:
        sink.stop()


@pytest.mark.parametrize("mode", ["raise", "slow"])
def test_analysis_processor_that_raises_or_takes_a_second(
        upstream: FakeUpstream, tmp_path: Path, mode: str) -> None:
    faulty = FaultyEnricher(f"fault_{mode}")
    stage = f"analysis.fault_{mode}"
    # A small analysis queue, so the one-second processor also overflows it: those drops
    # must be counted too.
    with fault_proxy(upstream.url, tmp_path, enrichers=[faulty],
                     analysis_queue_size=200) as proxy:
        sent = [0]
        baseline = _warm_up(proxy, sent)
        faulty.mode = mode

        def heal() -> None:
            faulty.mode = "ok"

        probe = _fault_round(proxy, stage, heal, sent)
        # Bypassed while open: two failures opened it, then one failed probe per re-opening
        # (and perhaps one probe in progress when it was healed). The spans still queued when
        # it was healed are analysed normally afterwards; they are not faulted calls.
        opened = int(health(proxy.url)["breakers"][stage]["times_opened"])
        assert 2 <= faulty.faulted_calls <= 2 + (opened - 1) + 1
        _recover(proxy, stage, sent)
        books = _settle(proxy, sent[0])
        assert books.dropped(f"fault_{mode}", "circuit_open") > 0
        if mode == "raise":
            assert books.dropped(f"fault_{mode}", "processor_error") >= 2
        # Skipped analysis is not lost data: the spans are stored, marked as unanalysed.
        assert stored_spans(tmp_path / "spans.db") == books.expected_in("sqlite")
        skipped = [s for s in proxy.memory.get_finished_spans()
                   if f"fault_{mode}" in (s.attributes or {}).get("llmtrace.analysis.skipped", ())]
        assert len(skipped) == books.dropped(f"fault_{mode}", "circuit_open")
        probe.assert_responsive()
        assert settled_rss() - baseline < RSS_TOLERANCE


def test_an_analysis_step_that_never_returns(upstream: FakeUpstream, tmp_path: Path) -> None:
    faulty = FaultyEnricher("fault_hang")
    stage = "analysis.fault_hang"
    with fault_proxy(upstream.url, tmp_path, enrichers=[faulty],
                     analysis_stall_timeout_s=0.5) as proxy:
        sent = [0]
        baseline = _warm_up(proxy, sent)
        faulty.mode = "hang"
        try:
            probe = _fault_round(proxy, stage, lambda: None, sent)
        finally:
            faulty.mode = "ok"
            faulty.unhang.set()  # the stuck call returns; its thread exits
        _recover(proxy, stage, sent)
        books = _settle(proxy, sent[0])
        # One thread got stuck, once: the stage is skipped while that call is out, so the
        # new worker never calls it, and the breaker's probes wait for it too.
        assert books.dropped("analysis", "stalled") == 1 == faulty.faulted_calls
        assert books.dropped("fault_hang", "stage_stuck") > 0
        # The stalled span is counted as dropped but was passed on once the call returned.
        assert stored_spans(tmp_path / "spans.db") == books.expected_in("sqlite") + 1
        skipped = [s for s in proxy.memory.get_finished_spans()
                   if "fault_hang" in (s.attributes or {}).get("llmtrace.analysis.skipped", ())]
        assert len(skipped) == (books.dropped("fault_hang", "stage_stuck")
                                + books.dropped("fault_hang", "circuit_open"))
        probe.assert_responsive()
        assert settled_rss() - baseline < RSS_TOLERANCE
