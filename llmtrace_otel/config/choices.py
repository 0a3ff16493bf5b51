"""The allowed values of every setting that is a choice, as enums.

Each is a :class:`~enum.StrEnum`: it prints and serialises as its value, and parts compare
against members (``config.enforcement is Enforcement.BLOCK``), never against raw strings.
Input is matched case-insensitively (``BLOCK`` and ``block`` are the same choice).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "AlertLevel",
    "BackendErrorPolicy",
    "BudgetWindow",
    "Enforcement",
    "EventLoop",
    "LogFormat",
    "LogLevel",
    "OtlpProtocol",
    "PiiExport",
    "SdkExporters",
    "SeverityName",
    "StateBackend",
    "StreamScan",
]


class EventLoop(StrEnum):
    """``server.event_loop``: uvloop where installed (``auto``), or a fixed choice."""

    AUTO = "auto"
    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


class OtlpProtocol(StrEnum):
    GRPC = "grpc"
    HTTP_PROTOBUF = "http/protobuf"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SeverityName(StrEnum):
    """A finding severity by name (the security processors' ``Severity`` has the order)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Enforcement(StrEnum):
    """``security.enforcement``: what the request-path check does with a finding."""

    OFF = "off"
    FLAG = "flag"
    BLOCK = "block"


class PiiExport(StrEnum):
    """``security.pii_export``: PII and secrets in exported content."""

    ALERT = "alert"
    REDACT = "redact"


class StreamScan(StrEnum):
    """``security.stream_scan``: scanning of streamed output as it is relayed."""

    OFF = "off"
    OBSERVE = "observe"
    STOP = "stop"


class SdkExporters(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class BackendErrorPolicy(StrEnum):
    """``limits.on_backend_error``: a call when the state backend cannot be asked."""

    OPEN = "open"
    CLOSED = "closed"


class StateBackend(StrEnum):
    MEMORY = "memory"
    REDIS = "redis"


class AlertLevel(StrEnum):
    """An alert severity by name (the alert dispatcher's ``AlertSeverity`` has the order)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class BudgetWindow(StrEnum):
    """A budget window: calendar hour, day, ISO week or month, in UTC."""

    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
