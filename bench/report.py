"""Turn one bench run (a plain dict, also saved as JSON) into the markdown table: direct to
nginx, through the baseline relay and through the proxy, side by side, against the targets.

The table of the proxy's worker counts and of CPU per request is in ``report_cpu.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BASELINE", "DIRECT", "MIN_UPSTREAM_RATIO", "PENDING", "Row", "percentile",
           "primary_proxy", "proxy_label", "render_table", "spans_verdict", "table_rows"]

MIN_UPSTREAM_RATIO = 5.0
TARGET_RPS = 1500.0
TARGET_BASELINE_SHARE = 0.5  # proxy req/s >= 50 % of the baseline relay's, same run (issue 19)
TARGET_ADDED_P50_C1_MS = 0.8
TARGET_ADDED_P99_C32_MS = 30.0
TARGET_TTFC_OVERHEAD_P50_MS = 1.0
TARGET_RSS_MB = 120.0
RSS_GROWTH_TOLERANCE = (5.0, 0.05)  # not growing: second reading <= first + max(5 MB, 5 %)
PENDING = "pending"
DIRECT = "direct"
BASELINE = "baseline"


def proxy_label(workers: int) -> str:
    """The name of the proxy target with ``workers`` relay workers in a run's phases."""
    return "proxy" if workers == 1 else f"proxy_w{workers}"


def primary_proxy(run: dict[str, Any]) -> str:
    """The proxy of the main table: the first worker count of the run."""
    return str(run.get("primary_proxy", "proxy"))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Row:
    metric: str
    direct: str
    baseline: str
    proxy: str
    delta: str
    target: str
    verdict: str


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _added(value: float) -> str:
    return f"{value:+.3f} ms"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def _wrk(run: dict[str, Any], target: str, conns: int) -> dict[str, Any] | None:
    phase: dict[str, Any] | None = run.get("phases", {}).get(f"{target}_c{conns}")
    return phase


def _sides(run: dict[str, Any], conns: int) -> tuple[dict[str, Any], dict[str, Any] | None,
                                                     dict[str, Any] | None]:
    direct = _wrk(run, DIRECT, conns)
    assert direct is not None, f"no direct phase at {conns} connections"
    return direct, _wrk(run, BASELINE, conns), _wrk(run, primary_proxy(run), conns)


def _rps(phase: dict[str, Any] | None) -> str:
    return f"{phase['requests_per_s']:,.0f} req/s" if phase else PENDING


def _throughput_rows(run: dict[str, Any]) -> list[Row]:
    conns = run["connections"]
    direct, base, proxy = _sides(run, conns)
    d_rps = direct["requests_per_s"]
    b_rps = base["requests_per_s"] if base else None
    p_rps = proxy["requests_per_s"] if proxy else None
    share_target = f">= {TARGET_BASELINE_SHARE:.0%} of the baseline relay"
    void_target = f">= {MIN_UPSTREAM_RATIO:g}x (else numbers are void)"
    base_ratio = f"{d_rps / b_rps:.1f}x" if b_rps else PENDING
    if p_rps is None:
        return [Row(f"Throughput, {conns} conns, non-streaming", f"{d_rps:,.0f} req/s",
                    _rps(base), PENDING, "", f">= {TARGET_RPS:,.0f} req/s", PENDING),
                Row("Proxy / baseline relay throughput", "", "", PENDING, "", share_target,
                    PENDING),
                Row("Upstream/relay throughput ratio", "", base_ratio, PENDING, "", void_target,
                    PENDING)]
    of_base = f"{p_rps / b_rps:.1%} of baseline, " if b_rps else ""
    ratio = d_rps / p_rps if p_rps else math.inf
    share = (Row("Proxy / baseline relay throughput", "", "", "", f"{p_rps / b_rps:.1%}",
                 share_target, _verdict(p_rps / b_rps >= TARGET_BASELINE_SHARE))
             if b_rps else Row("Proxy / baseline relay throughput", "", PENDING, "", "",
                               share_target, PENDING))
    return [
        Row(f"Throughput, {conns} conns, non-streaming", f"{d_rps:,.0f} req/s", _rps(base),
            f"{p_rps:,.0f} req/s", f"{of_base}{p_rps / d_rps:.1%} of direct",
            f">= {TARGET_RPS:,.0f} req/s", _verdict(p_rps >= TARGET_RPS)),
        share,
        Row("Upstream/relay throughput ratio", "", base_ratio, "", f"{ratio:.1f}x", void_target,
            _verdict(ratio >= MIN_UPSTREAM_RATIO)),
    ]


def _latency_rows(run: dict[str, Any], conns: int, loaded: bool) -> list[Row]:
    direct, base, proxy = _sides(run, conns)
    rows = []
    for pct in ("p50", "p99"):
        target, limit = "", math.inf
        if not loaded and pct == "p50":
            target, limit = f"added <= {TARGET_ADDED_P50_C1_MS:g} ms", TARGET_ADDED_P50_C1_MS
        if loaded and pct == "p99":
            target, limit = f"added <= {TARGET_ADDED_P99_C32_MS:g} ms", TARGET_ADDED_P99_C32_MS
        metric = f"Latency {pct}, {conns} conn{'s' if conns > 1 else ''}, non-streaming"
        key = f"{pct}_ms"
        d_val = direct[key]
        b_cell = _ms(base[key]) if base else PENDING
        if proxy is None:
            rows.append(Row(metric, _ms(d_val), b_cell, PENDING, "", target,
                            PENDING if target else ""))
            continue
        added = proxy[key] - d_val
        delta = _added(added) + (f" (baseline {_added(base[key] - d_val)})" if base else "")
        rows.append(Row(metric, _ms(d_val), b_cell, _ms(proxy[key]), delta, target,
                        _verdict(added <= limit) if target else ""))
    return rows


def _ttfc_cell(entry: dict[str, Any] | None, pct: str) -> str:
    if entry is None:
        return PENDING
    if "not_measured" in entry:
        return "n/a: not relayed chunk by chunk"
    return _ms(entry[pct])


def _ttfc_rows(run: dict[str, Any]) -> list[Row]:
    ttfc = run.get("ttfc", {})
    direct, base, proxy = ttfc[DIRECT], ttfc.get(BASELINE), ttfc.get(primary_proxy(run))
    rows = []
    for pct in ("p50", "p99"):
        target = f"overhead <= {TARGET_TTFC_OVERHEAD_P50_MS:g} ms" if pct == "p50" else ""
        metric = f"Streaming time to first chunk {pct}, 1 conn"
        b_cell = _ttfc_cell(base, pct)
        if proxy is None:
            rows.append(Row(metric, _ms(direct[pct]), b_cell, PENDING, "", target,
                            PENDING if target else ""))
            continue
        overhead = proxy[pct] - direct[pct]
        verdict = _verdict(overhead <= TARGET_TTFC_OVERHEAD_P50_MS) if target else ""
        rows.append(Row(metric, _ms(direct[pct]), b_cell, _ms(proxy[pct]), _added(overhead),
                        target, verdict))
    return rows


def _cpu_row(run: dict[str, Any]) -> Row:
    conns = run["connections"]
    per_request = [((phase or {}).get("cpu") or {}).get("us_per_request")
                   for phase in _sides(run, conns)]
    direct, base, proxy = (f"{value:,.0f} µs" if value else PENDING for value in per_request)
    ratio = (f"{per_request[2] / per_request[1]:.1f}x baseline"
             if per_request[1] and per_request[2] else "")
    return Row(f"CPU per request, {conns} conns (process tree)", direct, base, proxy, ratio,
               "", "")


def _rss_row(run: dict[str, Any]) -> Row:
    readings = run.get("rss", [])
    target = f"<= {TARGET_RSS_MB:g} MB and not growing"
    metric = "Proxy RSS (VmRSS)"
    if not readings:
        return Row(metric, "", "", PENDING, "", target, PENDING)
    shown = " / ".join(f"{r['rss_mb']:.1f} MB @ {r['after_requests'] / 1000:.0f}k"
                       for r in readings)
    idle = run.get("rss_idle_after_flush")
    if idle:
        shown += f" ({idle['rss_mb']:.1f} MB idle)"
    first, last = readings[0]["rss_mb"], readings[-1]["rss_mb"]
    allowed = max(RSS_GROWTH_TOLERANCE[0], first * RSS_GROWTH_TOLERANCE[1])
    growth = last - first
    ok = last <= TARGET_RSS_MB and growth <= allowed
    return Row(metric, "", "", shown, f"{growth:+.1f} MB", target, _verdict(ok))


def spans_verdict(spans: dict[str, Any]) -> str:
    """Exactly one stored span per request sent (requests cut in flight may lack one)."""
    stored, sent, completed = spans["stored"], spans["sent"], spans["completed"]
    if stored == sent:
        return "PASS"
    if completed <= stored <= sent:
        return "PASS (gap = cut in flight)"
    return "**FAIL**"


def _spans_row(run: dict[str, Any]) -> Row:
    metric = "Spans stored vs requests sent via proxy"
    spans = run.get("proxies", {}).get(primary_proxy(run), {}).get("spans")
    if not spans:
        return Row(metric, "", "", PENDING, "", "equal", PENDING)
    stored, sent = spans["stored"], spans["sent"]
    return Row(metric, "", "", f"{stored:,} / {sent:,}",
               f"{stored - sent:+,} ({spans['completed']:,} completed)", "equal",
               spans_verdict(spans))


def table_rows(run: dict[str, Any]) -> list[Row]:
    return [*_throughput_rows(run), *_latency_rows(run, 1, loaded=False),
            *_latency_rows(run, run["connections"], loaded=True),
            *_ttfc_rows(run), _cpu_row(run), _rss_row(run), _spans_row(run)]


def render_table(run: dict[str, Any]) -> str:
    workers = run.get("proxies", {}).get(primary_proxy(run), {}).get("workers", 1)
    header = (f"| Metric | Direct (nginx) | Baseline relay | Through proxy ({workers} worker"
              f"{'s' if workers != 1 else ''}) | Added / ratio | Target | Verdict |\n"
              "|---|---:|---:|---:|---:|---|---|")
    lines = [f"| {r.metric} | {r.direct} | {r.baseline} | {r.proxy} | {r.delta} | {r.target} "
             f"| {r.verdict} |" for r in table_rows(run)]
    return "\n".join([header, *lines])
