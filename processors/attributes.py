"""Attribute keys of the ``llmtrace.*`` namespace: the one place they are spelled.

GenAI keys come from ``opentelemetry.semconv._incubating``; these are our own additions.
"""

from __future__ import annotations

from typing import Final

# Cost (processors.cost)
LLMTRACE_COST_USD: Final = "llmtrace.cost.usd"
LLMTRACE_COST_INPUT_USD: Final = "llmtrace.cost.input_usd"
LLMTRACE_COST_OUTPUT_USD: Final = "llmtrace.cost.output_usd"
LLMTRACE_COST_CACHE_READ_USD: Final = "llmtrace.cost.cache_read_usd"
LLMTRACE_COST_CACHE_CREATION_USD: Final = "llmtrace.cost.cache_creation_usd"
LLMTRACE_COST_PRICING_MODEL: Final = "llmtrace.cost.pricing_model"

# Tenancy
LLMTRACE_TENANT_ID: Final = "llmtrace.tenant.id"
LLMTRACE_AGENT_ID: Final = "llmtrace.agent.id"
#: How the tenant was identified: header, api_key or default.
LLMTRACE_TENANT_SOURCE: Final = "llmtrace.tenant.source"

# Anomalies (processors.anomaly): one span event per anomaly, and the list on the span
LLMTRACE_ANOMALY_EVENT: Final = "llmtrace.anomaly"
LLMTRACE_ANOMALY_TYPES: Final = "llmtrace.anomaly.types"
LLMTRACE_ANOMALY_TYPE: Final = "llmtrace.anomaly.type"
LLMTRACE_ANOMALY_VALUE: Final = "llmtrace.anomaly.value"
LLMTRACE_ANOMALY_MEAN: Final = "llmtrace.anomaly.mean"
LLMTRACE_ANOMALY_STDDEV: Final = "llmtrace.anomaly.stddev"
LLMTRACE_ANOMALY_SCORE: Final = "llmtrace.anomaly.score"
LLMTRACE_ANOMALY_SAMPLES: Final = "llmtrace.anomaly.samples"

# Security
LLMTRACE_SECURITY_SCORE: Final = "llmtrace.security.score"
#: Name of the span event that carries one security finding (counted into SQLite's
#: ``findings_count`` column by the exporter).
LLMTRACE_SECURITY_FINDING_EVENT: Final = "llmtrace.security.finding"

# Proxy bookkeeping
LLMTRACE_PARSE_ERRORS: Final = "llmtrace.parse.errors"
LLMTRACE_STREAM_CHUNKS: Final = "llmtrace.stream.chunks"
LLMTRACE_API: Final = "llmtrace.api"

# OTLP receiver (llmtrace_otel.receiver): which dialects a received span was translated from
LLMTRACE_RECEIVER_DIALECTS: Final = "llmtrace.receiver.dialects"
