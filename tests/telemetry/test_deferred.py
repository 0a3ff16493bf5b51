"""DeferredRecorder: metric recordings made on a worker thread, in order, drained on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from llmtrace_otel.telemetry.deferred import DeferredRecorder


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_calls_are_made_in_order_on_the_worker_within_the_delay() -> None:
    made: list[tuple[int, str]] = []
    recorder = DeferredRecorder(batch_size=1000, max_delay_s=0.02)
    try:
        for i in range(10):
            recorder.submit(lambda n: made.append((n, threading.current_thread().name)), i)
        assert _eventually(lambda: len(made) == 10)
        assert [n for n, _ in made] == list(range(10))
        assert {name for _, name in made} == {"llmtrace-metrics"}
        assert recorder.pending == 0
    finally:
        recorder.shutdown()


def test_a_full_batch_wakes_the_worker_before_the_delay() -> None:
    made: list[int] = []
    recorder = DeferredRecorder(batch_size=5, max_delay_s=60)
    try:
        for i in range(4):
            recorder.submit(made.append, i)
        time.sleep(0.1)
        assert made == []  # neither a full batch nor the delay yet
        recorder.submit(made.append, 4)
        assert _eventually(lambda: made == [0, 1, 2, 3, 4], timeout_s=5)
    finally:
        recorder.shutdown()


def test_drain_makes_every_waiting_call_on_the_calling_thread() -> None:
    made: list[str] = []
    recorder = DeferredRecorder(batch_size=1000, max_delay_s=60)
    try:
        for _ in range(3):
            recorder.submit(lambda: made.append(threading.current_thread().name))
        assert recorder.pending == 3
        recorder.drain()
        assert made == [threading.current_thread().name] * 3
        assert recorder.pending == 0
    finally:
        recorder.shutdown()


def test_a_full_queue_drops_and_counts_new_calls() -> None:
    drops: list[tuple[str, str]] = []
    made: list[int] = []
    recorder = DeferredRecorder(batch_size=1000, max_delay_s=60, max_queue_size=2,
                                on_drop=lambda stage, reason: drops.append((stage, reason)))
    try:
        for i in range(3):
            recorder.submit(made.append, i)
        assert drops == [("metrics", "queue_full")]
        recorder.drain()
        assert made == [0, 1]
    finally:
        recorder.shutdown()


def test_a_call_that_raises_is_counted_and_the_rest_still_run(
        caplog: pytest.LogCaptureFixture) -> None:
    drops: list[tuple[str, str]] = []
    made: list[int] = []
    recorder = DeferredRecorder(batch_size=1000, max_delay_s=60,
                                on_drop=lambda stage, reason: drops.append((stage, reason)))

    def broken() -> None:
        raise RuntimeError("instrument exploded")

    try:
        recorder.submit(made.append, 1)
        recorder.submit(broken)
        recorder.submit(made.append, 2)
        recorder.drain()
        assert made == [1, 2]
        assert drops == [("metrics", "recording_error")]
        assert "recording a metric failed" in caplog.text
    finally:
        recorder.shutdown()


def test_shutdown_makes_what_waits_and_later_calls_are_made_at_once() -> None:
    made: list[int] = []
    recorder = DeferredRecorder(batch_size=1000, max_delay_s=60)
    recorder.submit(made.append, 1)
    recorder.shutdown()
    assert made == [1]
    recorder.submit(made.append, 2)
    assert made == [1, 2]


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"max_delay_s": 0},
                                    {"max_queue_size": 0}])
def test_bad_sizes_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        DeferredRecorder(**kwargs)  # type: ignore[arg-type]
