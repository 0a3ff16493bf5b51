"""The PostgreSQL store under faults, with the real proxy and a real server: down at start,
down under load and back, a full disk, a read-only server. Traffic is never affected; every
span is stored or counted as dropped; the store's state is on /health (password masked)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmtrace_otel.exporters.postgres.exporter import PostgresSpanExporter
from llmtrace_otel.exporters.postgres.store import PostgresSpanStore
from tests.reliability.conftest import FAST_BREAKERS
from tests.reliability.load import Books, Probe, health, mix, run_load, wait_until
from tests.support.fake_upstream import FakeUpstream
from tests.support.postgres_server import PostgresCluster, find_binaries, tiny_tmpfs
from tests.support.proxy_harness import RunningProxy, running_proxy
from tests.support.stores import new_database


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    """A server of this test's own: the test stops and starts it."""
    bindir = find_binaries()
    if bindir is None:
        pytest.skip("no PostgreSQL server is installed (`make postgresql` installs it)")
    with PostgresCluster(bindir) as server:
        yield server


def stored(url: str) -> int:
    store = PostgresSpanStore(url)
    try:
        return store.count()
    finally:
        store.close()


def store_state(proxy: RunningProxy) -> dict[str, Any]:
    component = health(proxy.url)["components"]["exporter.postgres"]
    return {"state": component["state"], **component["store"]}


def settle(proxy: RunningProxy, sent: int) -> Books:
    wait_until(lambda: Books.read(proxy.url).requests >= sent, what=f"{sent} spans ended")
    proxy.telemetry.tracer_provider.force_flush(30_000)
    return Books.read(proxy.url)


def test_down_at_start_serves_degraded_then_stores_without_restart(
        upstream: FakeUpstream, tmp_path: Path, cluster: PostgresCluster) -> None:
    url = cluster.create_database("store").replace("postgres@", "postgres:pw-7781@")
    cluster.stop()
    with running_proxy(upstream.url, tmp_path, storage_url=url, storage_retry_s=60) as proxy:
        report = run_load(proxy.url, mix(30), concurrency=4)
        report.assert_all_answered()  # traffic as usual
        wait_until(lambda: store_state(proxy)["state"] == "unavailable", what="unavailable")
        state = store_state(proxy)
        assert health(proxy.url)["status"] == "degraded"
        assert "pw-7781" not in str(health(proxy.url)) and ":****@" in state["database"]
        cluster.start()  # the same port and data: the held batch and the queue go in
        books = settle(proxy, 30)
        assert books.dropped("export.postgres") == 0
        wait_until(lambda: stored(url) == 30, timeout_s=60, what="30 spans stored")
        wait_until(lambda: store_state(proxy)["state"] == "ok", what="the store ok again")


def test_an_outage_under_load_loses_only_what_it_counts(
        upstream: FakeUpstream, tmp_path: Path, cluster: PostgresCluster) -> None:
    url = cluster.create_database("store")
    sent = [0]
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            report = run_load(proxy.url, mix(40), concurrency=8)
            report.assert_all_answered()
            sent[0] += len(report.outcomes)

    # A small export queue, so that the outage overflows it and the overflow is counted.
    with running_proxy(upstream.url, tmp_path, storage_url=url, storage_retry_s=60,
                       analysis_queue_size=256) as proxy:
        warm = run_load(proxy.url, mix(40), concurrency=8)
        warm.assert_all_answered()
        sent[0] += len(warm.outcomes)
        wait_until(lambda: stored(url) >= 40, what="warm-up stored")
        thread = threading.Thread(target=traffic, daemon=True)
        with Probe(proxy.port) as probe:
            thread.start()
            time.sleep(0.5)
            cluster.stop()  # the same mechanism as a 30 s outage, shorter
            wait_until(lambda: store_state(proxy)["state"] == "unavailable", timeout_s=30,
                       what="the outage on /health")
            # Down until the queue has overflowed (a few seconds at this traffic): the held
            # batch and a full queue are what a 30 s outage leaves, and what must survive.
            wait_until(lambda: Books.read(proxy.url).dropped("export.postgres") > 0,
                       timeout_s=60, what="the export queue to overflow")
            cluster.start()
            time.sleep(1)
            stop.set()
            thread.join(60)
        probe.assert_responsive()
        books = settle(proxy, sent[0])
        dropped = books.dropped("export.postgres")
        assert dropped == books.dropped("export.postgres", "queue_full") > 0
        assert books.dropped("analysis") == 0
        wait_until(lambda: stored(url) == sent[0] - dropped, timeout_s=60,
                   what=f"{sent[0] - dropped} of {sent[0]} spans stored")
        assert store_state(proxy)["state"] == "ok"


def _big_call(proxy: RunningProxy) -> None:
    # Random text: TOAST cannot compress it away.
    content = os.urandom(24_000).hex()
    openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0).chat \
        .completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": content}])


def test_a_full_disk_is_counted_and_shown(upstream: FakeUpstream, tmp_path: Path,
                                          cluster: PostgresCluster) -> None:
    try:
        disk = tiny_tmpfs("24m", cluster.user)
        where = disk.__enter__()
    except PermissionError as exc:
        pytest.skip(f"a full disk needs a tiny tmpfs: {exc}")
    try:
        cluster.execute(f"CREATE TABLESPACE tiny LOCATION '{where}'")
        url = cluster.create_database("full", tablespace="tiny")
        with running_proxy(upstream.url, tmp_path, storage_url=url, capture_content=True,
                           **FAST_BREAKERS) as proxy:
            sent = 0

            def filled() -> bool:
                nonlocal sent
                for _ in range(20):
                    _big_call(proxy)  # raises unless answered 200
                    sent += 1
                proxy.telemetry.tracer_provider.force_flush(30_000)
                # (a smaller batch may still fit after a failed one: the state can be ok for a
                # moment; traffic goes on until /health shows the full disk)
                state = store_state(proxy)
                return (Books.read(proxy.url).dropped("export.postgres") > 0
                        and state["state"] == "failing"
                        and "disk is full" in str(state.get("error")))

            wait_until(filled, timeout_s=180, what="the full disk on /health")
            books = settle(proxy, sent)
            lost = books.dropped("export.postgres")
            assert lost == books.dropped("export.postgres", "export_failed") + \
                books.dropped("export.postgres", "circuit_open")
            assert stored(url) == sent - lost  # everything else is there
        cluster.drop_database("full")
        cluster.execute("DROP TABLESPACE tiny")
    finally:
        disk.__exit__(None, None, None)


def test_a_read_only_server_is_a_clear_error_and_counted(
        upstream: FakeUpstream, tmp_path: Path, postgres_cluster: PostgresCluster) -> None:
    with new_database(postgres_cluster) as url:
        PostgresSpanExporter(url).maintain()  # the primary's schema, as a replica has it
        name = url.rsplit("/", 1)[1]
        postgres_cluster.execute(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        with running_proxy(upstream.url, tmp_path, storage_url=url, **FAST_BREAKERS) as proxy:
            report = run_load(proxy.url, mix(20), concurrency=4)
            report.assert_all_answered()
            books = settle(proxy, 20)
            assert books.dropped("export.postgres") == 20  # every span counted
            state = store_state(proxy)
            assert state["state"] == "failing" and "read-only" in state["error"]
            assert health(proxy.url)["status"] == "degraded"
        assert stored(url) == 0
