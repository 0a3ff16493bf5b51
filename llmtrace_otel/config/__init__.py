"""Configuration: one frozen :class:`Settings`, resolved as flags > env > file > defaults.

Every setting is declared once in :data:`FIELDS` with its YAML key, environment variable,
flag, type, range and allowed values (:mod:`~llmtrace_otel.config.choices`); the CLI
flags, the env lookup, validation, ``validate`` output and docs/configuration.md all follow
from that table. Standard ``OTEL_*`` variables keep their meaning: the OTLP exporters and
the resource read them through the OTel SDK.

This package imports no other part of llmtrace-otel: it is plain data and its rules.
The assembly (:mod:`llmtrace_otel.wiring`) turns ``Settings`` into each part's own config.
"""

from __future__ import annotations

from llmtrace_otel.config.choices import (
    AlertLevel,
    BackendErrorPolicy,
    BudgetWindow,
    Enforcement,
    EventLoop,
    LogFormat,
    LogLevel,
    OtlpProtocol,
    PiiExport,
    SdkExporters,
    SeverityName,
    StateBackend,
    StreamScan,
)
from llmtrace_otel.config.errors import ConfigError
from llmtrace_otel.config.fields import FIELDS, FieldSpec, field_by_key, field_by_name
from llmtrace_otel.config.load import (
    CONFIG_ENV,
    Resolution,
    describe,
    load_settings,
    mask_url_credentials,
    resolve,
)
from llmtrace_otel.config.settings import Settings
from llmtrace_otel.config.tenants import TenantOverrides
from llmtrace_otel.config.values import (
    is_loopback,
    otlp_requested,
    split_endpoint,
    split_list,
    worker_count,
)

__all__ = [
    "CONFIG_ENV",
    "FIELDS",
    "AlertLevel",
    "BackendErrorPolicy",
    "BudgetWindow",
    "ConfigError",
    "Enforcement",
    "EventLoop",
    "FieldSpec",
    "LogFormat",
    "LogLevel",
    "OtlpProtocol",
    "PiiExport",
    "Resolution",
    "SdkExporters",
    "Settings",
    "SeverityName",
    "StateBackend",
    "StreamScan",
    "TenantOverrides",
    "describe",
    "field_by_key",
    "field_by_name",
    "is_loopback",
    "load_settings",
    "mask_url_credentials",
    "otlp_requested",
    "resolve",
    "split_endpoint",
    "split_list",
    "worker_count",
]
