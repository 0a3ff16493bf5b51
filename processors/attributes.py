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
#: True when the call sent ``X-LLMTrace-Tenant-ID`` from a caller not trusted to name its
#: tenant (``tenancy.header_trusted_from``): the header was ignored.
LLMTRACE_TENANT_HEADER_IGNORED: Final = "llmtrace.tenant.header_ignored"

# Anomalies (processors.anomaly): one span event per anomaly, and the list on the span
LLMTRACE_ANOMALY_EVENT: Final = "llmtrace.anomaly"
LLMTRACE_ANOMALY_TYPES: Final = "llmtrace.anomaly.types"
LLMTRACE_ANOMALY_TYPE: Final = "llmtrace.anomaly.type"
LLMTRACE_ANOMALY_VALUE: Final = "llmtrace.anomaly.value"
LLMTRACE_ANOMALY_MEAN: Final = "llmtrace.anomaly.mean"
LLMTRACE_ANOMALY_STDDEV: Final = "llmtrace.anomaly.stddev"
LLMTRACE_ANOMALY_SCORE: Final = "llmtrace.anomaly.score"
LLMTRACE_ANOMALY_SAMPLES: Final = "llmtrace.anomaly.samples"

# Security (processors.security)
#: 0-100 risk score of an analysed span (0: analysed, nothing reported).
LLMTRACE_SECURITY_SCORE: Final = "llmtrace.security.score"
#: Number of findings reported on the span, their highest severity and distinct types.
LLMTRACE_SECURITY_FINDINGS: Final = "llmtrace.security.findings"
LLMTRACE_SECURITY_MAX_SEVERITY: Final = "llmtrace.security.max_severity"
LLMTRACE_SECURITY_FINDING_TYPES: Final = "llmtrace.security.finding_types"
#: Span event, one per finding, and its attributes (the SQLite exporter counts the events
#: into its ``findings_count`` column).
LLMTRACE_SECURITY_FINDING_EVENT: Final = "llmtrace.security.finding"
LLMTRACE_SECURITY_FINDING_TYPE: Final = "llmtrace.security.finding.type"
LLMTRACE_SECURITY_FINDING_SEVERITY: Final = "llmtrace.security.finding.severity"
LLMTRACE_SECURITY_FINDING_CONFIDENCE: Final = "llmtrace.security.finding.confidence"
LLMTRACE_SECURITY_FINDING_SIDE: Final = "llmtrace.security.finding.side"
LLMTRACE_SECURITY_FINDING_DETECTOR: Final = "llmtrace.security.finding.detector"
LLMTRACE_SECURITY_FINDING_EVIDENCE: Final = "llmtrace.security.finding.evidence"
LLMTRACE_SECURITY_FINDING_LOCATION: Final = "llmtrace.security.finding.location"
LLMTRACE_SECURITY_FINDING_MESSAGE: Final = "llmtrace.security.finding.message"
#: Which evidence a finding rests on: the ids of the rules that fired (string array) and
#: the learned classifier's probability when its evidence counted (docs/security.md).
LLMTRACE_SECURITY_FINDING_RULES: Final = "llmtrace.security.finding.rules"
LLMTRACE_SECURITY_FINDING_MODEL_SCORE: Final = "llmtrace.security.finding.model_score"
#: Offsets of the finding in its side's text (parts joined with newlines; docs/ui.md).
LLMTRACE_SECURITY_FINDING_START: Final = "llmtrace.security.finding.start"
LLMTRACE_SECURITY_FINDING_END: Final = "llmtrace.security.finding.end"
#: What the proxy's request guard did: flag or block (absent when it let the call pass).
LLMTRACE_SECURITY_GUARD_ACTION: Final = "llmtrace.security.guard.action"
LLMTRACE_SECURITY_GUARD_FINDINGS: Final = "llmtrace.security.guard.finding_types"
#: True when the request guard stopped before reading everything (security.guard_budget_ms).
LLMTRACE_SECURITY_GUARD_BUDGET_EXCEEDED: Final = "llmtrace.security.guard.budget_exceeded"
#: Values replaced by [PII:...]/[SECRET:...] placeholders in the exported content
#: (security.pii_export = redact).
LLMTRACE_SECURITY_REDACTED: Final = "llmtrace.security.redacted"
#: Why message content that capture would export was kept out (``not_redacted``: the
#: security stage did not redact the span, so with ``security.pii_export: redact`` it is
#: withheld rather than exported as it came).
LLMTRACE_CONTENT_WITHHELD: Final = "llmtrace.content.withheld"
#: The proxy ended a streamed response early on a finding (security.stream_scan = stop).
LLMTRACE_SECURITY_STREAM_STOPPED: Final = "llmtrace.security.stream_stopped"
#: Span event, one per finding of the stream scanner (the finding.* attributes; offsets in
#: the output text as streamed).
LLMTRACE_SECURITY_STREAM_FINDING_EVENT: Final = "llmtrace.security.stream.finding"
#: Output characters the stream scanner read, and the finding types it reported.
LLMTRACE_SECURITY_STREAM_SCANNED_CHARS: Final = "llmtrace.security.stream.scanned_chars"
LLMTRACE_SECURITY_STREAM_FINDING_TYPES: Final = "llmtrace.security.stream.finding_types"

# Proxy bookkeeping
LLMTRACE_PARSE_ERRORS: Final = "llmtrace.parse.errors"
LLMTRACE_STREAM_CHUNKS: Final = "llmtrace.stream.chunks"
LLMTRACE_API: Final = "llmtrace.api"
#: Upstream connections that failed before the request was sent and were retried.
LLMTRACE_UPSTREAM_CONNECT_RETRIES: Final = "llmtrace.upstream.connect_retries"

# Reliability (processors.breaker): analysis steps an open circuit breaker bypassed on this span
LLMTRACE_ANALYSIS_SKIPPED: Final = "llmtrace.analysis.skipped"

# OTLP receiver (llmtrace_otel.receiver): which dialects a received span was translated from
LLMTRACE_RECEIVER_DIALECTS: Final = "llmtrace.receiver.dialects"

#: On the second span of one call (the ``anthropic`` SDK's own span beside a library's or
#: ours): the span id (hex) of the span that is counted and priced. A span marked so is
#: kept for the trace view and never priced, analysed or counted as a call.
LLMTRACE_CALL_DUPLICATE_OF: Final = "llmtrace.call.duplicate_of"
#: Instrumentation scopes of API SDKs that emit a span of their own for each call
#: (``anthropic.messages.create``), whenever a tracer provider is set.
SELF_TRACING_SDK_SCOPES: Final = frozenset({"com.anthropic.sdk.python"})
