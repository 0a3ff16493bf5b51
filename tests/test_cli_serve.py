"""The real CLI as a user runs it: serve, SIGTERM with a call in flight, then `traces`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.fake_upstream import REPLY_TEXT, SCENARIO_HEADER, FakeUpstream


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"proxy exited early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("proxy did not become healthy")


def _chat(url: str, scenario: str, delay: float | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-x",
               SCENARIO_HEADER: scenario}
    if delay is not None:
        headers["x-fake-delay"] = str(delay)
    body = json.dumps({"model": "gpt-4o-mini",
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_serve_drains_in_flight_call_on_sigterm_and_traces_lists_it(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    port = _free_port()
    db = tmp_path / "spans.db"
    env = {**os.environ, "LLMTRACE_UPSTREAM_URL": upstream.url,
           "LLMTRACE_SQLITE_PATH": str(db), "LLMTRACE_LOGGING_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmtrace_otel", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = _wait_healthy(url, proc)
        assert health["status"] == "healthy"
        assert _chat(url, "ok")[1]["choices"][0]["message"]["content"] == REPLY_TEXT
        results: list[tuple[int, dict]] = []
        seen = len(upstream.requests)
        slow = threading.Thread(target=lambda: results.append(_chat(url, "slow", 1.0)))
        slow.start()
        # In flight: the upstream has the slow call (and answers it a second later).
        upstream.wait_for_requests(seen + 1, timeout=20)
        proc.send_signal(signal.SIGTERM)
        slow.join(30)
        assert results and results[0][0] == 200, "in-flight call was not drained"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert all(json.loads(line) for line in stderr.splitlines() if line.strip())
    listing = subprocess.run(
        [sys.executable, "-m", "llmtrace_otel", "traces", "--db", str(db), "--json"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["items"]
    assert len(rows) == 2  # both calls stored, the drained one included
    assert {row["request_model"] for row in rows} == {"gpt-4o-mini"}
    table = subprocess.run(
        [sys.executable, "-m", "llmtrace_otel", "traces", "--db", str(db)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert "gpt-4o-mini" in table.stdout and "chat" in table.stdout
