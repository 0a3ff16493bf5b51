"""Crafted parameters and bodies are clear 400s, never 500s with tracebacks, and the store
is private on disk (issue: trust, items 10 and 11)."""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.receiver.harness import running_collector
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy
from tests.tenancy.support import chat


def _get(url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("query", [
    "since=999999999999999999999w",
    "since=1" + "0" * 400 + "d",
    "until=9999-12-31T00:00:00Z",
    "since=1800-01-01",
    "cursor=" + base64.urlsafe_b64encode(b"9" * 31 + b":00f067aa0ba902b7").decode().rstrip("="),
])
def test_crafted_query_parameters_are_400(upstream: FakeUpstream, tmp_path: Path,
                                          query: str) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy:
        chat(proxy)  # a store with a call in it
        proxy.spans(1)
        for path in ("/api/v1/traces", "/api/v1/stats"):
            if path.endswith("stats") and query.startswith("cursor"):
                continue
            status, body = _get(f"{proxy.url}{path}?{query}")
            assert status == 400, (path, body)
            assert body["error"]["type"] == "invalid_request_error"


def test_otlp_json_nested_beyond_the_stack_is_400(tmp_path: Path) -> None:
    deep = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with running_collector(tmp_path) as collector:
        request = urllib.request.Request(f"{collector.http_url}/v1/traces", data=deep,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert b"Traceback" not in caught.value.read()


def test_the_store_is_private_on_disk(upstream: FakeUpstream, tmp_path: Path) -> None:
    directory = tmp_path / "new" / "data"
    previous = os.umask(0o022)  # the common default: files 0644, directories 0755
    try:
        with running_proxy(upstream.url, tmp_path, sqlite_path=str(directory / "s.db"),
                           capture_content=True) as proxy:
            chat(proxy)
            proxy.spans(1)
            proxy.telemetry.force_flush()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert {p.name for p in directory.iterdir()} >= {"s.db", "s.db.tenant-key"}
