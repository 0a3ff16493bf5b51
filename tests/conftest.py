from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.postgres_server import PostgresCluster, find_binaries
from tests.support.proxy_harness import RunningProxy, running_proxy
from tests.support.stores import new_database


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """Prints the random order's seed last, next to any failure, for replaying the run."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"random test order, seed {seed}: replay it with "
                                    f"`make test PYTEST_ARGS=--randomly-seed={seed}` "
                                    "(docs/testing.md)")


@pytest.fixture(scope="module", autouse=True)
def no_event_loop_left_running() -> Iterator[None]:
    """Fails the module that leaves an event loop registered as running in the main thread.

    Such a module breaks every asyncio.run() of whatever module runs after it, which random
    order (pytest-randomly, docs/testing.md) turns into failures far from the cause; this
    check names the module instead. Set up first, it is torn down after the module's own
    fixtures."""
    yield
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    pytest.fail(f"this module left the event loop {loop!r} running in the main thread: "
                "every later asyncio.run() would fail", pytrace=False)


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def proxy(upstream: FakeUpstream, tmp_path: Path) -> Iterator[RunningProxy]:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL server for the whole session (tests/support/postgres_server.py);
    each test or module makes its own database on it."""
    bindir = find_binaries()
    if bindir is None:
        pytest.skip("no PostgreSQL server is installed (`make postgresql` installs Debian's, "
                    "as root; .ci/run does)")
    with PostgresCluster(bindir) as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A new, empty database of the session's server, dropped after the test."""
    with new_database(postgres_cluster) as url:
        yield url
