from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.postgres_server import PostgresCluster, find_binaries
from tests.support.proxy_harness import RunningProxy, running_proxy
from tests.support.stores import new_database


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
