"""bench/report.py and report_cpu.py: the tables ``make bench`` prints, from a run's results.

The results are the JSON shape ``bench/run.py`` saves (a direct, baseline and two proxy
targets); each test changes the figure one verdict depends on and reads the rendered row.
"""

from __future__ import annotations

from typing import Any

from tests.bench.bench_modules import bench_module

report = bench_module("report")
report_cpu = bench_module("report_cpu")


def _phase(rps: float, p50: float, p99: float, us_per_request: float,
           processes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"requests_per_s": rps, "p50_ms": p50, "p99_ms": p99,
            "cpu": {"us_per_request": us_per_request, "requests_per_cpu_s": 1e6 / us_per_request,
                    "tree_rss_mb": 90.0, "gone": [],
                    "processes": processes or [{"pid": 1, "role": "command", "cpu_s": 1.0}]}}


def _run(*, proxy_rps: float = 1600.0, w2_cpu: float = 840.0,
         baseline: bool = True) -> dict[str, Any]:
    spans = {"stored": 1000, "sent": 1000, "completed": 990}
    w2_processes = [{"pid": 10, "role": "command", "cpu_s": 1.0},
                    {"pid": 11, "role": "child", "cpu_s": 2.0, "connections": 12},
                    {"pid": 12, "role": "child", "cpu_s": 1.0, "connections": 20}]
    phases = {
        "direct_c32": _phase(40_000, 0.5, 2.0, 8), "direct_c1": _phase(20_000, 0.02, 0.1, 9),
        "proxy_c32": _phase(proxy_rps, 18.0, 40.0, 800),
        "proxy_c1": _phase(900, 0.7, 2.0, 950),
        "proxy_w2_c32": _phase(2400, 12.0, 30.0, w2_cpu, w2_processes),
        "proxy_w2_c1": _phase(1000, 0.7, 2.0, 990),
    }
    ttfc = {"direct": {"p50": 0.02, "p99": 0.05}, "proxy": {"p50": 0.9, "p99": 2.0},
            "proxy_w2": {"p50": 0.9, "p99": 2.0}}
    if baseline:
        phases |= {"baseline_c32": _phase(3000, 9.0, 20.0, 300),
                   "baseline_c1": _phase(2500, 0.4, 1.0, 350)}
        ttfc["baseline"] = {"not_measured": "reads the whole response"}
    return {"connections": 32, "phases": phases, "ttfc": ttfc, "primary_proxy": "proxy",
            "rss": [{"after_requests": 500, "rss_mb": 80.0}, {"after_requests": 1000,
                                                               "rss_mb": 81.0}],
            "proxies": {"proxy": {"workers": 1, "spans": spans},
                        "proxy_w2": {"workers": 2, "spans": dict(spans)}}}


def _main_row(run: dict[str, Any], metric: str) -> Any:
    return next(row for row in report.table_rows(run) if row.metric.startswith(metric))


def _worker_row(run: dict[str, Any], target: str) -> Any:
    return next(row for row in report_cpu.worker_rows(run) if row.target == target)


def test_proxy_throughput_is_judged_against_the_baseline_relay_of_the_same_run() -> None:
    passing = _main_row(_run(proxy_rps=1600), "Proxy / baseline relay throughput")
    assert (passing.delta, passing.verdict) == ("53.3%", "PASS")
    failing = _main_row(_run(proxy_rps=1200), "Proxy / baseline relay throughput")
    assert (failing.delta, failing.verdict) == ("40.0%", "**FAIL**")
    throughput = _main_row(_run(proxy_rps=1200), "Throughput, 32 conns")
    assert throughput.baseline == "3,000 req/s"
    assert throughput.delta == "40.0% of baseline, 3.0% of direct"


def test_baseline_column_beside_direct_and_proxy() -> None:
    run = _run()
    latency = _main_row(run, "Latency p50, 1 conn")
    assert (latency.direct, latency.baseline, latency.proxy) == ("0.020 ms", "0.400 ms",
                                                                 "0.700 ms")
    assert latency.delta == "+0.680 ms (baseline +0.380 ms)"
    assert latency.verdict == "PASS"  # added 0.68 ms <= 0.8 ms
    assert _main_row(run, "Streaming time to first chunk p50").baseline == (
        "n/a: not relayed chunk by chunk")
    cpu = _main_row(run, "CPU per request")
    assert (cpu.direct, cpu.baseline, cpu.proxy, cpu.delta) == ("8 µs", "300 µs", "800 µs",
                                                                "2.7x baseline")
    assert "| Baseline relay |" in report.render_table(run)


def test_a_run_without_the_baseline_leaves_its_cells_pending() -> None:
    run = _run(baseline=False)
    share = _main_row(run, "Proxy / baseline relay throughput")
    assert share.verdict == report.PENDING
    assert _main_row(run, "Latency p99, 32 conns").baseline == report.PENDING
    assert [row.target for row in report_cpu.worker_rows(run)] == [
        "nginx (direct)", "proxy, 1 worker", "proxy, 2 workers"]


def test_cpu_per_request_with_two_workers_may_rise_by_ten_percent() -> None:
    within = _worker_row(_run(w2_cpu=840.0), "proxy, 2 workers")
    assert within.cpu_vs_one == "+5.0% PASS"
    assert within.rps_loaded == "2,400 (x1.50)"
    assert within.requests_per_cpu_s == "1,190"
    above = _worker_row(_run(w2_cpu=900.0), "proxy, 2 workers")
    assert above.cpu_vs_one == "+12.5% **FAIL**"
    assert _worker_row(_run(), "proxy, 1 worker").cpu_vs_one == "reference"


def test_cpu_split_and_spans_per_worker_count() -> None:
    run = _run()
    run["proxies"]["proxy_w2"]["spans"]["stored"] = 900  # fewer than completed: lost spans
    row = _worker_row(run, "proxy, 2 workers")
    assert row.cpu_by_process == "parent 25% · children 50% (12 conns) / 25% (20 conns)"
    assert row.spans == "900 / 1,000 **FAIL**"
    assert _worker_row(run, "proxy, 1 worker").spans == "1,000 / 1,000 PASS"
    table = report_cpu.render_cpu_table(run)
    assert len(table.splitlines()) == 6  # header, rule, nginx, baseline, 1 and 2 workers
