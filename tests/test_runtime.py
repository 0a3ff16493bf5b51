"""Event-loop choice for serve/collect."""

from __future__ import annotations

import asyncio

import pytest

from llmtrace_otel.config import ConfigError, load_settings
from llmtrace_otel.runtime import loop_factory, run

uvloop = pytest.importorskip("uvloop")


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_and_uvloop_run_on_uvloop() -> None:
    assert run(_loop_module(), "auto").startswith("uvloop")
    assert run(_loop_module(), "uvloop").startswith("uvloop")


def test_asyncio_runs_the_standard_loop() -> None:
    assert loop_factory("asyncio") is None
    assert run(_loop_module(), "asyncio").startswith("asyncio")


def test_unknown_choice_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="server.event_loop: 'libev' is not one of"):
        load_settings(env={"LLMTRACE_SERVER_EVENT_LOOP": "libev"})
