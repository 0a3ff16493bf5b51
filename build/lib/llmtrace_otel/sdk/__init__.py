"""Python SDK auto-instrumentation: the proxy's GenAI spans, without the proxy.

::

    import llmtrace_otel
    llmtrace_otel.instrument()        # or: opentelemetry-instrument python app.py

See docs/sdk.md.
"""

from __future__ import annotations

from typing import Any

from llmtrace_otel.config import load_settings
from llmtrace_otel.sdk.attach import SDK_SCOPE, Mode, SDKTelemetry
from llmtrace_otel.sdk.instrumentor import LLMTraceInstrumentor
from llmtrace_otel.sdk.sqlite_exporter import ENTRY_POINT_NAME, SettingsSQLiteSpanExporter

__all__ = [
    "ENTRY_POINT_NAME",
    "SDK_SCOPE",
    "LLMTraceInstrumentor",
    "Mode",
    "SDKTelemetry",
    "SettingsSQLiteSpanExporter",
    "instrument",
    "uninstrument",
]


def instrument(**kwargs: Any) -> LLMTraceInstrumentor:
    """Turn the instrumentation on (a no-op when it is on already); returns the instrumentor.

    Keyword arguments are those of :meth:`LLMTraceInstrumentor.instrument`:
    ``tracer_provider``, ``meter_provider``, ``settings``, ``http_spans``. Without
    ``settings`` they are loaded here, and an invalid value raises ``ConfigError``.
    """
    instrumentor = LLMTraceInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        if kwargs.get("settings") is None:
            kwargs["settings"] = load_settings()  # a bad value raises ConfigError here
        instrumentor.instrument(**kwargs)
    return instrumentor


def uninstrument() -> None:
    """Turn it off again: original ``send`` methods back, our pipeline flushed and stopped."""
    instrumentor = LLMTraceInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
