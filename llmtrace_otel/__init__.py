"""llmtrace-otel: an OpenTelemetry-native LLM observability and security proxy."""

from __future__ import annotations

from typing import Any

from llmtrace_otel.version import __version__

__all__ = ["__version__", "instrument", "uninstrument"]


def instrument(**kwargs: Any) -> Any:
    """GenAI spans for the application's own LLM calls (openai, anthropic, any httpx
    client), in-process. See :func:`llmtrace_otel.sdk.instrument` and docs/sdk.md."""
    from llmtrace_otel.sdk import instrument as _instrument

    return _instrument(**kwargs)


def uninstrument() -> None:
    """Undo :func:`instrument`."""
    from llmtrace_otel.sdk import uninstrument as _uninstrument

    _uninstrument()
