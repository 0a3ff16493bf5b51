"""Fixtures of the fault-injection and soak suite (docs/reliability.md).

``make test`` runs the reduced size; ``RELIABILITY_FULL=1`` (``make soak``) the full one.
"""

from __future__ import annotations

import gc
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.load import SCALE, rss_bytes
from tests.support.proxy_harness import RunningProxy, running_proxy

#: Breakers that react within a test's time: open after 2 failures among 4 calls, probe
#: again after 0.3 s, close after one good probe. SQLite gives up on a lock after 100 ms.
FAST_BREAKERS: dict[str, Any] = {
    "breaker_failure_threshold": 2,
    "breaker_window": 4,
    "breaker_recovery_s": 0.3,
    "breaker_half_open_probes": 1,
    "sqlite_busy_timeout_ms": 100,
    "read_timeout_s": 1.0,
}
#: RSS may grow this much over the post-warm-up baseline of the test process (which also
#: runs the fake upstream and the clients): a bound on leaks, not a measurement.
RSS_TOLERANCE = 64 * 1024 * 1024


@contextmanager
def fault_proxy(upstream_url: str, tmp_path: Path, **overrides: Any) -> Iterator[RunningProxy]:
    values = {**FAST_BREAKERS, **overrides}
    with running_proxy(upstream_url, tmp_path, **values) as proxy:
        yield proxy


def settled_rss() -> int:
    gc.collect()
    return rss_bytes()


def calls(n: int) -> int:
    """``n`` in the reduced run, ``SCALE * n`` in the full one."""
    return n * SCALE


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
