"""``serve --workers 2``: relay workers on one port, one telemetry process, one product.

The real command as a child process, the fake upstream as its upstream, plain HTTP clients
in threads: the workers share the port (both accept), every answered call is one stored span
(one writer: the telemetry process), /health lists every worker, a worker killed with
SIGKILL is restarted while the other keeps serving, SIGTERM drains every worker's calls.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.process import ProxyProcess
from tests.support.fake_upstream import FakeUpstream
from tests.support.procfs import child_pids, is_running

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}


def _call(url: str, headers: dict[str, str] | None = None, timeout_s: float = 30.0
          ) -> int:
    request = urllib.request.Request(
        f"{url}/v1/chat/completions", data=json.dumps(CHAT).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Bearer sk-test",
                 **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        return json.loads(response.read())


def _scrape(url: str) -> dict[str, float]:
    """Every sample of /metrics: series -> value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def _traffic(samples: dict[str, float]) -> dict[str, float]:
    """The samples that count traffic (not the processes' CPU time, memory or uptime,
    which move between two scrapes whatever the traffic)."""
    return {series: value for series, value in samples.items()
            if not series.startswith(("process_", "python_"))}


def _total(samples: dict[str, float], prefix: str) -> float:
    return sum(value for series, value in samples.items() if series.startswith(prefix))


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
        try:
            return int(connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
        except sqlite3.OperationalError:  # the exporter has not created its schema yet
            return 0


def _wait_stored(db: Path, expected: int, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    count = _stored(db)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        count = _stored(db)
    return count


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def upstream() -> Any:
    with FakeUpstream() as up:
        yield up


def test_two_workers_share_the_port_and_every_call_is_one_stored_span(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    with ProxyProcess(upstream.url, db, workers=2) as proxy:
        workers = child_pids(proxy.pid)
        assert len(workers) == 2, workers
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: _call(proxy.url), range(200)))
        assert statuses == [200] * 200
        assert _wait_stored(db, 200) == 200
        time.sleep(0.5)  # nothing more arrives: exactly one span per call
        assert _stored(db) == 200

        health = _health(proxy.url)
        assert health["status"] == "healthy", health
        assert health["components"]["workers"] == {
            "state": "ok", "expected": 2, "connected": 2, "restarts": 0}
        assert sorted(w["pid"] for w in health["workers"]) == sorted(workers)
        # each worker accepted connections on the shared port (urllib: one per call)
        accepted = [w["connections"]["accepted"] for w in health["workers"]]
        assert all(count > 0 for count in accepted), accepted
        assert sum(accepted) >= 200
        # the upstream providers as all workers together saw them
        assert health["providers"]["openai"]["calls_in_window"] == 200
        assert health["components"]["exporter.sqlite"]["state"] == "ok"

        # /metrics is the whole, whichever worker answers, and the same five times over:
        # the relay's metrics come from both workers, the chain's (cost) from the
        # telemetry process
        scrapes = [_traffic(_scrape(proxy.url)) for _ in range(5)]
        assert all(scrape == scrapes[0] for scrape in scrapes[1:]), [
            {k: (v, scrape.get(k)) for k, v in scrapes[0].items() if scrape.get(k) != v}
            for scrape in scrapes[1:]]
        whole = scrapes[0]
        assert _total(whole, "llmtrace_requests_total{") == 200
        assert _total(whole, "gen_ai_client_operation_duration_seconds_count{") == 200
        # the fake upstream reports 12 input and 6 output tokens per chat completion
        assert _total(whole, 'llmtrace_tokens_total{direction="input"') == 200 * 12
        assert _total(whole, 'gen_ai_client_token_usage_sum{') == 200 * (12 + 6)
        assert _total(whole, 'http_server_request_duration_seconds_count{') == 200
        assert _total(whole, "llmtrace_cost_usd_total{") > 0
        assert whole["llmtrace_active_connections"] == 0
        assert whole["llmtrace_server_workers"] == 2


def test_a_killed_worker_is_restarted_and_the_other_keeps_serving(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    with ProxyProcess(upstream.url, db, workers=2) as proxy:
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(lambda _: _call(proxy.url), range(40))) == [200] * 40
        requests_before = _total(_scrape(proxy.url), "llmtrace_requests_total{")
        assert requests_before == 40
        stop = threading.Event()
        fast: list[int] = []

        # each call takes 50 ms at the upstream: a client has at most one call ending in
        # any 5 ms (the window in which a worker's ended calls wait to be shipped)
        paced = {"x-fake-scenario": "slow", "x-fake-delay": "0.05"}

        def keep_calling() -> None:
            while not stop.is_set():
                try:
                    fast.append(_call(proxy.url, paced))
                except (urllib.error.URLError, OSError):
                    fast.append(-1)

        # calls in flight in both workers (the upstream answers them after 2 s), and two
        # clients calling without pause
        slow_headers = {"x-fake-scenario": "slow", "x-fake-delay": "2"}
        with ThreadPoolExecutor(8) as pool:
            slow = [pool.submit(_call, proxy.url, slow_headers) for _ in range(8)]
            # every worker's own count (a worker that did not answer within 5 s, as on a
            # loaded machine, is listed "unreachable" without one: ask again)
            def counted() -> list[dict[str, Any]] | None:
                workers = _health(proxy.url)["workers"]
                if all("in_flight" in w for w in workers) and \
                        sum(w["in_flight"] for w in workers) >= 8:
                    return list(workers)
                return None

            _wait(lambda: counted() is not None, 20, "8 calls in flight in the workers")
            workers_now = counted()
            assert workers_now is not None
            # the victim: the worker holding the most of them (connections are spread by a
            # hash, so which one it is, and the share, vary)
            holding = {w["pid"]: w["in_flight"] for w in workers_now}
            victim = max(holding, key=lambda pid: holding[pid])
            survivor = next(pid for pid in holding if pid != victim)
            callers = [threading.Thread(target=keep_calling) for _ in range(2)]
            for caller in callers:
                caller.start()
            time.sleep(0.3)
            os.kill(victim, signal.SIGKILL)
            time.sleep(1.0)
            stop.set()
            for caller in callers:
                caller.join(30)
            slow_outcomes = []
            for future in slow:
                try:
                    slow_outcomes.append(future.result())
                except (urllib.error.URLError, OSError):
                    slow_outcomes.append(-1)

        # the killed worker's calls in flight failed; the survivor's were answered
        assert slow_outcomes.count(-1) == holding[victim], (holding, slow_outcomes)
        assert slow_outcomes.count(200) == holding[survivor], (holding, slow_outcomes)
        assert fast.count(200) > 0
        _wait(lambda: _health(proxy.url)["components"]["workers"]["connected"] == 2, 20,
              "the restarted worker to connect")
        health = _health(proxy.url)
        assert health["components"]["workers"]["restarts"] == 1
        assert survivor in {w["pid"] for w in health["workers"]}
        assert victim not in {w["pid"] for w in health["workers"]}
        restarted = next(w for w in health["workers"] if w["restarts"] == 1)
        assert restarted["last_exit"] == "killed by SIGKILL"
        # the victim's counts stay in the totals: counters do not go down at a restart
        metrics = _scrape(proxy.url)
        assert _total(metrics, "llmtrace_requests_total{") >= requests_before
        assert metrics['llmtrace_server_worker_restarts_total{reason="killed"}'] == 1

        # Every call answered is stored, except those the victim answered in the 5 ms
        # before it was killed (their spans were waiting to be shipped together): at most
        # one per client calling without pause.
        answered = 40 + slow_outcomes.count(200) + fast.count(200)
        stored = _wait_stored(db, answered, 5)
        assert answered - len(callers) <= stored <= answered, (answered, stored)
        # after the restart every call is served and stored: nothing else is lost
        with ThreadPoolExecutor(4) as pool:
            after = list(pool.map(lambda _: _call(proxy.url), range(50)))
        assert after == [200] * 50
        assert _wait_stored(db, stored + 50) == stored + 50


def test_sigterm_drains_every_workers_calls_and_leaves_no_process(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "spans.db"
    proxy = ProxyProcess(upstream.url, db, workers=2, shutdown_timeout_s=10).start()
    workers = child_pids(proxy.pid)
    slow = {"x-fake-scenario": "slow", "x-fake-delay": "1"}
    with ThreadPoolExecutor(6) as pool:
        calls = [pool.submit(_call, proxy.url, slow) for _ in range(6)]
        _wait(lambda: _health(proxy.url)["in_flight"] >= 6, 10, "6 calls in flight")
        assert proxy.terminate() == 0, proxy.output()
        assert [call.result() for call in calls] == [200] * 6
    assert _stored(db) == 6
    assert not any(is_running(pid) for pid in workers)
