"""Soak: sustained mixed traffic while faults come and go, and an overload that the pipeline
must shed (counted) rather than buffer. Reduced size in ``make test``; ``make soak``
(``RELIABILITY_FULL=1``) runs it for minutes. With ``RELIABILITY_REPORT=FILE`` the figures
(load held, faults survived, data lost) are written there as JSON (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import pytest

from tests.reliability.conftest import FAST_BREAKERS, RSS_TOLERANCE, settled_rss
from tests.reliability.faults import FaultyEnricher, sqlite_locked, sqlite_replaced
from tests.reliability.load import (
    FULL,
    Books,
    Probe,
    expected_kinds,
    health,
    mix,
    rss_bytes,
    run_load,
    stored_spans,
    wait_until,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.otlp_sink import OTLPSink
from tests.support.proxy_harness import RunningProxy, running_proxy

FAULTS = ("error-429", "error-500", "error-503", "reset-midstream", "hang", "malformed-sse")
#: Rounds of traffic (150 calls each) a fault phase lasts once the fault was noticed.
PHASE_ROUNDS = 10 if FULL else 1


def _report(name: str, figures: dict[str, object]) -> None:
    print(f"\n{name}: {json.dumps(figures, sort_keys=True)}")
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        path = Path(target)
        existing = json.loads(path.read_text()) if path.exists() else {}
        existing[name] = figures
        path.write_text(json.dumps(existing, indent=2, sort_keys=True))


class _Traffic:
    """Rounds of mixed traffic on a thread until stopped. Outcomes are checked and tallied
    per round, not kept: the test's own memory must not pass for the proxy's."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.rounds = 0
        self.sent = 0
        self.kinds: Counter[str] = Counter()
        self.wrong: list[object] = []
        self.peak_rss = 0
        self._url = url
        self._concurrency = concurrency
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(120)

    def _run(self) -> None:
        while not self._stop.is_set():
            report = run_load(self._url, mix(150, faults=FAULTS, fault_every=4,
                                             disconnect_every=9), concurrency=self._concurrency)
            self.wrong.extend(o for o in report.outcomes if o.kind not in expected_kinds(o.call))
            self.kinds.update(report.kinds())
            self.sent += len(report.outcomes)
            self.rounds += 1
            self.peak_rss = max(self.peak_rss, rss_bytes())


def _phases(db: Path, enricher: FaultyEnricher, sink: OTLPSink
            ) -> list[tuple[str, str | None, Callable[[], AbstractContextManager[object]]]]:
    """(name, breaker that must open, fault) of one round of the soak."""
    @contextmanager
    def analysis(mode: str) -> Iterator[None]:
        enricher.mode = mode
        try:
            yield
        finally:
            enricher.mode = "ok"

    @contextmanager
    def otlp_down() -> Iterator[None]:
        sink.stop()
        try:
            yield
        finally:
            sink.start()

    return [
        ("calm", None, nullcontext),
        ("sqlite_locked", "export.sqlite", lambda: sqlite_locked(db)),
        ("analysis_raises", "analysis.soak", lambda: analysis("raise")),
        ("sqlite_replaced", "export.sqlite", lambda: sqlite_replaced(db)),
        ("otlp_down", "export.otlp", otlp_down),
        ("analysis_slow", "analysis.soak", lambda: analysis("slow")),
        ("calm", None, nullcontext),
    ]


def _hold(proxy: RunningProxy, traffic: _Traffic, name: str, breaker: str | None) -> None:
    """Keep the fault until its breaker has left ``closed``, then ``PHASE_ROUNDS`` more
    rounds of traffic."""
    if breaker is not None:
        wait_until(lambda: health(proxy.url)["breakers"][breaker]["state"] != "closed",
                   timeout_s=60, what=f"{name}: breaker {breaker} to open")
    rounds = traffic.rounds
    wait_until(lambda: traffic.rounds >= rounds + PHASE_ROUNDS, timeout_s=120,
               what=f"{name}: traffic rounds")


def _ids(sink: OTLPSink) -> set[tuple[str, str]]:
    return {(span.trace_id_hex, span.span_id_hex) for span in sink.take_spans()}


def _all_closed(proxy: RunningProxy) -> bool:
    run_load(proxy.url, mix(8), concurrency=4).assert_all_answered()
    proxy.telemetry.tracer_provider.force_flush(10_000)
    return all(b["state"] == "closed" for b in health(proxy.url)["breakers"].values())


@pytest.mark.timeout(900 if FULL else 120)
def test_soak_with_faults_coming_and_going(upstream: FakeUpstream, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           free_port: int) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    db = tmp_path / "spans.db"
    enricher = FaultyEnricher("soak")
    enricher.slow_s = 0.3
    sink = OTLPSink(grpc_port=free_port).start()
    try:
        with running_proxy(upstream.url, tmp_path, enrichers=[enricher],
                           otlp_endpoint=f"http://127.0.0.1:{free_port}",
                           **FAST_BREAKERS) as proxy:
            warm = run_load(proxy.url, mix(300), concurrency=16)
            warm.assert_all_answered()
            upstream.clear()
            baseline = settled_rss()
            survived: list[str] = []
            received: set[tuple[str, str]] = set()
            started = time.monotonic()
            rounds = 3 if FULL else 1
            with Probe(proxy.port) as probe, _Traffic(proxy.url, concurrency=24) as traffic:
                for _ in range(rounds):
                    for name, breaker, fault in _phases(db, enricher, sink):
                        with fault():
                            _hold(proxy, traffic, name, breaker)
                        survived.append(name)
                        # What the test itself keeps must not pass for the proxy's memory.
                        received.update(_ids(sink))
                        proxy.memory.clear()
                        upstream.clear()
            elapsed = time.monotonic() - started
            assert not traffic.wrong, f"{len(traffic.wrong)} unclear answers: {traffic.wrong[:3]}"
            wait_until(lambda: _all_closed(proxy), timeout_s=60, what="every breaker closed")
            sent = len(warm.outcomes) + traffic.sent
            wait_until(lambda: Books.read(proxy.url).requests >= sent, what="every span ended")
            proxy.telemetry.tracer_provider.force_flush(10_000)
            books = Books.read(proxy.url)
            extra = int(books.requests) - sent  # the recovery trickle
            stored = stored_spans(db)
            received.update(_ids(sink))
            assert stored == books.expected_in("sqlite")
            assert len(received) == books.expected_in("otlp")
            probe.assert_responsive()
            end_rss = settled_rss()
            figures = {
                "requests": int(books.requests), "load_requests": traffic.sent,
                "recovery_requests": extra, "seconds": round(elapsed, 1),
                "requests_per_s": round(traffic.sent / elapsed, 1),
                "outcomes": dict(traffic.kinds), "faults_survived": survived,
                "probe_p50_ms": round(probe.quantile(0.5) * 1000, 1),
                "probe_p99_ms": round(probe.quantile(0.99) * 1000, 1),
                "probe_max_ms": round(max(probe.latencies) * 1000, 1),
                "probes": len(probe.latencies),
                "rss_baseline_mib": round(baseline / 2**20, 1),
                "rss_peak_mib": round(traffic.peak_rss / 2**20, 1),
                "rss_end_mib": round(end_rss / 2**20, 1),
                "stored_sqlite": stored, "received_otlp": len(received),
                "drops": {f"{stage}/{reason}": int(value)
                          for (stage, reason), value in sorted(books.drops.items())},
            }
            _report("soak", figures)
            assert end_rss - baseline < RSS_TOLERANCE
    finally:
        sink.stop()


@pytest.mark.timeout(600 if FULL else 120)
def test_overload_is_shed_and_counted_not_buffered(upstream: FakeUpstream,
                                                   tmp_path: Path) -> None:
    """Analysis slower than the traffic (10 ms per span, under the slow-call bound, so no
    breaker helps): the bounded queue drops the excess, counted; memory stays flat."""
    enricher = FaultyEnricher("overload")
    enricher.mode, enricher.slow_s = "slow", 0.01
    with running_proxy(upstream.url, tmp_path, enrichers=[enricher],
                       analysis_queue_size=100) as proxy:
        run_load(proxy.url, mix(200), concurrency=16).assert_all_answered()
        baseline = settled_rss()
        total = 200
        peak = 0
        with Probe(proxy.port) as probe:
            for _ in range(10 if FULL else 3):
                report = run_load(proxy.url, mix(600), concurrency=32)
                report.assert_all_answered()
                total += len(report.outcomes)
                peak = max(peak, rss_bytes())
        enricher.mode = "ok"
        wait_until(lambda: Books.read(proxy.url).requests >= total, what="every span ended")
        proxy.telemetry.tracer_provider.force_flush(30_000)
        books = Books.read(proxy.url)
        dropped = books.dropped("analysis", "queue_full")
        assert dropped > 0
        assert stored_spans(tmp_path / "spans.db") == books.expected_in("sqlite")
        assert health(proxy.url)["breakers"]["analysis.overload"]["state"] == "closed"
        probe.assert_responsive()
        end = settled_rss()
        _report("overload", {
            "requests": total, "dropped_queue_full": dropped,
            "drops": {f"{stage}/{reason}": int(value)
                      for (stage, reason), value in sorted(books.drops.items())},
            "stored_sqlite": stored_spans(tmp_path / "spans.db"),
            "probe_p99_ms": round(probe.quantile(0.99) * 1000, 1),
            "rss_baseline_mib": round(baseline / 2**20, 1), "rss_peak_mib": round(peak / 2**20, 1),
            "rss_end_mib": round(end / 2**20, 1),
        })
        assert end - baseline < RSS_TOLERANCE
