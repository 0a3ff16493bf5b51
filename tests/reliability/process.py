"""The real ``llmtrace-otel serve`` as a child process: for what only a process can show
(its own RSS, SIGTERM, kill -9 in the middle of SQLite writes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

__all__ = ["ProxyProcess"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProxyProcess:
    """``python -m llmtrace_otel serve`` on a free port; ``with`` stops it with SIGTERM."""

    def __init__(self, upstream_url: str, db: Path, **settings: Any) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        flags = {"port": self.port, "upstream_url": upstream_url,
                 "anthropic_upstream_url": upstream_url, "sqlite_path": str(db),
                 "log_level": "WARNING", "api_enabled": False, **settings}
        self.argv = [sys.executable, "-m", "llmtrace_otel", "serve"]
        for name, value in flags.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                self.argv.append(flag if value else "--no-" + flag[2:])
            else:
                self.argv += [flag, str(value)]
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 30.0) -> ProxyProcess:
        if self.process is not None:
            raise RuntimeError("ProxyProcess.start() called twice; make a new one to restart")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        self.process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited with {self.process.returncode}:\n"
                                   f"{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the proxy did not answer within {timeout_s} s:\n"
                                       f"{self.output()}") from None
                time.sleep(0.05)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (graceful: drain, flush) and wait; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> int:
        """SIGKILL: no drain, no flush, no goodbye."""
        assert self.process is not None
        self.process.kill()
        return self.process.wait(30)

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                try:
                    self.terminate()
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            self._log.close()
