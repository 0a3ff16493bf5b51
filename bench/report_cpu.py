"""The second table of a bench run: every target (nginx, the baseline relay, the proxy once per
``--workers N``) with its throughput, latency and CPU per request, and the proxy's scaling
against 1 worker (issue 17: CPU per request may rise by at most 10 %; what matters is
requests per CPU-second, "requests per core")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from report import BASELINE, DIRECT, PENDING, proxy_label, spans_verdict

__all__ = ["TARGET_CPU_RISE", "WorkerRow", "render_cpu_table", "worker_rows"]

TARGET_CPU_RISE = 0.10  # CPU per request with N workers <= 1 worker's + 10 %


@dataclass(frozen=True)
class WorkerRow:
    target: str
    rps_loaded: str
    latency_loaded: str
    rps_single: str
    latency_single: str
    cpu_per_request: str
    cpu_vs_one: str
    requests_per_cpu_s: str
    cpu_by_process: str
    tree_rss: str
    spans: str


def _phase(run: dict[str, Any], target: str, conns: int) -> dict[str, Any] | None:
    phase: dict[str, Any] | None = run.get("phases", {}).get(f"{target}_c{conns}")
    return phase


def _cpu(phase: dict[str, Any] | None) -> dict[str, Any]:
    cpu: dict[str, Any] = (phase or {}).get("cpu") or {}
    return cpu


def _latency(phase: dict[str, Any] | None) -> str:
    return f"{phase['p50_ms']:.2f} / {phase['p99_ms']:.2f} ms" if phase else PENDING


def _split(cpu: dict[str, Any]) -> str:
    """Each process's share of the tree's CPU: the command's process, then its children."""
    processes = cpu.get("processes") or []
    total = sum(p["cpu_s"] for p in processes)
    if len(processes) < 2 or total <= 0:
        text = f"{len(processes)} process" if processes else PENDING
    else:
        parent = [p for p in processes if p["role"] == "command"]
        children = [p for p in processes if p["role"] != "command"]
        text = " · ".join([*(f"parent {p['cpu_s'] / total:.0%}" for p in parent),
                           "children " + " / ".join(_share(p, total) for p in children)])
    gone = cpu.get("gone") or []
    return text + (f" ({len(gone)} exited during the phase)" if gone else "")


def _share(process: dict[str, Any], total: float) -> str:
    connections = process.get("connections")
    return f"{process['cpu_s'] / total:.0%}" + (
        f" ({connections} conns)" if connections is not None else "")


def _rps(phase: dict[str, Any] | None, reference: dict[str, Any] | None) -> str:
    if phase is None:
        return PENDING
    text = f"{phase['requests_per_s']:,.0f}"
    if reference is not None and reference is not phase:
        text += f" (x{phase['requests_per_s'] / reference['requests_per_s']:.2f})"
    return text


def _cpu_vs_one(per_request: float | None, one: float | None, workers: int | None) -> str:
    if workers is None:
        return ""
    if workers == 1:
        return "reference"
    if not one or not per_request:
        return "no 1-worker run" if not one else PENDING
    rise = per_request / one - 1
    verdict = "PASS" if rise <= TARGET_CPU_RISE else "**FAIL**"
    return f"{rise:+.1%} {verdict}"


def _row(run: dict[str, Any], target: str, name: str, workers: int | None) -> WorkerRow:
    conns = run["connections"]
    loaded, single = _phase(run, target, conns), _phase(run, target, 1)
    cpu = _cpu(loaded)
    per_request = cpu.get("us_per_request")
    per_cpu_s = cpu.get("requests_per_cpu_s")
    one_name = proxy_label(1)
    one_loaded = _phase(run, one_name, conns) if workers else None
    one_single = _phase(run, one_name, 1) if workers else None
    proxy = run.get("proxies", {}).get(target, {})
    spans = proxy.get("spans")
    spans_cell = (f"{spans['stored']:,} / {spans['sent']:,} {spans_verdict(spans)}" if spans
                  else (PENDING if workers else ""))
    return WorkerRow(
        target=name,
        rps_loaded=_rps(loaded, one_loaded),
        latency_loaded=_latency(loaded),
        rps_single=_rps(single, one_single),
        latency_single=_latency(single),
        cpu_per_request=f"{per_request:,.0f} µs" if per_request else PENDING,
        cpu_vs_one=_cpu_vs_one(per_request, _cpu(one_loaded).get("us_per_request"), workers),
        requests_per_cpu_s=f"{per_cpu_s:,.0f}" if per_cpu_s else PENDING,
        cpu_by_process=_split(cpu),
        tree_rss=f"{cpu['tree_rss_mb']:.0f} MB" if cpu.get("tree_rss_mb") else PENDING,
        spans=spans_cell,
    )


def worker_rows(run: dict[str, Any]) -> list[WorkerRow]:
    rows = [_row(run, DIRECT, "nginx (direct)", None)]
    if _phase(run, BASELINE, run["connections"]) is not None:
        rows.append(_row(run, BASELINE, "baseline relay", None))
    for target, proxy in run.get("proxies", {}).items():
        workers = int(proxy["workers"])
        rows.append(_row(run, target, f"proxy, {workers} worker{'s' if workers > 1 else ''}",
                         workers))
    return rows


def render_cpu_table(run: dict[str, Any]) -> str:
    conns = run["connections"]
    header = (f"| Target | req/s, {conns} conns | p50 / p99, {conns} conns | req/s, 1 conn "
              f"| p50 / p99, 1 conn | CPU per request, {conns} conns | vs 1 worker "
              f"(<= +{TARGET_CPU_RISE:.0%}) | Requests per CPU-second | CPU by process "
              f"| RSS of the tree | Spans stored / sent |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    lines = [f"| {r.target} | {r.rps_loaded} | {r.latency_loaded} | {r.rps_single} "
             f"| {r.latency_single} | {r.cpu_per_request} | {r.cpu_vs_one} "
             f"| {r.requests_per_cpu_s} | {r.cpu_by_process} | {r.tree_rss} | {r.spans} |"
             for r in worker_rows(run)]
    return "\n".join([header, *lines])
