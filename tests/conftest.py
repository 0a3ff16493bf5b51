from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import RunningProxy, running_proxy


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def proxy(upstream: FakeUpstream, tmp_path: Path) -> Iterator[RunningProxy]:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as running:
        yield running
