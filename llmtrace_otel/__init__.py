"""llmtrace-otel: an OpenTelemetry-native LLM observability and security proxy."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
