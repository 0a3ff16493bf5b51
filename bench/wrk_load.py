"""Run wrk with bench/post.lua and parse its ``--latency`` report."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["WrkError", "WrkResult", "parse_wrk_output", "run_wrk"]

LUA_SCRIPT = Path(__file__).with_name("post.lua")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_DURATION = r"([\d.]+)(us|ms|s|m)"


class WrkError(RuntimeError):
    """wrk failed or printed something we cannot parse."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk phase. Latencies in milliseconds; ``requests`` counts completed responses."""

    label: str
    connections: int
    duration_s: float
    requests: int
    sent: int
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def _search(pattern: str, text: str, what: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise WrkError(f"cannot find {what} in wrk output:\n{text}")
    return match


def parse_wrk_output(text: str, *, label: str, connections: int) -> WrkResult:
    """Parse wrk's report (run with ``--latency`` and bench/post.lua)."""
    percentiles = {
        int(p): _to_ms(value, unit)
        for p, value, unit in re.findall(rf"^\s+(50|75|90|99)%\s+{_DURATION}\s*$", text, re.M)
    }
    if set(percentiles) != {50, 75, 90, 99}:
        raise WrkError(f"latency distribution missing (was --latency passed?):\n{text}")
    total = _search(rf"^\s+(\d+) requests in {_DURATION}", text, "the request total")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sent = _search(r"^BENCH_SENT (\d+)$", text, "BENCH_SENT (from post.lua)")
    return WrkResult(
        label=label,
        connections=connections,
        duration_s=_to_ms(total.group(2), total.group(3)) / 1000.0,
        requests=int(total.group(1)),
        sent=int(sent.group(1)),
        requests_per_s=float(_search(r"^Requests/sec:\s+([\d.]+)", text, "Requests/sec").group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(
    wrk: str,
    url: str,
    *,
    label: str,
    connections: int,
    duration_s: int,
    body_file: Path,
    headers: Sequence[str] = (),
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run one wrk phase against ``url`` and return its parsed result."""
    threads = max(1, min(2, connections))
    command = [
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, duration_s)}s",
        f"--timeout={timeout_s:g}s", "--latency", "-s", str(LUA_SCRIPT), url,
        "--", str(body_file), *headers,
    ]
    completed = subprocess.run(command, capture_output=True, text=True,
                               timeout=duration_s + 60, check=False)
    if completed.returncode != 0:
        raise WrkError(f"{' '.join(command)} exited {completed.returncode}:\n"
                       f"{completed.stdout}\n{completed.stderr}")
    return parse_wrk_output(completed.stdout, label=label, connections=connections)
