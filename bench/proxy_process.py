"""The proxy under test, as a subprocess: start, readiness, RSS, stored spans, stop."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProxyProcess", "count_spans", "read_rss_mb"]


def read_rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB, from /proc/PID/status."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024.0  # kB -> MiB
    return values["VmRSS"], values["VmHWM"]


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
                        "--sqlite-path", str(self.db_path), *self.extra_args]
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
                    if response.status == 200:
                        return
                    last_error = f"/health answered {response.status}"
            except (urllib.error.URLError, OSError) as error:
                last_error = str(error)
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"proxy not healthy after {timeout_s:g} s ({last_error}); "
                           f"command: {' '.join(self.command)}\n{self.log_tail()}")

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

    def rss_mb(self) -> tuple[float, float]:
        return read_rss_mb(self.pid)

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
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        code = self.process.returncode
        self.process = None
        return code
