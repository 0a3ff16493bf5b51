"""``WorkerPool`` with tiny real child processes (``python -c``) in place of relay workers."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from llmtrace_otel.supervisor import pool as pool_module
from llmtrace_otel.supervisor.pool import WorkerPool, WorkerState
from llmtrace_otel.supervisor.worker_link import WORKER_ENV, WorkerIdentity
from tests.supervisor.channel_pair import until
from tests.support.procfs import is_running

PORTS = {"server": 18080, "grpc": 14317}
CONTROL = "/tmp/llmtrace-test/control.sock"


def _child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class Restarts:
    """What ``on_restart`` saw: (when, last_exit, restarts, started of the exited process)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str | None, int, float]] = []

    def __call__(self, state: WorkerState) -> None:
        self.seen.append((time.monotonic(), state.last_exit, state.restarts, state.started))


def _pool(argv: Sequence[str], restarts: Restarts | None = None, count: int = 1,
          env: dict[str, str] | None = None) -> WorkerPool:
    return WorkerPool(count, argv=argv, env=env if env is not None else dict(os.environ),
                      ports=PORTS, control_path=CONTROL, on_restart=restarts)


@pytest.mark.parametrize(
    ("code", "described"),
    [("import sys; sys.exit(3)", "exited with status 3"),
     ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL")],
)
def test_a_worker_that_exits_is_restarted_and_its_exit_described(code: str,
                                                                  described: str) -> None:
    restarts = Restarts()

    async def main() -> None:
        pool = _pool(_child(code), restarts)
        await pool.start()
        await until(lambda: len(restarts.seen) >= 2, "two restarts")
        await pool.stop(5.0)
        assert [(exit, count) for _, exit, count, _ in restarts.seen[:2]] == [
            (described, 1), (described, 2)]
        assert pool.status()[0]["last_exit"] == described

    asyncio.run(main())


def test_a_worker_that_keeps_dying_at_once_is_restarted_after_a_growing_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    restarts = Restarts()

    async def main() -> None:
        pool = _pool(_child("raise SystemExit(1)"), restarts)
        await pool.start()
        await until(lambda: len(restarts.seen) >= 3, "three restarts")
        await pool.stop(5.0)

    with caplog.at_level(logging.WARNING, logger=pool_module.__name__):
        asyncio.run(main())
    # the delay between an exit (seen) and the next start: 0.5 s, then 1 s, then 2 s
    (seen_0, *_), (seen_1, _, _, started_1), (_, _, _, started_2) = restarts.seen[:3]
    assert started_1 - seen_0 >= 0.49
    assert started_2 - seen_1 >= 0.99
    assert "restarting it in 0.5 s (restart 1)" in caplog.text
    assert "restarting it in 1.0 s (restart 2)" in caplog.text
    assert "restarting it in 2.0 s (restart 3)" in caplog.text


def test_a_worker_that_ran_a_while_is_restarted_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    # a "quick" exit is one within 5 s of the start; 0.2 s here, so the test takes 1 s
    monkeypatch.setattr(pool_module, "_QUICK_EXIT_S", 0.2)
    restarts = Restarts()

    async def main() -> None:
        pool = _pool(_child("import time; time.sleep(0.4)"), restarts)
        await pool.start()
        await until(lambda: len(restarts.seen) >= 2, "two restarts")
        await pool.stop(5.0)

    with caplog.at_level(logging.WARNING, logger=pool_module.__name__):
        asyncio.run(main())
    assert "exited with status 0 after" in caplog.text
    assert "restarting it (restart 1)" in caplog.text
    assert "restarting it in" not in caplog.text


def test_stop_sigterms_the_workers(tmp_path: Path) -> None:
    async def main() -> None:
        pool = _pool(_child("import time; time.sleep(60)"), count=2)
        await pool.start()
        await until(lambda: all(w.state == "running" for w in pool.workers), "both running")
        await pool.stop(10.0)
        # SIGTERM ended them (a SIGKILL at the deadline would read "killed by SIGKILL")
        assert [(w.state, w.last_exit, w.restarts) for w in pool.workers] == [
            ("stopped", "killed by SIGTERM", 0)] * 2

    asyncio.run(main())


def test_stop_kills_a_worker_that_ignores_sigterm_at_the_deadline(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = ("import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            f" pathlib.Path({str(ready)!r}).touch(); time.sleep(60)")

    async def main() -> None:
        pool = _pool(_child(code))
        await pool.start()
        await until(ready.exists, "the worker to ignore SIGTERM")
        started = time.monotonic()
        await pool.stop(0.5)
        assert time.monotonic() - started >= 0.49
        worker = pool.workers[0]
        assert (worker.state, worker.last_exit) == ("stopped", "killed by SIGKILL")
        assert worker.process is not None and worker.process.returncode == -9

    asyncio.run(main())


def test_each_worker_gets_its_identity_and_its_parents_environment(tmp_path: Path) -> None:
    code = ("import os, pathlib, sys, time; pathlib.Path(sys.argv[1], str(os.getpid()))"
            f".write_text(os.environ[{WORKER_ENV!r}] + '\\n' + os.environ['FROM_PARENT']);"
            " time.sleep(60)")

    async def main() -> list[int | None]:
        pool = _pool([*_child(code), str(tmp_path)], count=2,
                     env={"PATH": os.environ.get("PATH", ""), "FROM_PARENT": "kept"})
        await pool.start()
        await until(lambda: len(list(tmp_path.iterdir())) == 2, "both workers to write")
        await pool.stop(5.0)
        return [worker.pid for worker in pool.workers]

    pids = asyncio.run(main())
    identities = []
    for pid in pids:
        value, from_parent = (tmp_path / str(pid)).read_text().split("\n")
        assert from_parent == "kept"
        identities.append(WorkerIdentity.from_env({WORKER_ENV: value}))
    assert identities == [WorkerIdentity(0, PORTS, CONTROL), WorkerIdentity(1, PORTS, CONTROL)]


def test_a_worker_that_cannot_be_started_is_retried_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    restarts = Restarts()
    missing = tmp_path / "no-such-program"

    async def main() -> None:
        pool = _pool([str(missing)], restarts)
        await pool.start()
        await until(lambda: len(restarts.seen) >= 2, "two attempts")
        assert pool.workers[0].state == "restarting"
        await pool.stop(5.0)
        assert pool.workers[0].state == "stopped"

    with caplog.at_level(logging.WARNING, logger=pool_module.__name__):
        asyncio.run(main())
    assert restarts.seen[0][1] is not None
    assert restarts.seen[0][1].startswith("failed to start: ")  # metric reason "failed"
    assert str(missing) in caplog.text and "restarting it in 0.5 s" in caplog.text


def test_a_worker_starting_while_stop_begins_is_stopped_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Worker 1 exits and is restarted at once just as stop() begins (stop is called from
    on_restart); worker 0 ignores SIGTERM, so stop() waits: the new worker 1, started
    while it waited, must not outlive the pool."""
    monkeypatch.setattr(pool_module, "_QUICK_EXIT_S", 0.0)  # restart at once, no delay
    code = f"""
import json, os, pathlib, signal, sys, time
index = json.loads(os.environ[{WORKER_ENV!r}])["index"]
folder = pathlib.Path({str(tmp_path)!r})
if index == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (folder / "ready").touch()
elif not (folder / "exited").exists():
    while not (folder / "ready").exists():  # worker 0 ignores SIGTERM from now on
        time.sleep(0.01)
    (folder / "exited").touch()
    sys.exit(0)
time.sleep(60)
"""
    stopping: list[asyncio.Task[None]] = []

    async def main() -> tuple[list[str], int | None]:
        pool: WorkerPool

        def stop_now(state: WorkerState) -> None:
            stopping.append(asyncio.ensure_future(pool.stop(1.0)))

        pool = WorkerPool(2, argv=_child(code), env=dict(os.environ), ports=PORTS,
                          control_path=CONTROL, on_restart=stop_now)
        await pool.start()
        await until(lambda: bool(stopping), "worker 1 to exit once")
        await stopping[0]
        return [w.state for w in pool.workers], pool.workers[1].pid

    states, last_pid = asyncio.run(main())
    assert last_pid is not None
    alive = is_running(last_pid)  # the restarted worker 1 (the first one exited)
    if alive:
        os.kill(last_pid, signal.SIGKILL)
    assert not alive, "a worker started while stop() waited outlived the pool"
    assert states == ["stopped", "stopped"]
