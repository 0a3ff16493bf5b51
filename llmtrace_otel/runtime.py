"""How the long-running commands (``serve``, ``collect``) run: event loop and heap.

uvloop (libuv) is a drop-in asyncio loop; Tornado and aiohttp run on it unchanged. Chosen by
measurement: it cuts the proxy's CPU per relayed request by ~9 % (callgrind instruction
counts, docs/performance.md). ``auto`` uses it where it is installed (it is a dependency
on Linux and macOS) and falls back to the standard loop elsewhere.

:func:`freeze_startup_heap` runs once the server is listening (``server.gc_freeze``). A
full (generation 2) collection of CPython's cyclic garbage collector stops every thread
while it walks every tracked object, and after start-up that is mostly the modules, the
OTel SDK and the pipeline, which live as long as the process. Measured under the bench's
32-connection load: 18 full collections in ~40 s, up to 50 ms each (657 ms in all); every
request in flight waits them out: a large part of the p99 at 32 connections. Frozen objects
are left out of collections (``gc.freeze``), cutting that to 130 ms in all.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from llmtrace_otel.config import ConfigError, EventLoop

__all__ = ["freeze_startup_heap", "loop_factory", "run"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

def loop_factory(choice: EventLoop) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``choice``; ``None`` means asyncio's default loop.

    Raises :class:`ConfigError` when ``uvloop`` is asked for explicitly and is not installed.
    """
    if choice is EventLoop.ASYNCIO:
        return None
    try:
        import uvloop
    except ImportError:
        if choice is EventLoop.UVLOOP:
            raise ConfigError(
                "server.event_loop is 'uvloop' but uvloop is not installed "
                "(pip install uvloop, or use 'auto'/'asyncio')"
            ) from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, _T], choice: EventLoop) -> _T:
    """``asyncio.run(main)`` on the loop ``choice`` selects."""
    factory = loop_factory(choice)
    _log.debug("event loop: %s", "uvloop" if factory is not None else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def freeze_startup_heap() -> int:
    """Collect, then move every object alive now to the collector's permanent generation.

    Call once start-up is done. Garbage is collected first so that none of it is frozen
    (frozen objects are never collected); what is frozen still lives and dies by reference
    counting as usual. Returns the number of objects frozen.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    _log.debug("gc: %d start-up objects frozen out of full collections", frozen)
    return frozen
