"""bench/proctree.py: the CPU of a process tree, across a child that exits and a new one.

Real processes that burn a known amount of CPU time (``time.process_time``, so the figures
hold however loaded the machine is); the accounting ``make bench`` uses for CPU per request
of ``serve --workers N``, where a relay worker may die and be restarted mid-phase.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.bench.bench_modules import bench_module

proctree = bench_module("proctree")

# Burns CPU up to each argument's total (seconds of process time), reporting each on stdout,
# and waits for a line on stdin after each; exits after the last.
_CHILD = """
import sys, time
for total in sys.argv[1:]:
    while time.process_time() < float(total):
        pass
    print("burnt", flush=True)
    sys.stdin.readline()
"""

# A parent with a child A (0.2 s burnt before the test's first sample, 0.3 s more after it,
# then exits and is reaped), then a child B (0.3 s) that is alive at the second sample: what
# a relay worker restarted between two readings looks like.
_PARENT = f"""
import subprocess, sys
CHILD = {_CHILD!r}

def start(*totals):
    child = subprocess.Popen([sys.executable, "-c", CHILD, *totals], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    return child

def step(child):
    child.stdin.write("\\n")
    child.stdin.flush()
    return child.stdout.readline()

a = start("0.2", "0.5")
print(a.pid, flush=True)
sys.stdin.readline()
step(a)
step(a)
a.wait()
b = start("0.3")
print(b.pid, flush=True)
sys.stdin.readline()
step(b)
b.wait()
"""


@pytest.fixture
def parent() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-c", _PARENT], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def _next_line(process: subprocess.Popen[str]) -> str:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("\n")
    process.stdin.flush()
    return process.stdout.readline()


def test_tree_cpu_counts_a_reaped_child_and_its_replacement_once(
        parent: subprocess.Popen[str]) -> None:
    assert parent.stdout is not None
    a_pid = int(parent.stdout.readline())
    before = proctree.sample_tree(parent.pid)
    assert [p.pid for p in before.processes] == [parent.pid, a_pid]
    assert before.rss_mb > 0

    b_pid = int(_next_line(parent))
    after = proctree.sample_tree(parent.pid)

    assert [p.pid for p in after.processes] == [parent.pid, b_pid]
    assert after.restarted_since(before) == (a_pid,)
    spent = after.cpu_since(before)
    # A's 0.3 s after the first sample (in the parent's cutime once reaped) + B's 0.3 s (its
    # start-up included in process_time), + the parent's own few ms; A's 0.2 s before the
    # first sample is not counted again. Clock ticks are 10 ms per process and reading.
    assert 0.56 <= spent <= 0.75, spent
    by_process = after.cpu_by_process(before)
    assert by_process[b_pid] >= 0.28
    assert by_process[parent.pid] >= 0.27  # A's share, moved to its parent when it was reaped
    _next_line(parent)
    assert parent.wait(timeout=30) == 0


def test_tree_of_a_process_that_is_gone_is_an_error() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    with pytest.raises(ProcessLookupError):
        proctree.sample_tree(process.pid)
