"""One bench run's targets and its measured phases: wrk and time-to-first-chunk phases against
nginx, the baseline relay or a proxy, each with the CPU and RSS of the target's process tree.

A measured wrk phase is a few rounds, the targets taking turns (``run.py``); a phase's figures
are the median round's (``combine_rounds``). A target's CPU for a round is read from /proc
(``proctree.py``) just before wrk starts and again after it ends; for a proxy, only once every
span of the requests sent to it so far is in its SQLite store (or the count stopped moving), so
the analysis and the export the round caused are in the figure, not only the relaying.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nginx_upstream import STREAM_HEADER
from proctree import TreeSample, sample_tree
from proxy_process import ProxyProcess
from report import percentile
from ttfc_client import TtfcResult, measure_ttfc
from wrk_load import WrkResult, run_wrk

__all__ = ["CHAT_PATH", "Session", "Target", "combine_rounds", "log", "phase_cpu"]

CHAT_PATH = "/v1/chat/completions"
_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Target:
    """Something wrk sends requests to: nginx itself, the baseline relay, or one proxy."""

    name: str
    port: int
    pid: int  # root of its process tree
    proxy: ProxyProcess | None = None
    sent: int = 0  # requests written to the wire in the whole run (warm-up included)
    completed: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settle(self) -> None:
        """For a proxy: wait until the spans of everything sent so far are stored."""
        if self.proxy is not None:
            self.proxy.wait_for_spans(self.sent, settle_s=1.0, max_wait_s=30.0)


def phase_cpu(before: TreeSample, after: TreeSample, requests: int) -> dict[str, Any]:
    """CPU and memory of a target's process tree over one round, per completed request."""
    cpu_s = after.cpu_since(before)
    by_process = after.cpu_by_process(before)
    return {
        "cpu_s": round(cpu_s, 3),
        "wall_s": round(after.at - before.at, 3),
        "us_per_request": cpu_s / requests * 1e6 if requests else None,
        "requests_per_cpu_s": requests / cpu_s if cpu_s > 0 else None,
        "tree_rss_mb": round(after.rss_mb, 1),
        "processes": [{"pid": p.pid, "ppid": p.ppid, "name": p.name,
                       "role": "command" if p.pid == after.root else "child",
                       "cpu_s": round(by_process[p.pid], 3), "rss_mb": round(p.rss_mb, 1)}
                      for p in after.processes],
        "gone": list(after.restarted_since(before)),
    }


def _summary(result: WrkResult) -> str:
    return (f"  {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.3f} ms, "
            f"p99 {result.p99_ms:.3f} ms, non-2xx {result.non_2xx}, "
            f"socket errors {result.socket_errors}")


def combine_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase from its rounds: the median round's req/s and latency percentiles (a burst
    of other work on the machine spoils one round, not the figure), counts summed, and CPU per
    request = the rounds' CPU summed ÷ their responses summed."""
    first = rounds[0]
    requests = sum(r["requests"] for r in rounds)
    cpu_s = sum(r["cpu"]["cpu_s"] for r in rounds)
    processes: dict[int, dict[str, Any]] = {}
    for process in (p for r in rounds for p in r["cpu"]["processes"]):
        pid = process["pid"]
        if pid not in processes:
            processes[pid] = dict(process)
            continue
        merged = processes[pid]
        merged["cpu_s"] = round(merged["cpu_s"] + process["cpu_s"], 3)
        merged["rss_mb"] = process["rss_mb"]
        if "connections" in process:
            merged["connections"] = merged.get("connections", 0) + process["connections"]
    medians = {key: statistics.median(r[key] for r in rounds)
               for key in ("requests_per_s", "p50_ms", "p75_ms", "p90_ms", "p99_ms")}
    return {
        "label": first["label"].rsplit("_round", 1)[0], "connections": first["connections"],
        **medians, "rounds": len(rounds), "requests": requests,
        "sent": sum(r["sent"] for r in rounds),
        "duration_s": round(sum(r["duration_s"] for r in rounds), 2),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        "cpu": {"cpu_s": round(cpu_s, 3),
                "us_per_request": cpu_s / requests * 1e6 if requests else None,
                "requests_per_cpu_s": requests / cpu_s if cpu_s > 0 else None,
                "tree_rss_mb": rounds[-1]["cpu"]["tree_rss_mb"],
                "processes": list(processes.values()),
                "gone": [pid for r in rounds for pid in r["cpu"]["gone"]]},
        "loadavg_at_end": rounds[-1]["loadavg_at_end"],
        "round_results": rounds,
    }


def _add_connections(cpu: dict[str, Any], before: dict[int, int], after: dict[int, int]) -> None:
    """Connections each relay worker accepted during the phase (SO_REUSEPORT spreads wrk's
    connections by hash: an uneven split shows in the CPU shares)."""
    for process in cpu["processes"]:
        if process["pid"] in after:
            process["connections"] = after[process["pid"]] - before.get(process["pid"], 0)


@dataclass
class Session:
    """What one run measures, and everything it measured (``results``, saved as JSON)."""

    wrk: str
    workdir: Path
    connections: int
    ttfc_samples: int
    targets: list[Target] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.body = self.workdir / "chat.json"
        self.body.write_text(json.dumps(_REQUEST))
        self.stream_body = json.dumps({**_REQUEST, "stream": True}).encode()
        self.results: dict[str, Any] = {"connections": self.connections, "phases": {},
                                        "extra_phases": [], "rss": [], "ttfc": {},
                                        "proxies": {}}

    def _wrk(self, target: Target, connections: int, duration_s: int, label: str) -> WrkResult:
        url = target.url + CHAT_PATH
        log(f"wrk {label}: {connections} conns, {duration_s} s -> {url}")
        result = run_wrk(self.wrk, url, label=label, connections=connections,
                         duration_s=duration_s, body_file=self.body)
        target.sent += result.sent
        target.completed += result.requests
        return result

    def unmeasured(self, target: Target, connections: int, duration_s: int,
                   extra: str) -> WrkResult:
        """A warm-up or push phase: kept out of the tables, no CPU accounting."""
        result = self._wrk(target, connections, duration_s,
                           f"{target.name}_c{connections}_{extra}")
        log(_summary(result))
        self.results["extra_phases"].append(result.as_dict())
        return result

    def measured_round(self, target: Target, connections: int, duration_s: int,
                       index: int) -> dict[str, Any]:
        """One round of a measured phase, with the CPU and RSS of the target's tree."""
        before = sample_tree(target.pid)
        accepted = target.proxy.accepted_by_worker() if target.proxy else {}
        result = self._wrk(target, connections, duration_s,
                           f"{target.name}_c{connections}_round{index}")
        target.settle()
        cpu = phase_cpu(before, sample_tree(target.pid), result.requests)
        if accepted and target.proxy:
            _add_connections(cpu, accepted, target.proxy.accepted_by_worker())
        log(f"{_summary(result)}; CPU {cpu['us_per_request'] or 0:,.0f} µs/request over "
            f"{len(cpu['processes'])} process(es), tree RSS {cpu['tree_rss_mb']:.0f} MB")
        return {**result.as_dict(), "cpu": cpu, "loadavg_at_end": os.getloadavg()}

    def record_phase(self, target: Target, connections: int,
                     rounds: list[dict[str, Any]]) -> dict[str, Any]:
        """The rounds of one target's phase, combined (``combine_rounds``), into the results."""
        phase = combine_rounds(rounds)
        self.results["phases"][f"{target.name}_c{connections}"] = phase
        return phase

    def ttfc(self, target: Target) -> TtfcResult:
        log(f"time to first chunk, {target.name}: {self.ttfc_samples} sequential samples")
        result = measure_ttfc(target.port, label=target.name, body=self.stream_body,
                              headers=[f"{STREAM_HEADER}: 1"], samples=self.ttfc_samples)
        target.sent += result.sent
        target.completed += result.sent
        summary = {"p50": percentile(result.ttfc_ms, 50), "p99": percentile(result.ttfc_ms, 99),
                   "samples": len(result.ttfc_ms),
                   "total_p50": percentile(result.total_ms, 50)}
        log(f"  ttfc p50 {summary['p50']:.3f} ms, p99 {summary['p99']:.3f} ms")
        self.results["ttfc"][target.name] = summary
        return result

    def push_until(self, target: Target, total: int, rps_hint: float) -> None:
        """Send requests to ``target`` until ``total`` were sent to it in the whole run."""
        while target.sent < total:
            missing = total - target.sent
            seconds = max(1, min(60, math.ceil(missing / max(rps_hint, 1.0))))
            result = self.unmeasured(target, self.connections, seconds, "push")
            rps_hint = result.requests_per_s

    def read_rss(self, target: Target) -> dict[str, float]:
        """RSS (sum over the target's process tree) now, with the requests sent so far."""
        tree = sample_tree(target.pid)
        reading = {"after_requests": target.sent, "rss_mb": round(tree.rss_mb, 1),
                   "hwm_mb": round(tree.hwm_mb, 1), "processes": len(tree.processes)}
        log(f"{target.name} RSS {tree.rss_mb:.1f} MB (peak {tree.hwm_mb:.1f} MB) over "
            f"{len(tree.processes)} process(es) after {target.sent:,} requests")
        return reading
