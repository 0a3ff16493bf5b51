"""Tenant ids derived from API keys survive a restart without tenancy.key_secret."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from llmtrace_otel.tenancy.key_secret import load_or_create_secret, secret_path_for
from llmtrace_processors.attributes import LLMTRACE_TENANT_ID
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy
from tests.tenancy.support import chat


def _key_tenant(upstream: FakeUpstream, tmp_path: Path, **overrides: object) -> str:
    with running_proxy(upstream.url, tmp_path, **overrides) as proxy:
        chat(proxy, api_key="sk-live-restart")
        tenant = (proxy.only_span().attributes or {})[LLMTRACE_TENANT_ID]
    assert isinstance(tenant, str) and tenant.startswith("key-")
    return tenant


def test_a_restart_keeps_every_key_derived_tenant(upstream: FakeUpstream, tmp_path: Path) -> None:
    first = _key_tenant(upstream, tmp_path)
    secret = secret_path_for(tmp_path / "spans.db")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert _key_tenant(upstream, tmp_path) == first  # the same process config, restarted
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert _key_tenant(upstream, other) != first  # another store: another secret
    assert _key_tenant(upstream, other, tenant_key_secret="configured-secret") == \
        _key_tenant(upstream, tmp_path, tenant_key_secret="configured-secret")


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "store" / "spans.db.tenant-key"
    results: list[tuple[str, bool]] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        results.append(load_or_create_secret(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({secret for secret, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_an_unusable_secret_file_is_a_warning_and_traffic_goes_on(
        upstream: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret_path_for(tmp_path / "spans.db").write_text("\n")
    with running_proxy(upstream.url, tmp_path) as proxy:
        chat(proxy, api_key="sk-live-restart")
        assert proxy.only_span()
    assert any("spans.db.tenant-key cannot be used" in r.getMessage() and
               "change at every restart" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
