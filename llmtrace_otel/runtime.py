"""Which asyncio event loop the long-running commands (``serve``, ``collect``) run on.

uvloop (libuv) is a drop-in asyncio loop; Tornado and aiohttp run on it unchanged. Chosen by
measurement: it cuts the proxy's CPU per relayed request by ~9 % (callgrind instruction
counts, docs/performance.md). ``auto`` uses it where it is installed (it is a dependency
on Linux and macOS) and falls back to the standard loop elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from llmtrace_otel.config import ConfigError

__all__ = ["EVENT_LOOPS", "loop_factory", "run"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Accepted values of ``server.event_loop``.
EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``choice``; ``None`` means asyncio's default loop.

    Raises :class:`ConfigError` when ``uvloop`` is asked for explicitly and is not installed.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(
                "server.event_loop is 'uvloop' but uvloop is not installed "
                "(pip install uvloop, or use 'auto'/'asyncio')"
            ) from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, _T], choice: str) -> _T:
    """``asyncio.run(main)`` on the loop ``choice`` selects."""
    factory = loop_factory(choice)
    _log.debug("event loop: %s", "uvloop" if factory is not None else "asyncio")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
