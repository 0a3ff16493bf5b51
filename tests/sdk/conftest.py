from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sdk.harness import AppTelemetry, instrumented
from tests.support.fake_upstream import FakeUpstream


@pytest.fixture
def app() -> Iterator[AppTelemetry]:
    telemetry = AppTelemetry.create()
    yield telemetry
    telemetry.shutdown()


@pytest.fixture
def sdk(app: AppTelemetry, upstream: FakeUpstream, tmp_path: Path) -> Iterator[AppTelemetry]:
    """The application's telemetry with the instrumentation attached (default settings)."""
    upstream.clear()
    with instrumented(app, tmp_path):
        yield app


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)
