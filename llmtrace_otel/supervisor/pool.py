"""The relay worker processes: started, watched, restarted, stopped.

Each worker is a fresh ``llmtrace-otel`` process started with the same command line and
environment as its parent, plus :data:`~llmtrace_otel.supervisor.worker_link.WORKER_ENV`
naming its index, the ports it listens on (each worker with its own ``SO_REUSEPORT``
socket: the kernel spreads new connections evenly over the workers, and a worker that is
down gets none) and the control socket of the telemetry process. Workers are started as
new processes, not forked: the telemetry process runs threads (exporters, analysis), and a
fork of a threaded process can inherit locks held by threads that do not exist in the
child.

A worker that exits while the pool is running is restarted at once, and counted and logged
with its exit status; one that keeps dying within seconds of its start (or cannot be
started at all: a process limit, memory) is restarted with a growing delay (up to 30 s), so
a broken configuration does not spin the machine. :meth:`WorkerPool.stop` stops every
worker, including one being started at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from llmtrace_otel.supervisor.worker_link import WORKER_ENV, WorkerIdentity

__all__ = ["WorkerPool", "WorkerState"]

_log = logging.getLogger(__name__)
_QUICK_EXIT_S = 5.0
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MAX_BACKOFF_S = 30.0


@dataclass
class WorkerState:
    """One worker slot: its current process and its history."""

    index: int
    pid: int | None = None
    started: float = 0.0
    restarts: int = 0
    last_exit: str | None = None
    state: str = "starting"
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "pid": self.pid,
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "uptime_s": round(time.monotonic() - self.started, 3) if self.pid else 0,
            "rss_bytes": _rss_bytes(self.pid) if self.pid else None,
        }


def _rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (Linux /proc; None elsewhere or when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class WorkerPool:
    """``count`` worker processes running ``argv`` (see the module docstring)."""

    def __init__(
        self,
        count: int,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        ports: Mapping[str, int],
        control_path: str,
        on_restart: Callable[[WorkerState], None] | None = None,
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._ports = dict(ports)
        self._control_path = control_path
        self._on_restart = on_restart
        self.workers = [WorkerState(index) for index in range(count)]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stop_requested = asyncio.Event()

    def status(self) -> list[dict[str, object]]:
        return [worker.as_dict() for worker in self.workers]

    async def start(self) -> None:
        self._tasks = [
            asyncio.get_running_loop().create_task(self._keep_alive(worker))
            for worker in self.workers
        ]

    async def _spawn(self, worker: WorkerState) -> asyncio.subprocess.Process:
        identity = WorkerIdentity(worker.index, self._ports, self._control_path)
        process = await asyncio.create_subprocess_exec(
            *self._argv, env={**self._env, WORKER_ENV: identity.to_env()}
        )
        worker.process, worker.pid = process, process.pid
        worker.started, worker.state = time.monotonic(), "running"
        return process

    async def _keep_alive(self, worker: WorkerState) -> None:
        backoff = 0.0
        while not self._stopping:
            try:
                process = await self._spawn(worker)
            except OSError as exc:  # fork or exec failed: a process limit, memory, ...
                worker.pid, lived = None, 0.0
                worker.last_exit = f"failed to start: {exc}"
                what = worker.last_exit
            else:
                if self._stopping:  # stop() began while it was starting: not among those
                    _signal(process, signal.SIGTERM)  # it signalled
                returncode = await process.wait()
                worker.last_exit = _describe(returncode)
                if self._stopping:
                    break
                lived = time.monotonic() - worker.started
                what = f"(pid {process.pid}) {worker.last_exit} after {lived:.1f} s"
            worker.restarts += 1
            worker.state = "restarting"
            backoff = min(_MAX_BACKOFF_S, max(0.5, backoff * 2)) if lived < _QUICK_EXIT_S else 0.0
            _log.warning("worker %d %s; restarting it%s (restart %d)", worker.index, what,
                         f" in {backoff:.1f} s" if backoff else "", worker.restarts)
            if self._on_restart is not None:
                self._on_restart(worker)
            if backoff:  # cut short by stop()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), backoff)
        worker.state = "stopped"

    def _running(self) -> list[asyncio.subprocess.Process]:
        return [w.process for w in self.workers
                if w.process is not None and w.process.returncode is None]

    async def stop(self, timeout_s: float) -> None:
        """SIGTERM every worker (each drains its calls), SIGKILL those left at the deadline;
        a worker that was starting when ``stop`` began is stopped the same way."""
        self._stopping = True
        self._stop_requested.set()
        for process in self._running():
            _signal(process, signal.SIGTERM)
        # each task ends once its process has exited (it records how) or, waiting to
        # restart one, at once
        pending: set[asyncio.Task[None]] = set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        if pending:
            for process in self._running():
                _log.warning("worker pid %d did not stop within %.0f s; killing it",
                             process.pid, timeout_s)
                _signal(process, signal.SIGKILL)
            _, pending = await asyncio.wait(pending, timeout=5.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)
