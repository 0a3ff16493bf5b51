"""The relays under test, as subprocesses: the proxy (start, readiness, its workers' connections,
stored spans, stop) and ``bench/baseline_relay.py``, the same relay without telemetry."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BaselineRelay", "ProxyProcess", "count_spans"]

BASELINE_SCRIPT = Path(__file__).with_name("baseline_relay.py")


def count_spans(db_path: Path) -> int:
    """``SELECT COUNT(*) FROM spans``, read-only (the proxy may still be writing)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0])


def _clean_env() -> dict[str, str]:
    """Our environment minus LLMTRACE_*/OTEL_* settings, so only the CLI flags apply."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith(("LLMTRACE_", "OTEL_"))}


@dataclass
class ProxyProcess:
    """``llmtrace-otel serve`` on a free loopback port, storing spans in ``db_path``."""

    executable: Path
    upstream_url: str
    db_path: Path
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=list)
    #: More ``serve`` flags (``--proxy-arg`` of run.py), e.g. limits to measure their cost.
    extra_args: list[str] = field(default_factory=list)
    #: ``serve --workers N``: N relay workers and a telemetry process (1: one process).
    workers: int = 1
    #: Store spans in this PostgreSQL database instead of ``db_path`` (run.py --postgres).
    storage_url: str | None = None
    #: Spans in that database before the run (an existing database may hold some).
    _baseline: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("proxy is not running")
        return self.process.pid

    def start(self, ready_timeout_s: float = 30.0) -> ProxyProcess:
        self.command = [str(self.executable), "serve", "--host", "127.0.0.1",
                        "--port", str(self.port), "--upstream-url", self.upstream_url,
                        "--sqlite-path", str(self.db_path),
                        *(["--workers", str(self.workers)] if self.workers != 1 else []),
                        *self.extra_args]
        if self.storage_url:
            self.command += ["--storage-url", self.storage_url]
            self._baseline = self.stored()
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                        env=_clean_env())
        self._wait_healthy(ready_timeout_s)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"proxy exited with {self.process.returncode} before it was healthy; "
                    f"command: {' '.join(self.command)}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    last_error = f"/health answered {response.status}"
                    if response.status == 200:
                        last_error = self._workers_missing(json.load(response))
                        if not last_error:
                            return
            except (urllib.error.URLError, OSError, ValueError) as error:
                last_error = str(error)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"proxy not healthy after {timeout_s:g} s ({last_error}); "
                           f"command: {' '.join(self.command)}\n{self.log_tail()}")

    def _workers_missing(self, health: dict[str, object]) -> str:
        """Why not every relay worker is up yet ("" when they are, or with one process)."""
        if self.workers == 1:
            return ""
        workers = health.get("workers")
        running = [w for w in workers if isinstance(w, dict) and w.get("state") == "running"
                   and w.get("status") == "healthy"] if isinstance(workers, list) else []
        if len(running) == self.workers:
            return ""
        return f"{len(running)} of {self.workers} relay workers running and healthy"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def scrape_metric(self, name: str) -> dict[str, float]:
        """Samples of one Prometheus metric from the proxy's /metrics ({} if unavailable)."""
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
                text = response.read().decode(errors="replace")
        except (urllib.error.URLError, OSError):
            return {}
        samples = {}
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                samples[series] = float(value)
        return samples

    def accepted_by_worker(self) -> dict[int, int]:
        """Connections each relay worker has accepted so far, by its pid, from /health ({} with
        one process, or if /health does not answer). The /health request itself counts."""
        if self.workers == 1:
            return {}
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                health = json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return {}
        return {int(w["pid"]): int(w["connections"]["accepted"])
                for w in health.get("workers", []) if "connections" in w}

    def wait_for_spans(self, expected: int, *, settle_s: float = 3.0,
                       max_wait_s: float = 30.0) -> int:
        """Poll the span count until it reaches ``expected`` or stops changing for ``settle_s``."""
        deadline = time.monotonic() + max_wait_s
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            current = self.stored()
            if current >= expected:
                return current
            if current != last:
                last, stable_since = current, time.monotonic()
            elif time.monotonic() - stable_since >= settle_s:
                return current
            time.sleep(0.25)
        return max(last, 0)

    def stored(self) -> int:
        """Spans this proxy stored so far (in the SQLite file or the PostgreSQL database)."""
        if self.storage_url:
            import psycopg

            with psycopg.connect(self.storage_url) as conn:
                exists = conn.execute("SELECT to_regclass('spans')").fetchone()
                if exists is None or exists[0] is None:
                    return 0
                row = conn.execute("SELECT count(*) FROM spans").fetchone()
                return int(row[0] if row else 0) - self._baseline
        return count_spans(self.db_path) if self.db_path.exists() else 0

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (graceful: flush), then SIGKILL; returns the exit code."""
        code = _terminate(self.process, timeout_s)
        self.process = None
        return code


def _terminate(process: subprocess.Popen[bytes] | None, timeout_s: float) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout_s``; the exit code (None if never started)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


@dataclass
class BaselineRelay:
    """``bench/baseline_relay.py PORT UPSTREAM --uvloop``: the proxy's relay without telemetry.

    It reads the whole upstream response before it answers (``await response.read()``), so it
    does not relay a stream chunk by chunk: its time to first chunk is not measured.
    """

    upstream_url: str
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("baseline relay is not running")
        return self.process.pid

    def start(self, ready_timeout_s: float = 30.0) -> BaselineRelay:
        command = [sys.executable, str(BASELINE_SCRIPT), str(self.port), self.upstream_url,
                   "--uvloop"]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env=_clean_env())
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited with {self.process.returncode} "
                                   f"at start:\n{self.log_path.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{' '.join(command)} did not listen within {ready_timeout_s:g} s")

    def stop(self) -> None:
        _terminate(self.process, 10.0)
        self.process = None
