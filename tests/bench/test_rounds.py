"""bench/session.py ``combine_rounds``: a phase's figures from its interleaved rounds.

The machine the bench runs on is shared: one round can fall into a burst of other work. The
table gives the median round's throughput and latency, and CPU per request over all rounds.
"""

from __future__ import annotations

from typing import Any

from tests.bench.bench_modules import bench_module

session = bench_module("session")


def _round(index: int, rps: float, p99: float, requests: int, cpu_s: float,
           worker_pid: int, connections: int) -> dict[str, Any]:
    return {"label": f"proxy_w2_c32_round{index}", "connections": 32, "duration_s": 3.0,
            "requests": requests, "sent": requests + 32, "requests_per_s": rps,
            "p50_ms": p99 / 4, "p75_ms": p99 / 3, "p90_ms": p99 / 2, "p99_ms": p99,
            "non_2xx": 0, "socket_errors": 0, "loadavg_at_end": (float(index), 0.0, 0.0),
            "cpu": {"cpu_s": cpu_s, "us_per_request": cpu_s / requests * 1e6,
                    "tree_rss_mb": 200.0 + index, "gone": [worker_pid] if index == 2 else [],
                    "processes": [
                        {"pid": 1, "role": "command", "cpu_s": cpu_s / 4, "rss_mb": 80.0},
                        {"pid": worker_pid, "role": "child", "cpu_s": cpu_s * 3 / 4,
                         "rss_mb": 60.0, "connections": connections}]}}


def test_a_spoiled_round_does_not_move_the_median_and_cpu_is_summed() -> None:
    rounds = [_round(1, 1000.0, 40.0, 3000, 3.0, 11, 33),
              _round(2, 300.0, 400.0, 900, 1.2, 11, 33),  # a burst of other work
              _round(3, 1100.0, 44.0, 3300, 3.3, 12, 33)]  # worker 11 was restarted as 12
    phase = session.combine_rounds(rounds)
    assert phase["label"] == "proxy_w2_c32"
    assert (phase["requests_per_s"], phase["p99_ms"]) == (1000.0, 44.0)
    assert (phase["requests"], phase["sent"], phase["rounds"]) == (7200, 7296, 3)
    assert phase["cpu"]["us_per_request"] == 7.5 / 7200 * 1e6
    assert phase["cpu"]["requests_per_cpu_s"] == 7200 / 7.5
    by_pid = {p["pid"]: p for p in phase["cpu"]["processes"]}
    assert by_pid[11]["cpu_s"] == round(0.75 * 4.2, 3) and by_pid[11]["connections"] == 66
    assert by_pid[12]["connections"] == 33
    assert phase["cpu"]["gone"] == [11]
    assert phase["cpu"]["tree_rss_mb"] == 203.0
    assert phase["round_results"] == rounds
