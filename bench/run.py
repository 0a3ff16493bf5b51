"""Benchmark: direct to a fast fake upstream (nginx) vs through the llmtrace-otel proxy.

Run with ``make bench`` or ``.venv/bin/python bench/run.py [--quick]``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nginx_upstream import STREAM_HEADER, NginxUpstream, free_port
from proxy_process import ProxyProcess
from report import MIN_UPSTREAM_RATIO, percentile, render_table
from ttfc_client import TtfcResult, measure_ttfc
from wrk_load import WrkResult, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
from tests.support.postgres_server import PostgresCluster, find_binaries  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
CHAT_PATH = "/v1/chat/completions"
APT_PACKAGES = ("nginx-light", "wrk")
BUSY_LOADAVG = 0.5
DROPPED_METRIC = "llmtrace_telemetry_dropped_total"
_REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


@dataclass(frozen=True)
class Options:
    duration_s: int
    warmup_s: int
    connections: int
    ttfc_samples: int
    requests_for_rss: int
    direct_only: bool
    install: bool
    proxy_bin: Path
    output: Path | None
    proxy_arg: tuple[str, ...] = ()
    storage_url: str | None = None
    postgres: bool = False


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="~1 minute: 3 s phases, 100 TTFC samples, 20k requests for RSS")
    parser.add_argument("--duration", type=int, help="seconds per wrk phase (default 10)")
    parser.add_argument("--warmup", type=int, help="seconds of wrk warm-up (default 2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ttfc-samples", type=int, help="sequential samples per side (300)")
    parser.add_argument("--requests-for-rss", type=int, metavar="N",
                        help="push ~N requests through the proxy in total before the last RSS "
                             "reading (default 100000; RSS is also read at N/2)")
    parser.add_argument("--direct-only", action="store_true",
                        help="measure nginx only; proxy rows are marked pending")
    parser.add_argument("--proxy-arg", action="append", default=[], metavar="FLAG",
                        help="extra `serve` flag, repeatable (e.g. --proxy-arg=--requests-per-s"
                             "=1000000 to measure the cost of limits)")
    parser.add_argument("--no-install", action="store_true",
                        help="never apt-get install nginx/wrk; fail if they are missing")
    parser.add_argument("--proxy-bin", type=Path,
                        default=Path(sys.executable).parent / "llmtrace-otel")
    parser.add_argument("--output", type=Path, help="JSON results file "
                        "(default bench/results/bench-<timestamp>.json)")
    store = parser.add_mutually_exclusive_group()
    store.add_argument("--storage-url", metavar="URL",
                       help="store spans in this PostgreSQL database (storage.url) instead of "
                            "SQLite; stored spans are counted there")
    store.add_argument("--postgres", action="store_true",
                       help="the same on a throw-away local PostgreSQL server (durable "
                            "settings; tests/support/postgres_server.py)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    return Options(
        duration_s=args.duration or (3 if quick else 10),
        warmup_s=args.warmup or (1 if quick else 2),
        connections=args.connections,
        ttfc_samples=args.ttfc_samples or (100 if quick else 300),
        requests_for_rss=args.requests_for_rss or (20_000 if quick else 100_000),
        direct_only=args.direct_only,
        install=not args.no_install,
        proxy_bin=args.proxy_bin,
        output=args.output,
        proxy_arg=tuple(args.proxy_arg),
        storage_url=args.storage_url,
        postgres=args.postgres,
    )


# --------------------------------------------------------------------------- tools


def _find_tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None)


def ensure_tools(install: bool) -> tuple[str, str]:
    """Paths of nginx and wrk, installing them with apt-get when missing (root only)."""
    nginx, wrk = _find_tool("nginx"), _find_tool("wrk")
    if nginx and wrk:
        return nginx, wrk
    command = ["apt-get", "install", "-y", *APT_PACKAGES]
    if not install or os.geteuid() != 0:
        print(f"bench: nginx and wrk are required; install them with:\n  sudo {' '.join(command)}",
              file=sys.stderr)
        raise SystemExit(2)
    for step in (["apt-get", "update"], command):
        print(f"bench: running {' '.join(step)}", flush=True)
        subprocess.run(step, check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    nginx, wrk = _find_tool("nginx"), _find_tool("wrk")
    if not (nginx and wrk):
        raise SystemExit(f"bench: {' '.join(command)} did not provide nginx and wrk")
    return nginx, wrk


def proxy_usable(proxy_bin: Path) -> str | None:
    """None if ``proxy_bin serve --help`` works, else why not."""
    if not proxy_bin.exists():
        return f"{proxy_bin} does not exist"
    probe = subprocess.run([str(proxy_bin), "serve", "--help"], capture_output=True, text=True,
                           timeout=60, check=False)
    if probe.returncode != 0:
        return f"{proxy_bin} serve --help exited {probe.returncode}: {probe.stderr[-500:]}"
    return None


# --------------------------------------------------------------------------- the run


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=BENCH_DIR, check=False).stdout.strip()
    return {"nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "loadavg_at_start": os.getloadavg(),
            "cpu_model": cpu, "kernel": platform.release(), "python": platform.python_version(),
            "git_commit": commit or "unknown"}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Bench:
    """State of one run: tools, bodies, the two targets and everything measured."""

    options: Options
    wrk: str
    workdir: Path
    nginx: NginxUpstream
    proxy: ProxyProcess | None = None
    #: Where the proxy stores spans when not in SQLite (--storage-url / --postgres).
    storage_url: str | None = None

    def __post_init__(self) -> None:
        self.body = self.workdir / "chat.json"
        self.body.write_text(json.dumps(_REQUEST))
        self.stream_body = json.dumps({**_REQUEST, "stream": True}).encode()
        self.results: dict[str, Any] = {"connections": self.options.connections, "phases": {},
                                        "extra_phases": [], "rss": []}
        self.proxy_sent = 0
        self.proxy_completed = 0

    def wrk_phase(self, target: str, connections: int, duration_s: int, *,
                  extra: str | None = None) -> WrkResult:
        """One wrk phase; ``extra`` names a warm-up/push phase kept out of the table."""
        url = (self.nginx.url if target == "direct" else self._proxy().url) + CHAT_PATH
        label = f"{target}_c{connections}" + (f"_{extra}" if extra else "")
        _log(f"wrk {label}: {connections} conns, {duration_s} s -> {url}")
        result = run_wrk(self.wrk, url, label=label, connections=connections,
                         duration_s=duration_s, body_file=self.body)
        _log(f"  {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.3f} ms, "
             f"p99 {result.p99_ms:.3f} ms, non-2xx {result.non_2xx}, "
             f"socket errors {result.socket_errors}")
        if target == "proxy":
            self.proxy_sent += result.sent
            self.proxy_completed += result.requests
        if extra is None:
            self.results["phases"][label] = result.as_dict()
        else:
            self.results["extra_phases"].append(result.as_dict())
        return result

    def _proxy(self) -> ProxyProcess:
        if self.proxy is None:
            raise RuntimeError("proxy phase requested in a direct-only run")
        return self.proxy

    def ttfc(self, target: str) -> TtfcResult:
        port = self.nginx.port if target == "direct" else self._proxy().port
        _log(f"time to first chunk, {target}: {self.options.ttfc_samples} sequential samples")
        result = measure_ttfc(port, label=target, body=self.stream_body,
                              headers=[f"{STREAM_HEADER}: 1"], samples=self.options.ttfc_samples)
        if target == "proxy":
            self.proxy_sent += result.sent
            self.proxy_completed += result.sent
        summary = {"p50": percentile(result.ttfc_ms, 50), "p99": percentile(result.ttfc_ms, 99),
                   "samples": len(result.ttfc_ms),
                   "total_p50": percentile(result.total_ms, 50)}
        _log(f"  ttfc p50 {summary['p50']:.3f} ms, p99 {summary['p99']:.3f} ms")
        self.results.setdefault("ttfc", {})[target] = summary
        return result

    def push_until(self, total: int, rps_hint: float) -> None:
        """Send proxied requests until ``total`` were sent in the whole run."""
        while self.proxy_sent < total:
            missing = total - self.proxy_sent
            seconds = max(1, min(60, math.ceil(missing / max(rps_hint, 1.0))))
            result = self.wrk_phase("proxy", self.options.connections, seconds, extra="push")
            rps_hint = result.requests_per_s

    def read_rss(self) -> None:
        rss, hwm = self._proxy().rss_mb()
        self.results["rss"].append({"after_requests": self.proxy_sent, "rss_mb": rss,
                                    "hwm_mb": hwm})
        _log(f"proxy RSS {rss:.1f} MB (peak {hwm:.1f} MB) after {self.proxy_sent:,} requests")


def _measure_pairs(bench: Bench, with_proxy: bool) -> None:
    options = bench.options
    targets = ["direct", "proxy"] if with_proxy else ["direct"]
    for target in targets:
        bench.wrk_phase(target, options.connections, options.warmup_s, extra="warmup")
    for target in targets:
        bench.wrk_phase(target, options.connections, options.duration_s)
    for target in targets:
        bench.wrk_phase(target, 1, options.duration_s)
    for target in targets:
        bench.ttfc(target)


def _measure_memory_and_spans(bench: Bench) -> None:
    proxy = bench._proxy()
    rss_target = bench.options.requests_for_rss
    rps = bench.results["phases"][f"proxy_c{bench.options.connections}"]["requests_per_s"]
    first = max(bench.proxy_sent, rss_target // 2)
    bench.push_until(first, rps)
    bench.read_rss()
    bench.push_until(max(rss_target, first + rss_target // 2), rps)
    bench.read_rss()
    _log("waiting for the proxy to flush spans to its store")
    stored = proxy.wait_for_spans(bench.proxy_sent)
    bench.results["spans"] = {"stored": stored, "sent": bench.proxy_sent,
                              "completed": bench.proxy_completed}
    rss, hwm = proxy.rss_mb()
    bench.results["rss_idle_after_flush"] = {"rss_mb": rss, "hwm_mb": hwm}
    dropped = proxy.scrape_metric(DROPPED_METRIC)
    bench.results["spans"]["proxy_reported_drops"] = dropped
    if any(dropped.values()):
        _log(f"the proxy reports dropped telemetry: {dropped}")
    _log(f"spans stored {stored:,} / requests sent {bench.proxy_sent:,} "
         f"({bench.proxy_completed:,} completed); idle RSS after flush {rss:.1f} MB")


def _start_proxy(bench: Bench) -> ProxyProcess:
    proxy = ProxyProcess(executable=bench.options.proxy_bin, upstream_url=bench.nginx.url,
                         db_path=bench.workdir / "bench.db", log_path=bench.workdir / "proxy.log",
                         port=free_port(), extra_args=list(bench.options.proxy_arg),
                         storage_url=bench.storage_url)
    _log(f"starting proxy: {bench.options.proxy_bin} serve ... --upstream-url {bench.nginx.url}")
    proxy.start()
    _log(f"proxy healthy at {proxy.url} (pid {proxy.pid})")
    return proxy


def run(options: Options, nginx_bin: str, wrk_bin: str, workdir: Path) -> dict[str, Any]:
    proxy_problem = None if options.direct_only else proxy_usable(options.proxy_bin)
    if proxy_problem:
        _log(f"!!! PROXY NOT AVAILABLE ({proxy_problem}); measuring direct only, "
             f"proxy rows pending")
    nginx = NginxUpstream(nginx_bin, workdir / "nginx").start()
    _log(f"nginx fake upstream at {nginx.url}")
    bench = Bench(options=options, wrk=wrk_bin, workdir=workdir, nginx=nginx,
                  storage_url=options.storage_url)
    with_proxy = not options.direct_only and proxy_problem is None
    cluster = None
    if options.postgres and with_proxy:
        bindir = find_binaries()
        if bindir is None:
            nginx.stop()
            raise SystemExit("--postgres: no PostgreSQL server installed (make postgresql)")
        cluster = PostgresCluster(bindir, durable=True, settings={"shared_buffers": "256MB"})
        cluster.start()
        bench.storage_url = cluster.create_database("bench")
        _log(f"throw-away PostgreSQL at port {cluster.port}: spans go to {bench.storage_url}")
    try:
        if with_proxy:
            try:
                bench.proxy = _start_proxy(bench)
            except RuntimeError as error:
                proxy_problem, with_proxy = str(error), False
                _log(f"!!! PROXY DID NOT START; measuring direct only, proxy rows pending:\n"
                     f"{error}")
        _measure_pairs(bench, with_proxy)
        if with_proxy:
            _measure_memory_and_spans(bench)
    finally:
        _stop(bench)
        if cluster is not None:
            cluster.close()
    bench.results["proxy_problem"] = proxy_problem
    return bench.results


def _stop(bench: Bench) -> None:
    if bench.proxy is not None:
        code = bench.proxy.stop()
        bench.results["proxy_exit_code"] = code
        if bench.results.get("spans"):
            bench.results["spans"]["stored_after_shutdown"] = bench.proxy.stored()
    bench.nginx.stop()


def _save(results: dict[str, Any], table: str, output: Path | None) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = output or RESULTS_DIR / f"bench-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    path.with_suffix(".md").write_text(table + "\n")
    return path


def _warn_if_busy(load1: float) -> None:
    if load1 > BUSY_LOADAVG:
        _log(f"!!! the machine is busy before the run (1-min load average {load1:.2f}); other "
             f"processes share the cores with wrk, nginx and the proxy, so expect noisy numbers")


def _warn_if_void(results: dict[str, Any], say: Callable[[str], None]) -> None:
    phases, conns = results["phases"], results["connections"]
    if f"proxy_c{conns}" not in phases:
        return
    ratio = (phases[f"direct_c{conns}"]["requests_per_s"]
             / max(phases[f"proxy_c{conns}"]["requests_per_s"], 1))
    if ratio < MIN_UPSTREAM_RATIO:
        banner = "!" * 78
        say(f"{banner}\n!!! WARNING: the fake upstream is only {ratio:.1f}x faster than the "
            f"proxy (< {MIN_UPSTREAM_RATIO:g}x).\n!!! The upstream or the load generator is the "
            f"bottleneck: THESE NUMBERS MEAN NOTHING.\n{banner}")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    nginx_bin, wrk_bin = ensure_tools(options.install)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llmtrace-bench-") as tmp:
        meta = {"started": dt.datetime.now().isoformat(timespec="seconds"), **_machine(),
                "options": {k: str(v) for k, v in vars(options).items()}}
        _log(f"machine: {meta['nproc']} CPUs, {meta['cpu_model']}; commit {meta['git_commit']}")
        _warn_if_busy(meta["loadavg_at_start"][0])
        try:
            results = {"meta": meta, **run(options, nginx_bin, wrk_bin, Path(tmp))}
        except Exception:
            log = Path(tmp) / "proxy.log"
            if log.exists():
                print("--- proxy log tail ---\n" + "\n".join(
                    log.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
            raise
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    results["meta"]["loadavg_at_end"] = os.getloadavg()
    table = render_table(results)
    path = _save(results, table, options.output)
    meta = results["meta"]
    print(f"\nllmtrace-otel bench ({meta['elapsed_s']:.0f} s, {meta['nproc']} CPUs: wrk, nginx "
          f"and the proxy share them; load average {meta['loadavg_at_start'][0]:.2f} before)\n")
    print(table)
    _warn_if_void(results, print)
    drops = results.get("spans", {}).get("proxy_reported_drops")
    if drops and any(drops.values()):
        print(f"\nThe proxy reports dropped telemetry ({DROPPED_METRIC}):")
        for series, value in drops.items():
            print(f"  {series} {value:,.0f}")
    if results.get("proxy_problem"):
        print(f"\nProxy rows pending: {results['proxy_problem']}")
    print(f"\nraw results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
