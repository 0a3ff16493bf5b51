"""Benchmark: direct to a fast fake upstream (nginx), through the baseline relay (the same
relay with no telemetry) and through the llmtrace-otel proxy, once per ``--workers N``, in one
run.

Run with ``make bench`` or ``.venv/bin/python bench/run.py [--quick] [--workers 1 --workers 2]``;
see bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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

from nginx_upstream import NginxUpstream, free_port
from proxy_process import BaselineRelay, ProxyProcess
from report import BASELINE, DIRECT, MIN_UPSTREAM_RATIO, primary_proxy, proxy_label, render_table
from report_cpu import render_cpu_table
from session import Session, Target, log

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
from tests.support.postgres_server import PostgresCluster, find_binaries  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
APT_PACKAGES = ("nginx-light", "wrk")
BUSY_LOADAVG = 0.5
DROPPED_METRIC = "llmtrace_telemetry_dropped_total"
RESTARTS_METRIC = "llmtrace_server_worker_restarts_total"
BASELINE_NOT_STREAMED = ("baseline_relay.py reads the whole upstream response before it "
                         "answers: it does not relay a stream chunk by chunk")


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
    workers: tuple[int, ...] = (1,)
    rounds: int = 3
    storage_url: str | None = None
    postgres: bool = False


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="~1 minute: 1 round, 100 TTFC samples, 20k requests for RSS")
    parser.add_argument("--duration", type=int,
                        help="seconds per round of a measured wrk phase (default 3)")
    parser.add_argument("--rounds", type=_at_least_one,
                        help="rounds per measured wrk phase, the targets taking turns; the "
                             "tables give the median round (default 3, --quick 1)")
    parser.add_argument("--warmup", type=int, help="seconds of wrk warm-up (default 2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--ttfc-samples", type=int, help="sequential samples per side (300)")
    parser.add_argument("--requests-for-rss", type=int, metavar="N",
                        help="push ~N requests through the proxy in total before the last RSS "
                             "reading (default 100000; RSS is also read at N/2)")
    parser.add_argument("--workers", type=_at_least_one, action="append", metavar="N",
                        help="measure `serve --workers N`, repeatable (e.g. --workers 1 "
                             "--workers 2); the first is the proxy of the main table "
                             "(default: 1 only)")
    parser.add_argument("--direct-only", action="store_true",
                        help="measure nginx only; relay and proxy rows are marked pending")
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
    if any(flag.split("=")[0] == "--workers" for flag in args.proxy_arg):
        parser.error("use --workers N (repeatable), not --proxy-arg=--workers")
    quick = bool(args.quick)
    return Options(
        duration_s=args.duration or 3,
        rounds=args.rounds or (1 if quick else 3),
        warmup_s=args.warmup or (1 if quick else 2),
        connections=args.connections,
        ttfc_samples=args.ttfc_samples or (100 if quick else 300),
        requests_for_rss=args.requests_for_rss or (20_000 if quick else 100_000),
        direct_only=args.direct_only,
        install=not args.no_install,
        proxy_bin=args.proxy_bin,
        output=args.output,
        proxy_arg=tuple(args.proxy_arg),
        workers=tuple(dict.fromkeys(args.workers or [1])),
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


def _measure_phases(session: Session, options: Options) -> None:
    """Warm-up, loaded, single-connection and streaming phases. Within a phase the targets
    take turns, round after round, so that all of them see the machine in the same states."""
    targets = session.targets
    for target in targets:
        session.unmeasured(target, options.connections, options.warmup_s, "warmup")
    for connections in (options.connections, 1):
        rounds: dict[str, list[dict[str, Any]]] = {target.name: [] for target in targets}
        for index in range(1, options.rounds + 1):
            for target in targets:
                rounds[target.name].append(
                    session.measured_round(target, connections, options.duration_s, index))
        for target in targets:
            session.record_phase(target, connections, rounds[target.name])
    for target in targets:
        if target.name == BASELINE:
            session.results["ttfc"][BASELINE] = {"not_measured": BASELINE_NOT_STREAMED}
        else:
            session.ttfc(target)


def _measure_memory(session: Session, target: Target, requests_for_rss: int) -> None:
    """RSS of the main proxy after half of ``requests_for_rss`` and after all of them."""
    rps = session.results["phases"][f"{target.name}_c{session.connections}"]["requests_per_s"]
    first = max(target.sent, requests_for_rss // 2)
    session.push_until(target, first, rps)
    session.results["rss"].append(session.read_rss(target))
    session.push_until(target, max(requests_for_rss, first + requests_for_rss // 2), rps)
    session.results["rss"].append(session.read_rss(target))


def _check_spans(session: Session, target: Target) -> None:
    """Stored spans against the requests sent to one proxy, and what it says it dropped."""
    assert target.proxy is not None
    log(f"waiting for {target.name} to flush spans to SQLite")
    stored = target.proxy.wait_for_spans(target.sent)
    dropped = target.proxy.scrape_metric(DROPPED_METRIC)
    restarts = target.proxy.scrape_metric(RESTARTS_METRIC)
    session.results["proxies"][target.name].update(
        spans={"stored": stored, "sent": target.sent, "completed": target.completed,
               "proxy_reported_drops": dropped},
        worker_restarts=sum(restarts.values()))
    if any(dropped.values()):
        log(f"{target.name} reports dropped telemetry: {dropped}")
    if any(restarts.values()):
        log(f"!!! {target.name} restarted relay workers during the run: {restarts}")
    log(f"{target.name}: spans stored {stored:,} / requests sent {target.sent:,} "
        f"({target.completed:,} completed)")


def _start_relays(session: Session, options: Options, nginx: NginxUpstream,
                  problems: dict[str, str], stoppable: list[BaselineRelay | ProxyProcess],
                  storage_url: str | None) -> None:
    """The baseline relay and one proxy per worker count, each on its own port; a relay that
    does not start is recorded in ``problems`` and its rows stay pending."""
    workdir = session.workdir
    try:
        baseline = BaselineRelay(nginx.url, workdir / "baseline.log", free_port()).start()
        stoppable.append(baseline)
        session.targets.append(Target(BASELINE, baseline.port, baseline.pid))
        log(f"baseline relay at {baseline.url} (pid {baseline.pid})")
    except RuntimeError as error:
        problems[BASELINE] = str(error)
        log(f"!!! BASELINE RELAY DID NOT START; its rows are pending:\n{error}")
    if "proxy" in problems:
        return
    for workers in options.workers:
        name = proxy_label(workers)
        proxy = ProxyProcess(executable=options.proxy_bin, upstream_url=nginx.url,
                             db_path=workdir / f"{name}.db", log_path=workdir / f"{name}.log",
                             port=free_port(), extra_args=list(options.proxy_arg),
                             workers=workers, storage_url=storage_url)
        log(f"starting {name}: {options.proxy_bin} serve --workers {workers} ... "
            f"--upstream-url {nginx.url}")
        try:
            proxy.start()
        except RuntimeError as error:
            problems[name] = str(error)
            log(f"!!! {name.upper()} DID NOT START; its rows are pending:\n{error}")
            continue
        stoppable.append(proxy)
        session.targets.append(Target(name, proxy.port, proxy.pid, proxy=proxy))
        session.results["proxies"][name] = {"workers": workers, "command": proxy.command}
        log(f"{name} healthy at {proxy.url} (pid {proxy.pid})")


def run(options: Options, nginx_bin: str, wrk_bin: str, workdir: Path) -> dict[str, Any]:
    problems: dict[str, str] = {}
    if options.direct_only:
        problems["proxy"] = problems[BASELINE] = "--direct-only"
    elif (problem := proxy_usable(options.proxy_bin)) is not None:
        problems["proxy"] = problem
        log(f"!!! PROXY NOT AVAILABLE ({problem}); proxy rows pending")
    nginx = NginxUpstream(nginx_bin, workdir / "nginx").start()
    assert nginx.process is not None
    log(f"nginx fake upstream at {nginx.url}")
    session = Session(wrk=wrk_bin, workdir=workdir, connections=options.connections,
                      ttfc_samples=options.ttfc_samples)
    session.targets.append(Target(DIRECT, nginx.port, nginx.process.pid))
    session.results["primary_proxy"] = proxy_label(options.workers[0])
    stoppable: list[BaselineRelay | ProxyProcess] = []
    cluster = None
    storage_url = options.storage_url
    if options.postgres and "proxy" not in problems:
        bindir = find_binaries()
        if bindir is None:
            nginx.stop()
            raise SystemExit("--postgres: no PostgreSQL server installed (make postgresql)")
        cluster = PostgresCluster(bindir, durable=True, settings={"shared_buffers": "256MB"})
        cluster.start()
        storage_url = cluster.create_database("bench")
        log(f"throw-away PostgreSQL at port {cluster.port}: spans go to {storage_url}")
    try:
        if not options.direct_only:
            _start_relays(session, options, nginx, problems, stoppable, storage_url)
        _measure_phases(session, options)
        proxies = [t for t in session.targets if t.proxy is not None]
        for target in proxies:
            if target.name == primary_proxy(session.results):
                _measure_memory(session, target, options.requests_for_rss)
            _check_spans(session, target)
            if target.name == primary_proxy(session.results):
                session.results["rss_idle_after_flush"] = session.read_rss(target)
    finally:
        _stop(session, stoppable)
        nginx.stop()
        if cluster is not None:
            cluster.close()
    session.results["problems"] = problems
    return session.results


def _stop(session: Session, stoppable: list[BaselineRelay | ProxyProcess]) -> None:
    for relay in stoppable:
        if isinstance(relay, BaselineRelay):
            relay.stop()
            continue
        name = next(t.name for t in session.targets if t.proxy is relay)
        entry = session.results["proxies"][name]
        entry["exit_code"] = relay.stop()
        if entry.get("spans") and (relay.storage_url or relay.db_path.exists()):
            entry["spans"]["stored_after_shutdown"] = relay.stored()


def _save(results: dict[str, Any], tables: str, output: Path | None) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = output or RESULTS_DIR / f"bench-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    path.with_suffix(".md").write_text(tables + "\n")
    return path


def _warn_if_busy(load1: float) -> None:
    if load1 > BUSY_LOADAVG:
        log(f"!!! the machine is busy before the run (1-min load average {load1:.2f}); other "
            f"processes share the cores with wrk, nginx and the relays, so expect noisy numbers")


def _warn_if_void(results: dict[str, Any], say: Callable[[str], None]) -> None:
    phases, conns = results["phases"], results["connections"]
    proxy = phases.get(f"{primary_proxy(results)}_c{conns}")
    if proxy is None:
        return
    ratio = phases[f"{DIRECT}_c{conns}"]["requests_per_s"] / max(proxy["requests_per_s"], 1)
    if ratio < MIN_UPSTREAM_RATIO:
        banner = "!" * 78
        say(f"{banner}\n!!! WARNING: the fake upstream is only {ratio:.1f}x faster than the "
            f"proxy (< {MIN_UPSTREAM_RATIO:g}x).\n!!! The upstream or the load generator is the "
            f"bottleneck: THESE NUMBERS MEAN NOTHING.\n{banner}")


def _print_summary(results: dict[str, Any], tables: str, path: Path) -> None:
    meta = results["meta"]
    during = [phase["loadavg_at_end"][0] for phase in results["phases"].values()]
    print(f"\nllmtrace-otel bench ({meta['elapsed_s']:.0f} s, {meta['nproc']} CPUs: wrk, nginx "
          f"and the relays share them; 1-min load average {meta['loadavg_at_start'][0]:.2f} "
          f"before, {min(during, default=0):.2f}-{max(during, default=0):.2f} at the end of "
          f"the measured phases, {meta['loadavg_at_end'][0]:.2f} after)\n")
    print(tables)
    _warn_if_void(results, print)
    for name, proxy in results["proxies"].items():
        drops = proxy.get("spans", {}).get("proxy_reported_drops")
        if drops and any(drops.values()):
            print(f"\n{name} reports dropped telemetry ({DROPPED_METRIC}):")
            for series, value in drops.items():
                print(f"  {series} {value:,.0f}")
        if proxy.get("worker_restarts"):
            print(f"\n{name} restarted {proxy['worker_restarts']:.0f} relay worker(s) "
                  f"({RESTARTS_METRIC})")
    for name, problem in results["problems"].items():
        print(f"\n{name} rows pending: {problem}")
    print(f"\nraw results: {path}")


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    nginx_bin, wrk_bin = ensure_tools(options.install)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llmtrace-bench-") as tmp:
        meta = {"started": dt.datetime.now().isoformat(timespec="seconds"), **_machine(),
                "options": {k: str(v) for k, v in vars(options).items()}}
        log(f"machine: {meta['nproc']} CPUs, {meta['cpu_model']}; commit {meta['git_commit']}")
        _warn_if_busy(meta["loadavg_at_start"][0])
        try:
            results = {"meta": meta, **run(options, nginx_bin, wrk_bin, Path(tmp))}
        except Exception:
            for log_file in sorted(Path(tmp).glob("*.log")):
                print(f"--- {log_file.name} tail ---\n" + "\n".join(
                    log_file.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
            raise
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    results["meta"]["loadavg_at_end"] = os.getloadavg()
    tables = render_table(results) + "\n\n" + render_cpu_table(results)
    path = _save(results, tables, options.output)
    _print_summary(results, tables, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
