"""What security analysis costs the proxy: CPU per request, by thread, on / off / block.

    .venv/bin/python bench/security_overhead.py [--duration 8] [--connections 32]

For each configuration (``--no-security-enabled``; the defaults, i.e. analysis on; analysis
on plus ``--security-enforcement block``) the script starts nginx (the canned upstream of
``bench/run.py``) and ``llmtrace-otel serve``, loads the proxy with wrk for ``--duration``
seconds, waits until every span is stored, and reads the CPU time of each proxy thread
from ``/proc/PID/task/*/stat`` before and after. CPU per request is far less sensitive to
other jobs on the machine than requests per second, and the per-thread split shows where
the cost lands: the event loop (the main thread, on the request path) or the background
threads (analysis worker and exporters, off it). Two request bodies: the bench's one-line "Say
hello" and a typical support-chat request (system prompt + 0.4 KB user message).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from nginx_upstream import NginxUpstream, free_port  # noqa: E402
from proxy_process import ProxyProcess, count_spans  # noqa: E402
from proxy_process import _clean_env as clean_env  # noqa: E402
from wrk_load import run_wrk  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CONFIGS = (
    ("security off", ["--no-security-enabled"]),
    ("security on (default)", []),
    ("security on + block guard", ["--security-enforcement", "block"]),
)
_SYSTEM = ("You are the support assistant of Acme Outdoor. Answer questions about orders, "
           "shipping and returns politely and briefly. Never reveal internal notes.")
_USER = ("Hi! I ordered the blue Trailrunner jacket (order 4411) last Tuesday and the tracking "
         "page still says 'label created'. Can you tell me when it will arrive? Also, does the "
         "jacket come in size M, and can I exchange it if it does not fit? My email is "
         "jane.doe@example.com if you need it.")
_BODIES = {
    "one-line prompt": {"model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": "Say hello"}]},
    "support chat (0.6 KB)": {"model": "gpt-4o-mini",
                              "messages": [{"role": "system", "content": _SYSTEM},
                                           {"role": "user", "content": _USER}]},
}


def _thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the main thread (the event loop) and of all other
    threads (analysis worker, exporters) of ``pid``."""
    main = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICK
        if task.name == str(pid):
            main += seconds
        else:
            others += seconds
    return main, others


@dataclass
class _FlaggedProxy(ProxyProcess):
    flags: list[str] = field(default_factory=list)

    def start(self, ready_timeout_s: float = 30.0) -> _FlaggedProxy:
        self.command = [str(self.executable), "serve", "--host", "127.0.0.1", "--port",
                        str(self.port), "--upstream-url", self.upstream_url, "--sqlite-path",
                        str(self.db_path), *self.flags]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        env=clean_env())
        self._wait_healthy(ready_timeout_s)
        return self


def _drain(db: Path) -> int:
    """Stored spans, once the count has stopped changing (the analysis queue drained)."""
    deadline = time.monotonic() + 30
    last, stable = -1, time.monotonic()
    while time.monotonic() < deadline:
        stored = count_spans(db)
        if stored != last:
            last, stable = stored, time.monotonic()
        elif time.monotonic() - stable > 1.5:
            break
        time.sleep(0.25)
    return last


def _run(executable: Path, upstream: str, flags: list[str], body: Path, duration: int,
         connections: int, work: Path) -> dict[str, float]:
    db = work / f"spans-{time.monotonic_ns()}.db"
    proxy = _FlaggedProxy(executable, upstream, db, work / "proxy.log", free_port(), flags=flags)
    proxy.start()
    try:
        url = f"{proxy.url}/v1/chat/completions"
        run_wrk("wrk", url, label="warmup", connections=connections, duration_s=1, body_file=body)
        spans_before = _drain(db)
        main_before, others_before = _thread_cpu(proxy.pid)
        result = run_wrk("wrk", url, label="load", connections=connections,
                         duration_s=duration, body_file=body)
        requests = max(1, _drain(db) - spans_before)
        main_after, others_after = _thread_cpu(proxy.pid)
        loop = main_after - main_before
        background = others_after - others_before
        return {
            "req_per_s": result.requests_per_s,
            "cpu_us_per_req": 1e6 * (loop + background) / requests,
            "loop_us_per_req": 1e6 * loop / requests,
            "background_us_per_req": 1e6 * background / requests,
        }
    finally:
        proxy.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx_bin).exists() or shutil.which("wrk") is None:
        print("needs nginx and wrk (see bench/README.md)", file=sys.stderr)
        return 2
    executable = Path(sys.executable).parent / "llmtrace-otel"
    with tempfile.TemporaryDirectory(prefix="llmtrace-secbench-") as tmp:
        work = Path(tmp)
        nginx = NginxUpstream(nginx_bin, work / "nginx").start()
        try:
            rows = []
            for body_name, body in _BODIES.items():
                body_file = work / "body.json"
                body_file.write_text(json.dumps(body))
                for name, flags in _CONFIGS:
                    r = _run(executable, nginx.url, flags, body_file, args.duration,
                             args.connections, work)
                    rows.append(
                        f"| {body_name} | {name} | {r['req_per_s']:,.0f} | "
                        f"{r['cpu_us_per_req']:.0f} | {r['loop_us_per_req']:.0f} | "
                        f"{r['background_us_per_req']:.0f} |")
                    print(rows[-1], file=sys.stderr)
        finally:
            nginx.stop()
    load = os.getloadavg()[0]
    print(f"wrk {args.connections} connections, {args.duration} s per configuration; "
          f"1-minute load average {load:.1f} at the end\n")
    print("| request | configuration | req/s | proxy CPU µs/request | event loop µs/request "
          "| background threads µs/request |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
