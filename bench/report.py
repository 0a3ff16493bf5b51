"""Turn one bench run (a plain dict, also saved as JSON) into the markdown table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_UPSTREAM_RATIO", "Row", "percentile", "render_table", "table_rows"]

MIN_UPSTREAM_RATIO = 5.0
TARGET_RPS = 1500.0
TARGET_ADDED_P50_C1_MS = 1.0
TARGET_ADDED_P99_C32_MS = 30.0
TARGET_TTFC_OVERHEAD_P50_MS = 1.0
TARGET_RSS_MB = 120.0
RSS_GROWTH_TOLERANCE = (5.0, 0.05)  # not growing: second reading <= first + max(5 MB, 5 %)
PENDING = "pending"


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Row:
    metric: str
    direct: str
    proxy: str
    delta: str
    target: str
    verdict: str


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def _wrk(run: dict[str, Any], name: str) -> dict[str, Any] | None:
    return run.get("phases", {}).get(name)


def _throughput_rows(run: dict[str, Any]) -> list[Row]:
    conns = run["connections"]
    direct, proxy = _wrk(run, f"direct_c{conns}"), _wrk(run, f"proxy_c{conns}")
    assert direct is not None
    d_rps = direct["requests_per_s"]
    metric = f"Throughput, {conns} conns, non-streaming"
    if proxy is None:
        return [Row(metric, f"{d_rps:,.0f} req/s", PENDING, "",
                    f">= {TARGET_RPS:,.0f} req/s", PENDING),
                Row("Upstream/proxy throughput ratio", "", PENDING, "",
                    f">= {MIN_UPSTREAM_RATIO:g}x (else numbers are void)", PENDING)]
    p_rps = proxy["requests_per_s"]
    ratio = d_rps / p_rps if p_rps else math.inf
    return [
        Row(metric, f"{d_rps:,.0f} req/s", f"{p_rps:,.0f} req/s",
            f"{p_rps / d_rps:.1%} of direct", f">= {TARGET_RPS:,.0f} req/s",
            _verdict(p_rps >= TARGET_RPS)),
        Row("Upstream/proxy throughput ratio", "", "", f"{ratio:.1f}x",
            f">= {MIN_UPSTREAM_RATIO:g}x (else numbers are void)",
            _verdict(ratio >= MIN_UPSTREAM_RATIO)),
    ]


def _latency_rows(run: dict[str, Any], conns: int, loaded: bool) -> list[Row]:
    direct, proxy = _wrk(run, f"direct_c{conns}"), _wrk(run, f"proxy_c{conns}")
    assert direct is not None
    rows = []
    for pct in ("p50", "p99"):
        target, verdict = "", ""
        if not loaded and pct == "p50":
            target = f"added <= {TARGET_ADDED_P50_C1_MS:g} ms"
        if loaded and pct == "p99":
            target = f"added <= {TARGET_ADDED_P99_C32_MS:g} ms"
        metric = f"Latency {pct}, {conns} conn{'s' if conns > 1 else ''}, non-streaming"
        d_val = direct[f"{pct}_ms"]
        if proxy is None:
            rows.append(Row(metric, _ms(d_val), PENDING, "", target, PENDING if target else ""))
            continue
        added = proxy[f"{pct}_ms"] - d_val
        if target:
            limit = TARGET_ADDED_P99_C32_MS if loaded else TARGET_ADDED_P50_C1_MS
            verdict = _verdict(added <= limit)
        rows.append(Row(metric, _ms(d_val), _ms(proxy[f"{pct}_ms"]), f"+{_ms(added)}",
                        target, verdict))
    return rows


def _ttfc_rows(run: dict[str, Any]) -> list[Row]:
    ttfc = run.get("ttfc", {})
    direct, proxy = ttfc["direct"], ttfc.get("proxy")
    rows = []
    for pct in ("p50", "p99"):
        target = f"overhead <= {TARGET_TTFC_OVERHEAD_P50_MS:g} ms" if pct == "p50" else ""
        metric = f"Streaming time to first chunk {pct}, 1 conn"
        if proxy is None:
            rows.append(Row(metric, _ms(direct[pct]), PENDING, "", target,
                            PENDING if target else ""))
            continue
        overhead = proxy[pct] - direct[pct]
        verdict = _verdict(overhead <= TARGET_TTFC_OVERHEAD_P50_MS) if target else ""
        rows.append(Row(metric, _ms(direct[pct]), _ms(proxy[pct]), f"+{_ms(overhead)}", target,
                        verdict))
    return rows


def _rss_row(run: dict[str, Any]) -> Row:
    readings = run.get("rss", [])
    target = f"<= {TARGET_RSS_MB:g} MB and not growing"
    if not readings:
        return Row("Proxy RSS (VmRSS)", "", PENDING, "", target, PENDING)
    shown = " / ".join(f"{r['rss_mb']:.1f} MB @ {r['after_requests'] / 1000:.0f}k"
                       for r in readings)
    idle = run.get("rss_idle_after_flush")
    if idle:
        shown += f" ({idle['rss_mb']:.1f} MB idle)"
    first, last = readings[0]["rss_mb"], readings[-1]["rss_mb"]
    allowed = max(RSS_GROWTH_TOLERANCE[0], first * RSS_GROWTH_TOLERANCE[1])
    growth = last - first
    ok = last <= TARGET_RSS_MB and growth <= allowed
    return Row("Proxy RSS (VmRSS)", "", shown, f"{growth:+.1f} MB", target, _verdict(ok))


def _spans_row(run: dict[str, Any]) -> Row:
    spans = run.get("spans")
    if not spans:
        return Row("Spans stored vs requests sent via proxy", "", PENDING, "", "equal", PENDING)
    stored, sent, completed = spans["stored"], spans["sent"], spans["completed"]
    shown = f"{stored:,} / {sent:,}"
    if stored == sent:
        verdict = "PASS"
    elif completed <= stored <= sent:
        verdict = "PASS (gap = cut in flight)"
    else:
        verdict = "**FAIL**"
    return Row("Spans stored vs requests sent via proxy", "", shown,
               f"{stored - sent:+,} ({completed:,} completed)", "equal", verdict)


def table_rows(run: dict[str, Any]) -> list[Row]:
    return [*_throughput_rows(run), *_latency_rows(run, 1, loaded=False),
            *_latency_rows(run, run["connections"], loaded=True),
            *_ttfc_rows(run), _rss_row(run), _spans_row(run)]


def render_table(run: dict[str, Any]) -> str:
    header = ("| Metric | Direct | Through proxy | Added / ratio | Target | Verdict |\n"
              "|---|---:|---:|---:|---|---|")
    lines = [f"| {r.metric} | {r.direct} | {r.proxy} | {r.delta} | {r.target} | {r.verdict} |"
             for r in table_rows(run)]
    return "\n".join([header, *lines])
