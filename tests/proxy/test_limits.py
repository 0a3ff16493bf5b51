"""The open-files limit is raised to fit server.max_connections, or the bound is lowered."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmtrace_otel.web.server import listen_backlog

_PROBE = """
import logging, resource, sys
logging.basicConfig(level=logging.WARNING, format="%(message)s")
soft, hard = (int(v) for v in sys.argv[1:3])
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
from llmtrace_otel.web.server import ensure_open_files
bound = ensure_open_files(10000, 512)
print(bound, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


@pytest.mark.parametrize(("soft", "hard", "bound", "raised_to", "warned"), [
    (1024, 20000, 10000, 10768, False),  # raised as far as needed
    (1024, 4000, 3232, 4000, True),  # raised to the hard limit, the bound lowered to fit
    (20000, 20000, 10000, 20000, False),  # already enough
])
def test_open_files_limit(soft: int, hard: int, bound: int, raised_to: int,
                          warned: bool) -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, str(soft), str(hard)],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == [str(bound), str(raised_to)]
    assert ("server.max_connections lowered from 10000 to 3232" in result.stderr) is warned


def test_listen_backlog_follows_the_connection_bound() -> None:
    assert [listen_backlog(n) for n in (10, 1000, 100000)] == [128, 1000, 4096]
