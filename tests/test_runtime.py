"""Event-loop choice for serve/collect."""

from __future__ import annotations

import asyncio
import weakref

import pytest

from llmtrace_otel.config import ConfigError, EventLoop, load_settings
from llmtrace_otel.runtime import freeze_startup_heap, loop_factory, run

uvloop = pytest.importorskip("uvloop")


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_and_uvloop_run_on_uvloop() -> None:
    assert run(_loop_module(), EventLoop.AUTO).startswith("uvloop")
    assert run(_loop_module(), EventLoop.UVLOOP).startswith("uvloop")


def test_asyncio_runs_the_standard_loop() -> None:
    assert loop_factory(EventLoop.ASYNCIO) is None
    assert run(_loop_module(), EventLoop.ASYNCIO).startswith("asyncio")


def test_unknown_choice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"server.event_loop \(env LLMTRACE_SERVER_EVENT_LOOP"
                                          r"\): 'libev' is not one of auto, uvloop, asyncio"):
        load_settings(env={"LLMTRACE_SERVER_EVENT_LOOP": "libev"})


def test_freeze_startup_heap_leaves_live_objects_out_of_collections() -> None:
    import gc

    class Node:
        peer: object = None

    before = [[i] for i in range(100)]  # tracked containers alive at start-up
    garbage = Node()
    garbage.peer = garbage  # a reference cycle nothing else holds: only gc frees it
    gone = weakref.ref(garbage)
    del garbage
    try:
        frozen = freeze_startup_heap()
        assert frozen >= len(before)  # (the count falls as frozen objects die)
        scanned = {id(o) for o in gc.get_objects()}  # what a full collection walks
        assert not any(id(o) in scanned for o in before)
        assert gone() is None  # collected first, not frozen
        after = [[i] for i in range(100)]
        scanned = {id(o) for o in gc.get_objects()}
        assert all(id(o) in scanned for o in after)
    finally:
        gc.unfreeze()


def test_gc_freeze_is_on_by_default_and_can_be_turned_off() -> None:
    assert load_settings(env={}).gc_freeze is True
    assert load_settings(env={"LLMTRACE_SERVER_GC_FREEZE": "false"}).gc_freeze is False
