"""CPU instructions per proxied request, counted by callgrind: repeatable on a noisy machine.

Wall-clock benchmarks on a shared 2-core VM move by 20-40 % between identical runs;
``valgrind --tool=callgrind`` counts the instructions the process executes, which repeat to
within ~0.1 % for the same code and inputs whatever else the machine does. That makes it the
tool for comparing two versions or two configurations of the proxy (docs/performance.md,
"Where the CPU goes"). It counts every thread of the proxy process (event loop, analysis
worker, exporters), so work moved between threads does not look like a saving; with
``--workers N`` it follows the relay workers too (``--trace-children``) and counts every
process, so work moved between processes does not look like a saving either.

One run: start nginx (bench/nginx_upstream.py) and ``llmtrace-otel serve`` under callgrind
(50-100x slower, which is fine: nothing here is timed), send 100 warm-up requests on one
kept-alive connection, zero the counters (``callgrind_control -z``), send N requests, wait
for the background export, dump (``callgrind_control -d``) and divide.

Usage::

    .venv/bin/python bench/instructions.py                      # default settings
    .venv/bin/python bench/instructions.py -- --no-security-enabled
    .venv/bin/python bench/instructions.py --stream             # streamed chat (9 events)
    .venv/bin/python bench/instructions.py --baseline           # relay only (baseline_relay.py)
    .venv/bin/python bench/instructions.py --workers 2          # serve --workers 2: all processes

Needs valgrind and nginx (``apt-get install -y valgrind nginx-light``).
"""

from __future__ import annotations

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nginx_upstream import STREAM_HEADER, NginxUpstream, free_port
from proctree import tree_pids

BENCH_DIR = Path(__file__).resolve().parent
_BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]})


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process under callgrind exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listened on port {port} within {timeout_s:.0f} s")


def _send(conn: http.client.HTTPConnection, count: int, stream: bool) -> None:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
    if stream:
        headers[STREAM_HEADER] = "1"
    for _ in range(count):
        conn.request("POST", "/v1/chat/completions", body=_BODY, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"request failed with {response.status}")


def _total_instructions(prefix: str) -> int:
    total = 0
    for path in glob.glob(prefix + ".*"):
        match = re.search(r"^(?:summary|totals): (\d+)", Path(path).read_text(), re.M)
        if match:
            total += int(match.group(1))
    return total


def _control(flag: str, pids: list[int]) -> None:
    for pid in pids:
        subprocess.run(["callgrind_control", flag, str(pid)], check=False, capture_output=True)


def measure(requests: int, stream: bool, baseline: bool, serve_args: list[str],
            workers: int = 1) -> float:
    """Instructions per request (all threads; with ``workers`` > 1, all processes), in
    millions."""
    work = Path(tempfile.mkdtemp(prefix="llmtrace-instr-"))
    nginx = NginxUpstream(shutil.which("nginx") or "nginx", work / "nginx").start()
    port = free_port()
    out = work / "callgrind.out"
    if baseline:
        target = [sys.executable, str(BENCH_DIR / "baseline_relay.py"), str(port), nginx.url,
                  "--uvloop"]
    else:
        target = [str(Path(sys.executable).parent / "llmtrace-otel"), "serve", "--host",
                  "127.0.0.1", "--port", str(port), "--upstream-url", nginx.url,
                  "--sqlite-path", str(work / "spans.db"), "--log-level", "WARNING",
                  *(["--workers", str(workers)] if workers != 1 else []), *serve_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTRACE_", "OTEL_"))}
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
         f"--trace-children={'yes' if workers > 1 else 'no'}", *target],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, process)
        # one connection per worker: SO_REUSEPORT spreads them, so every worker is warm
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                 for _ in range(workers)]
        for conn in conns:
            _send(conn, 100, stream)
        time.sleep(1.5)
        pids = tree_pids(process.pid)
        _control("-z", pids)
        for index in range(requests):
            _send(conns[index % workers], 1, stream)
        time.sleep(1.5)  # the analysis worker and the exporters finish the batch
        _control("-d", pids)
        time.sleep(1.0)
        return _total_instructions(str(out)) / requests / 1e6
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
        nginx.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--stream", action="store_true", help="streamed chat completions")
    parser.add_argument("--baseline", action="store_true",
                        help="measure bench/baseline_relay.py instead of the proxy")
    parser.add_argument("--workers", type=int, default=1,
                        help="serve --workers N, counting every process")
    parser.add_argument("serve_args", nargs="*", help="extra `llmtrace-otel serve` flags")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install -y valgrind nginx-light", file=sys.stderr)
            return 2
    per_request = measure(args.requests, args.stream, args.baseline, args.serve_args,
                          args.workers)
    what = "baseline relay" if args.baseline else " ".join(
        ["serve", f"--workers {args.workers}", *args.serve_args])
    print(f"{what}: {per_request:.3f} M instructions per request "
          f"({'streamed' if args.stream else 'non-streaming'}, {args.requests} requests)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
