"""Configuration: one frozen :class:`Settings`, resolved as CLI > env > file > defaults.

Every setting is declared once in :data:`FIELDS` with its YAML key, its environment
variable and its help text; the CLI flags, the env lookup, ``validate`` output and
docs/configuration.md all follow from that table. Standard ``OTEL_*`` variables keep
their meaning: the OTLP exporters and the resource read them through the OTel SDK.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from llmtrace_otel.tenancy.policy import PolicyError, TenantOverrides, parse_overrides

__all__ = [
    "FIELDS",
    "ConfigError",
    "FieldSpec",
    "Settings",
    "load_settings",
    "split_endpoint",
    "split_list",
]


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and its source."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration of one llmtrace-otel process."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    shutdown_timeout_s: float = 15.0
    event_loop: str = "auto"
    gc_freeze: bool = True
    upstream_url: str = "https://api.openai.com"
    anthropic_upstream_url: str = "https://api.anthropic.com"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    total_timeout_s: float = 600.0
    max_upstream_connections: int = 512
    stream_include_usage: bool = True
    capture_content: bool = False
    service_name: str = "llmtrace-otel"
    analysis_queue_size: int = 8192
    analysis_stall_timeout_s: float = 30.0
    sqlite_enabled: bool = True
    sqlite_path: str = "llmtrace.db"
    # The shared PostgreSQL trace store (docs/deployment.md); unset: SQLite at sqlite_path
    storage_url: str | None = None
    storage_retention_days: int = 30
    storage_retry_s: float = 30.0
    storage_pool_size: int = 4
    otlp_endpoint: str | None = None
    otlp_protocol: str = "grpc"
    metrics_enabled: bool = True
    metrics_max_models: int = 200
    metrics_model_allowlist: str = ""
    metrics_http_server: bool = True
    metrics_http_exclude_paths: str = "/health,/metrics"
    metrics_process: bool = True
    provider_health_window_s: float = 60.0
    provider_health_min_calls: int = 5
    provider_health_failure_ratio: float = 0.5
    provider_health_consecutive_failures: int = 5
    pricing_file: str | None = None
    log_level: str = "INFO"
    log_format: str = "text"
    security_enabled: bool = True
    security_min_severity: str = "low"
    security_enforcement: str = "off"
    security_enforce_types: str = "prompt_injection,jailbreak"
    security_enforce_min_severity: str = "high"
    security_fail_closed: bool = False
    security_guard_max_chars: int = 50_000
    security_guard_budget_ms: float = 5.0
    security_pii_export: str = "alert"
    security_stream_scan: str = "off"
    security_stream_stop_severity: str = "critical"
    security_workers: int = 0
    sdk_hosts: str = ""
    sdk_proxy_urls: str = ""
    sdk_exporters: str = "auto"
    sdk_prometheus_port: int = 0
    api_enabled: bool = True
    api_admin_token: str | None = None
    # OTLP receiver (`llmtrace-otel collect`, docs/collector.md)
    receiver_grpc_endpoint: str | None = "127.0.0.1:4317"
    receiver_http_endpoint: str | None = "127.0.0.1:4318"
    receiver_on_proxy: bool = False
    receiver_auth_token: str | None = None
    receiver_queue_size: int = 8192
    receiver_retry_after_s: float = 1.0
    receiver_forward_metrics: bool = False
    # Tenancy, limits, budgets, anomalies, alerts (docs/tenancy.md)
    tenancy_enabled: bool = True
    default_tenant: str = "default"
    tenant_key_secret: str | None = None
    metric_tenants: int = 100
    requests_per_s: float = 0.0
    request_burst: float = 0.0
    tokens_per_min: float = 0.0
    limits_on_backend_error: str = "open"
    budget_hourly_soft_usd: float = 0.0
    budget_hourly_hard_usd: float = 0.0
    budget_daily_soft_usd: float = 0.0
    budget_daily_hard_usd: float = 0.0
    budget_weekly_soft_usd: float = 0.0
    budget_weekly_hard_usd: float = 0.0
    budget_monthly_soft_usd: float = 0.0
    budget_monthly_hard_usd: float = 0.0
    state_backend: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 0.25
    state_key_prefix: str = "llmtrace:"
    anomaly_enabled: bool = False
    anomaly_sigma: float = 4.0
    anomaly_min_samples: int = 30
    anomaly_alpha: float = 0.05
    anomaly_rate_window_s: float = 60.0
    alert_slack_webhook_url: str | None = None
    alert_slack_min_severity: str = "warning"
    alert_pagerduty_routing_key: str | None = None
    alert_pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    alert_pagerduty_min_severity: str = "error"
    alert_webhook_url: str | None = None
    alert_webhook_min_severity: str = "info"
    alert_cooldown_s: float = 300.0
    alert_queue_size: int = 1000
    alert_timeout_s: float = 5.0
    alert_retries: int = 3
    alert_backoff_s: float = 0.5
    #: Per-tenant overrides: the ``tenants:`` section of the file (not a flat setting).
    tenants: TenantOverrides = TenantOverrides()
    # Reliability (docs/reliability.md): client limits, upstream retry, circuit breakers
    idle_timeout_s: float = 75.0
    body_timeout_s: float = 120.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 10000
    retry_connect_failures: int = 1
    sqlite_busy_timeout_ms: int = 5000
    breaker_enabled: bool = True
    breaker_failure_threshold: int = 5
    breaker_window: int = 20
    breaker_recovery_s: float = 30.0
    breaker_half_open_probes: int = 2
    breaker_analysis_slow_ms: float = 250.0


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _parse_optional_str(text: str) -> str | None:
    return text or None


def _parse_endpoint(text: str) -> str | None:
    """``host:port``; empty, ``off`` or ``none`` turn the listener off."""
    return None if text.strip().lower() in {"", "off", "none"} else text.strip()


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one Settings field is named in each source."""

    name: str  # Settings attribute
    key: str  # dotted YAML key
    env: str  # environment variable
    parse: Callable[[str], Any]
    help: str
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _f(name: str, key: str, parse: Callable[[str], Any], help: str, env: str | None = None,
       secret: bool = False) -> FieldSpec:
    return FieldSpec(name, key, env or "LLMTRACE_" + key.replace(".", "_").upper(), parse, help,
                     secret)


#: The one table of settings. Order is the order of docs and ``validate`` output.
FIELDS: tuple[FieldSpec, ...] = (
    _f("host", "server.host", str, "Interface the proxy listens on."),
    _f("port", "server.port", int, "Port of the proxy, /metrics and /health (0 = any free)."),
    _f("max_body_bytes", "server.max_body_bytes", int,
       "Largest request body accepted; larger bodies get 413."),
    _f("shutdown_timeout_s", "server.shutdown_timeout_s", float,
       "On SIGTERM/SIGINT, how long in-flight calls may take to finish."),
    _f("event_loop", "server.event_loop", str,
       "Event loop of serve/collect: auto (uvloop when installed), uvloop or asyncio."),
    _f("gc_freeze", "server.gc_freeze", _parse_bool,
       "Once started, move the start-up heap out of the garbage collector's full passes "
       "(gc.freeze): shorter stop-the-world pauses."),
    _f("upstream_url", "upstream.url", str,
       "Base URL of the OpenAI-compatible upstream (paths are appended)."),
    _f("anthropic_upstream_url", "upstream.anthropic_url", str,
       "Base URL for Anthropic-shaped calls (/v1/messages or an anthropic-version header)."),
    _f("connect_timeout_s", "upstream.connect_timeout_s", float, "Upstream connect timeout."),
    _f("read_timeout_s", "upstream.read_timeout_s", float,
       "Longest silence between two reads from the upstream."),
    _f("total_timeout_s", "upstream.total_timeout_s", float,
       "Longest a whole upstream call (streams included) may take."),
    _f("max_upstream_connections", "upstream.max_connections", int,
       "Size of the upstream connection pool."),
    _f("stream_include_usage", "upstream.stream_include_usage", _parse_bool,
       "Ask OpenAI streams for usage (stream_options.include_usage) and hide the extra "
       "chunk from clients that did not ask for it."),
    _f("capture_content", "telemetry.capture_content", _parse_bool,
       "Export message content (gen_ai.input.messages, ...). Analysis sees it regardless.",
       env="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
    _f("service_name", "telemetry.service_name", str,
       "service.name of the resource (OTEL_SERVICE_NAME, when set, wins).",),
    _f("analysis_queue_size", "telemetry.analysis_queue_size", int,
       "Spans waiting for analysis/export before new ones are dropped (and counted)."),
    _f("analysis_stall_timeout_s", "telemetry.analysis_stall_timeout_s", float,
       "A span still in the analysis chain after this long: the stage it is stuck in is "
       "bypassed and a new worker takes the queue (0 = never)."),
    _f("sqlite_enabled", "sqlite.enabled", _parse_bool,
       "Store spans (in SQLite, or in PostgreSQL when storage.url is set)."),
    _f("sqlite_path", "sqlite.path", str, "SQLite database file."),
    _f("storage_url", "storage.url", _parse_optional_str,
       "PostgreSQL span store that several instances share (postgresql://user:pass@host:5432/"
       "db) instead of SQLite; the password is never shown."),
    _f("storage_retention_days", "storage.retention_days", int,
       "PostgreSQL: days of spans kept (whole daily partitions dropped; 0 = keep all)."),
    _f("storage_retry_s", "storage.retry_s", float,
       "PostgreSQL: how long a batch is held and retried while the database is unreachable."),
    _f("storage_pool_size", "storage.pool_size", int,
       "PostgreSQL: connections of the query API and CLI (the exporter has its own)."),
    _f("otlp_endpoint", "otlp.endpoint", _parse_optional_str,
       "Export traces and metrics over OTLP to this endpoint (else OTEL_EXPORTER_OTLP_"
       "ENDPOINT, when set)."),
    _f("otlp_protocol", "otlp.protocol", str,
       "OTLP protocol: grpc or http/protobuf (else OTEL_EXPORTER_OTLP_PROTOCOL)."),
    _f("metrics_enabled", "metrics.enabled", _parse_bool, "Serve Prometheus metrics at /metrics."),
    _f("metrics_max_models", "metrics.max_models", int,
       "Distinct model names a metric label keeps; later ones are counted as `_other` "
       "(spans keep the real name)."),
    _f("metrics_model_allowlist", "metrics.model_allowlist", str,
       "Comma-separated model names that metric labels keep (all others `_other`); "
       "replaces metrics.max_models when set."),
    _f("metrics_http_server", "metrics.http_server", _parse_bool,
       "Record the OTel HTTP server metrics (http.server.*) for every route of the port."),
    _f("metrics_http_exclude_paths", "metrics.http_exclude_paths", str,
       "Comma-separated paths left out of the http.server.* metrics."),
    _f("metrics_process", "metrics.process", _parse_bool,
       "Report process metrics (CPU, memory, file descriptors, threads, GC, start time)."),
    _f("provider_health_window_s", "provider_health.window_s", float,
       "Sliding window of call outcomes that decides llmtrace_provider_available."),
    _f("provider_health_min_calls", "provider_health.min_calls", int,
       "Calls in the window before the failure ratio can mark a provider unavailable."),
    _f("provider_health_failure_ratio", "provider_health.failure_ratio", float,
       "Share of failed calls in the window (0-1] that marks a provider unavailable."),
    _f("provider_health_consecutive_failures", "provider_health.consecutive_failures", int,
       "This many failures in a row mark a provider unavailable at once."),
    _f("pricing_file", "pricing.file", _parse_optional_str,
       "Price table (our YAML/JSON or LiteLLM JSON) overriding/extending the built-in one."),
    _f("log_level", "logging.level", str, "DEBUG, INFO, WARNING or ERROR."),
    _f("log_format", "logging.format", str, "text or json."),
    _f("security_enabled", "security.enabled", _parse_bool,
       "Scan GenAI span content for prompt injection, jailbreaks, PII, secrets and leakage "
       "(off the request path)."),
    _f("security_min_severity", "security.min_severity", str,
       "Lowest severity reported as a finding: info, low, medium, high or critical."),
    _f("security_enforcement", "security.enforcement", str,
       "Request-path check before the upstream call: off, flag (response header + span "
       "attribute) or block (4xx in the API's error shape, no upstream call)."),
    _f("security_enforce_types", "security.enforce_types", str,
       "Comma-separated finding-type prefixes enforcement acts on (prompt_injection, "
       "jailbreak, pii, secret, or exact types such as pii.credit_card)."),
    _f("security_enforce_min_severity", "security.enforce_min_severity", str,
       "Lowest severity of an input finding that enforcement flags or blocks."),
    _f("security_fail_closed", "security.fail_closed", _parse_bool,
       "In block mode, reject the call (503) when the check itself fails, instead of "
       "letting it through."),
    _f("security_guard_max_chars", "security.guard_max_chars", int,
       "Request text the request-path check reads; longer inputs are checked head and tail."),
    _f("security_guard_budget_ms", "security.guard_budget_ms", float,
       "Time the request-path check may take (ms, checked between detectors and texts); "
       "when spent, found findings are enforced, else security.fail_closed decides. 0 = "
       "no limit."),
    _f("security_pii_export", "security.pii_export", str,
       "PII and secrets in exported content (with telemetry.capture_content): alert (export "
       "as is, findings only) or redact ([PII:EMAIL], [SECRET:AWS_ACCESS_KEY] placeholders "
       "in the exported copy; the client and upstream see the original)."),
    _f("security_stream_scan", "security.stream_scan", str,
       "Scan streamed output as it is relayed, for secrets, leakage and exfiltration: off, "
       "observe (findings on the span) or stop (end the stream on a finding at or above "
       "security.stream_stop_severity)."),
    _f("security_stream_stop_severity", "security.stream_stop_severity", str,
       "Lowest severity of a streamed-output finding that ends the stream in stop mode."),
    _f("security_workers", "security.workers", int,
       "Worker processes that run the security detectors on span content (0 = in the "
       "process, on the analysis thread); >0 lets analysis use more cores."),
    _f("sdk_hosts", "sdk.hosts", str,
       "SDK instrumentation: hosts whose calls may be LLM calls, comma-separated (exact, or "
       "*.suffix); empty = any host whose path is an API shape."),
    _f("sdk_proxy_urls", "sdk.proxy_urls", str,
       "SDK instrumentation: base URLs of llmtrace-otel proxies, comma-separated; calls to "
       "them carry the trace context but get no SDK span (the proxy records them)."),
    _f("sdk_exporters", "sdk.exporters", str,
       "SDK instrumentation: also use llmtrace's own exporters (sqlite.*, otlp.*): auto "
       "(only when the application has no TracerProvider), on or off."),
    _f("sdk_prometheus_port", "sdk.prometheus_port", int,
       "SDK instrumentation without an application MeterProvider: serve Prometheus "
       "metrics on this port (0 = off)."),
    _f("api_enabled", "api.enabled", _parse_bool,
       "Serve the read-only query API (/api/v1/...) and the trace viewer (/ui) on the proxy's "
       "port; those paths are then not proxied."),
    _f("api_admin_token", "api.admin_token", _parse_optional_str,
       "When set, /api/v1/... requires 'Authorization: Bearer <token>' (the viewer asks for "
       "it). Unset: the API is open to whoever can reach the port.", secret=True),
    _f("receiver_grpc_endpoint", "receiver.grpc_endpoint", _parse_endpoint,
       "host:port of the OTLP/gRPC receiver of `collect` (`off` = none)."),
    _f("receiver_http_endpoint", "receiver.http_endpoint", _parse_endpoint,
       "host:port of the OTLP/HTTP receiver of `collect` (`off` = none)."),
    _f("receiver_on_proxy", "receiver.on_proxy", _parse_bool,
       "`serve` also accepts OTLP/HTTP at /v1/traces and /v1/metrics on the proxy's port."),
    _f("receiver_auth_token", "receiver.auth_token", _parse_optional_str,
       "When set, OTLP senders must send `Authorization: Bearer <token>`.", secret=True),
    _f("receiver_queue_size", "receiver.queue_size", int,
       "Received spans waiting for the pipeline; beyond it senders are told to retry."),
    _f("receiver_retry_after_s", "receiver.retry_after_s", float,
       "Delay suggested to senders when the queue is full (RetryInfo / Retry-After)."),
    _f("receiver_forward_metrics", "receiver.forward_metrics", _parse_bool,
       "Forward received OTLP metrics unchanged to the OTLP endpoint (else refused)."),
    # Tenancy, limits, budgets, anomalies, alerts (docs/tenancy.md)
    _f("tenancy_enabled", "tenancy.enabled", _parse_bool,
       "Identify tenants (header, API-key hash, default) and enforce their limits."),
    _f("default_tenant", "tenancy.default_tenant", str,
       "Tenant of calls with neither an X-LLMTrace-Tenant-ID header nor an API key."),
    _f("tenant_key_secret", "tenancy.key_secret", _parse_optional_str,
       "HMAC secret for tenant ids derived from API keys (unset: random per process, so "
       "those ids change at restart).", secret=True),
    _f("metric_tenants", "tenancy.metric_tenants", int,
       "Tenants with their own metric series; later ones share tenant=\"_other\"."),
    _f("requests_per_s", "limits.requests_per_s", float,
       "Default per-tenant request rate (token bucket); 0 = unlimited."),
    _f("request_burst", "limits.request_burst", float,
       "Default request bucket capacity; 0 = max(1, requests_per_s)."),
    _f("tokens_per_min", "limits.tokens_per_min", float,
       "Default per-tenant tokens per minute (max_tokens up front, reconciled from "
       "usage); 0 = unlimited."),
    _f("limits_on_backend_error", "limits.on_backend_error", str,
       "State backend unreachable: open (let calls through) or closed (503)."),
    *(
        _f(f"budget_{window}_{level}_usd", f"budgets.{window}_{level}_usd", float,
           f"Default {window} {level} budget per tenant in USD "
           f"({'alert' if level == 'soft' else '429 budget_exceeded'}); 0 = none.")
        for window in ("hourly", "daily", "weekly", "monthly") for level in ("soft", "hard")
    ),
    _f("state_backend", "state.backend", str,
       "Where limits and spend live: memory (this process) or redis (shared)."),
    _f("redis_url", "state.redis_url", str, "Redis URL for state.backend=redis."),
    _f("redis_timeout_s", "state.redis_timeout_s", float,
       "Redis connect/read timeout; on failure Redis is skipped for 1 s."),
    _f("state_key_prefix", "state.key_prefix", str, "Prefix of every Redis key."),
    _f("anomaly_enabled", "anomaly.enabled", _parse_bool,
       "Flag calls and rate windows far above their tenant's baseline."),
    _f("anomaly_sigma", "anomaly.sigma", float,
       "Standard deviations above the EWMA mean that count as an anomaly."),
    _f("anomaly_min_samples", "anomaly.min_samples", int,
       "Warm-up: calls (or rate windows) seen before a tenant can be flagged."),
    _f("anomaly_alpha", "anomaly.alpha", float,
       "EWMA weight of the newest sample (0-1; smaller = longer memory)."),
    _f("anomaly_rate_window_s", "anomaly.rate_window_s", float,
       "Window of the request-rate and error-rate statistics."),
    _f("alert_slack_webhook_url", "alerts.slack.webhook_url", _parse_optional_str,
       "Slack incoming-webhook URL.", secret=True),
    _f("alert_slack_min_severity", "alerts.slack.min_severity", str,
       "Least severity sent to Slack: info, warning, error, critical."),
    _f("alert_pagerduty_routing_key", "alerts.pagerduty.routing_key", _parse_optional_str,
       "PagerDuty Events API v2 routing (integration) key.", secret=True),
    _f("alert_pagerduty_url", "alerts.pagerduty.url", str, "PagerDuty Events API v2 URL."),
    _f("alert_pagerduty_min_severity", "alerts.pagerduty.min_severity", str,
       "Least severity sent to PagerDuty."),
    _f("alert_webhook_url", "alerts.webhook.url", _parse_optional_str,
       "Generic webhook receiving alert JSON."),
    _f("alert_webhook_min_severity", "alerts.webhook.min_severity", str,
       "Least severity sent to the webhook."),
    _f("alert_cooldown_s", "alerts.cooldown_s", float,
       "At most one alert per (tenant, kind, subject) in this many seconds."),
    _f("alert_queue_size", "alerts.queue_size", int,
       "Alerts waiting per channel before new ones are dropped (and counted)."),
    _f("alert_timeout_s", "alerts.timeout_s", float, "Timeout of one delivery attempt."),
    _f("alert_retries", "alerts.retries", int,
       "Retries of a failed delivery (network error, 429, 5xx)."),
    _f("alert_backoff_s", "alerts.backoff_s", float,
       "First retry delay; doubles with each retry."),
    _f("idle_timeout_s", "server.idle_timeout_s", float,
       "Longest a client connection may sit idle, and longest a client may take to send a "
       "request's headers (slow clients are disconnected)."),
    _f("body_timeout_s", "server.body_timeout_s", float,
       "Longest a client may take to send a request body."),
    _f("max_header_bytes", "server.max_header_bytes", int,
       "Largest request header block; larger ones get 431 (far larger: the connection is "
       "closed)."),
    _f("max_connections", "server.max_connections", int,
       "Open client connections; beyond it new connections get 503 and are closed."),
    _f("retry_connect_failures", "upstream.retry_connect_failures", int,
       "Retries of an upstream connection that failed before any byte was sent (refused, "
       "reset, DNS); a request the upstream may have received is never retried."),
    _f("sqlite_busy_timeout_ms", "sqlite.busy_timeout_ms", int,
       "How long a batch write waits for a lock held by another process before it fails."),
    _f("breaker_enabled", "breaker.enabled", _parse_bool,
       "Circuit breakers around each exporter and analysis processor."),
    _f("breaker_failure_threshold", "breaker.failure_threshold", int,
       "Failed (or slow) calls among the last breaker.window calls that open a breaker."),
    _f("breaker_window", "breaker.window", int,
       "Calls (export batches, analysed spans) a closed breaker remembers."),
    _f("breaker_recovery_s", "breaker.recovery_s", float,
       "How long an open breaker skips its subsystem before probing it again."),
    _f("breaker_half_open_probes", "breaker.half_open_probes", int,
       "Successful probe calls that close a half-open breaker (one failure re-opens it)."),
    _f("breaker_analysis_slow_ms", "breaker.analysis_slow_ms", float,
       "An analysis processor taking longer than this on one span counts as a failure."),
)

_BY_KEY = {spec.key: spec for spec in FIELDS}
#: Sections of the file that are not flat settings: key -> (Settings field, parser).
_STRUCTURED: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "tenants": ("tenants", parse_overrides),
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(spec: FieldSpec, value: Any, source: str) -> Any:
    """Bring a value from any source to the field's type, or raise ConfigError."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return spec.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{spec.key} ({source}): {exc}") from None
    if spec.parse is _parse_bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{spec.key} ({source}): expected true/false, got {value!r}")
    if spec.parse in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{spec.key} ({source}): expected a number, got {value!r}")
        if spec.parse is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{spec.key} ({source}): expected an integer, got {value!r}")
        return spec.parse(value)
    return str(value)


def _read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    flat = _flatten({k: v for k, v in data.items() if k not in _STRUCTURED})
    flat.update({k: data[k] for k in _STRUCTURED if k in data})
    unknown = sorted(set(flat) - set(_BY_KEY) - set(_STRUCTURED))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; "
            f"known keys: {', '.join(sorted(_BY_KEY))}"
        )
    return flat


def _check_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: {url!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ConfigError(f"{key}: {url!r} must not have a query or fragment")


def validate(settings: Settings) -> Settings:
    """Check cross-field and range rules; return the settings or raise ConfigError."""
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"server.port: {settings.port} is not a port number (0-65535)")
    for name in ("max_body_bytes", "max_upstream_connections", "analysis_queue_size"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{_spec(name).key}: must be >= 1, got {getattr(settings, name)}")
    for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s", "shutdown_timeout_s"):
        value = getattr(settings, name)
        if not value > 0:
            raise ConfigError(f"{_spec(name).key}: must be > 0 seconds, got {value}")
    _check_url("upstream.url", settings.upstream_url)
    _check_url("upstream.anthropic_url", settings.anthropic_upstream_url)
    if settings.otlp_protocol not in ("grpc", "http/protobuf"):
        raise ConfigError(
            f"otlp.protocol: {settings.otlp_protocol!r} is not one of grpc, http/protobuf"
        )
    if settings.otlp_endpoint is not None:
        _check_url("otlp.endpoint", settings.otlp_endpoint)
    if settings.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"logging.level: {settings.log_level!r} is not one of {_LOG_LEVELS}")
    for name in ("metrics_max_models", "provider_health_min_calls",
                 "provider_health_consecutive_failures"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{_spec(name).key}: must be >= 1, got {getattr(settings, name)}")
    if settings.analysis_stall_timeout_s < 0:
        raise ConfigError("telemetry.analysis_stall_timeout_s: must be >= 0 seconds (0 = "
                          f"never), got {settings.analysis_stall_timeout_s}")
    if not settings.provider_health_window_s > 0:
        raise ConfigError("provider_health.window_s: must be > 0 seconds, "
                          f"got {settings.provider_health_window_s}")
    if not 0 < settings.provider_health_failure_ratio <= 1:
        raise ConfigError("provider_health.failure_ratio: must be in (0, 1], "
                          f"got {settings.provider_health_failure_ratio}")
    for path in split_list(settings.metrics_http_exclude_paths):
        if not path.startswith("/"):
            raise ConfigError(f"metrics.http_exclude_paths: {path!r} must start with '/'")
    if settings.event_loop not in ("auto", "uvloop", "asyncio"):
        raise ConfigError(
            f"server.event_loop: {settings.event_loop!r} is not one of auto, uvloop, asyncio"
        )
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"logging.format: {settings.log_format!r} is not text or json")
    token = settings.api_admin_token
    if token is not None and (len(token) < 16 or token.strip() != token or " " in token):
        raise ConfigError(
            "api.admin_token: must be at least 16 characters without spaces (generate one "
            "with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if settings.pricing_file is not None and not Path(settings.pricing_file).is_file():
        raise ConfigError(f"pricing.file: {settings.pricing_file!r} does not exist")
    _validate_receiver(settings)
    _validate_storage(settings)
    _validate_sdk(settings)
    _validate_reliability(settings)
    _validate_security(settings)
    from llmtrace_otel.tenancy.settings import check_settings

    try:
        check_settings(settings)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    return settings


def _validate_storage(settings: Settings) -> None:
    from llmtrace_otel.exporters.store import check_storage_settings

    try:
        check_storage_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _validate_reliability(settings: Settings) -> None:
    for name in ("idle_timeout_s", "body_timeout_s", "breaker_recovery_s",
                 "breaker_analysis_slow_ms"):
        value = getattr(settings, name)
        if not value > 0:
            raise ConfigError(f"{_spec(name).key}: must be > 0, got {value}")
    for name in ("max_header_bytes", "max_connections", "breaker_window",
                 "breaker_half_open_probes"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{_spec(name).key}: must be >= 1, got {getattr(settings, name)}")
    if settings.max_header_bytes < 1024:
        raise ConfigError(f"server.max_header_bytes: must be >= 1024, got "
                          f"{settings.max_header_bytes}")
    if not 0 <= settings.retry_connect_failures <= 5:
        raise ConfigError("upstream.retry_connect_failures: must be between 0 and 5, got "
                          f"{settings.retry_connect_failures}")
    if settings.sqlite_busy_timeout_ms < 0:
        raise ConfigError(f"sqlite.busy_timeout_ms: must be >= 0, got "
                          f"{settings.sqlite_busy_timeout_ms}")
    if not 1 <= settings.breaker_failure_threshold <= settings.breaker_window:
        raise ConfigError(
            f"breaker.failure_threshold: must be between 1 and breaker.window "
            f"({settings.breaker_window}), got {settings.breaker_failure_threshold}")


_SEVERITIES = ("info", "low", "medium", "high", "critical")
_ENFORCEMENT = ("off", "flag", "block")
_PII_EXPORT = ("alert", "redact")
_STREAM_SCAN = ("off", "observe", "stop")


_MAX_SECURITY_WORKERS = 64


def _validate_security(settings: Settings) -> None:
    for name in ("security_min_severity", "security_enforce_min_severity",
                 "security_stream_stop_severity"):
        value = getattr(settings, name)
        if value.strip().lower() not in _SEVERITIES:
            raise ConfigError(
                f"{_spec(name).key}: {value!r} is not one of {', '.join(_SEVERITIES)}"
            )
    if settings.security_enforcement not in _ENFORCEMENT:
        raise ConfigError(
            f"security.enforcement: {settings.security_enforcement!r} is not one of "
            f"{', '.join(_ENFORCEMENT)}"
        )
    if not [t for t in settings.security_enforce_types.split(",") if t.strip()]:
        raise ConfigError("security.enforce_types: names no finding type")
    if settings.security_guard_max_chars < 1:
        raise ConfigError(
            f"security.guard_max_chars: must be >= 1, got {settings.security_guard_max_chars}"
        )
    if not settings.security_guard_budget_ms >= 0:  # also rejects NaN
        raise ConfigError(
            f"security.guard_budget_ms: must be >= 0, got {settings.security_guard_budget_ms}"
        )
    for name, allowed in (("security_pii_export", _PII_EXPORT),
                          ("security_stream_scan", _STREAM_SCAN)):
        if getattr(settings, name) not in allowed:
            raise ConfigError(
                f"{_spec(name).key}: {getattr(settings, name)!r} is not one of "
                f"{', '.join(allowed)}"
            )
    if not 0 <= settings.security_workers <= _MAX_SECURITY_WORKERS:
        raise ConfigError(
            f"security.workers: must be 0-{_MAX_SECURITY_WORKERS}, got {settings.security_workers}"
        )


def _structured(key: str, raw: Any, source: str) -> Any:
    try:
        return _STRUCTURED[key][1](raw, source)
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None


def split_endpoint(key: str, endpoint: str) -> tuple[str, int]:
    """``"0.0.0.0:4317"`` -> ``("0.0.0.0", 4317)``; ``[::1]:4317`` for IPv6. ConfigError else."""
    host, sep, port_text = endpoint.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{key}: {endpoint!r} is not host:port (port 0-65535)")
    return host, int(port_text)


def _validate_receiver(settings: Settings) -> None:
    if settings.receiver_grpc_endpoint is not None:
        split_endpoint("receiver.grpc_endpoint", settings.receiver_grpc_endpoint)
    if settings.receiver_http_endpoint is not None:
        split_endpoint("receiver.http_endpoint", settings.receiver_http_endpoint)
    if settings.receiver_queue_size < 1:
        raise ConfigError(f"receiver.queue_size: must be >= 1, got {settings.receiver_queue_size}")
    if not settings.receiver_retry_after_s > 0:
        raise ConfigError(
            f"receiver.retry_after_s: must be > 0 seconds, got {settings.receiver_retry_after_s}"
        )


def _validate_sdk(settings: Settings) -> None:
    if settings.sdk_exporters not in ("auto", "on", "off"):
        raise ConfigError(
            f"sdk.exporters: {settings.sdk_exporters!r} is not one of auto, on, off")
    if not 0 <= settings.sdk_prometheus_port <= 65535:
        raise ConfigError(f"sdk.prometheus_port: {settings.sdk_prometheus_port} is not a "
                          "port number (0-65535)")
    for url in split_list(settings.sdk_proxy_urls):
        _check_url("sdk.proxy_urls", url)
    for host in split_list(settings.sdk_hosts):
        if "/" in host or ":" in host or " " in host:
            raise ConfigError(f"sdk.hosts: {host!r} is not a host name or *.suffix pattern")


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated setting as its non-empty, stripped items."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _spec(name: str) -> FieldSpec:
    return next(spec for spec in FIELDS if spec.name == name)


def load_settings(
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve settings: ``overrides`` (CLI) > ``env`` > ``config_file`` > defaults.

    ``env`` defaults to ``os.environ``; ``LLMTRACE_CONFIG`` names a file when
    ``config_file`` is not given. Raises ConfigError with a precise message.
    """
    env = os.environ if env is None else env
    config_file = config_file or env.get("LLMTRACE_CONFIG") or None
    values: dict[str, Any] = {}
    if config_file:
        for key, raw in _read_file(config_file).items():
            if key in _STRUCTURED:
                values[_STRUCTURED[key][0]] = _structured(key, raw, f"file {config_file}")
                continue
            spec = _BY_KEY[key]
            values[spec.name] = _coerce(spec, raw, f"file {config_file}")
    for spec in FIELDS:
        raw_env = env.get(spec.env)
        if raw_env is not None and raw_env != "":
            values[spec.name] = _coerce(spec, raw_env, f"env {spec.env}")
    if "otlp_protocol" not in values:
        standard = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        )
        if standard:
            values["otlp_protocol"] = standard
    for name, raw in (overrides or {}).items():
        if name in _STRUCTURED:
            values[_STRUCTURED[name][0]] = _structured(name, raw, "overrides")
        elif raw is not None:
            values[name] = _coerce(_spec(name), raw, f"flag {_spec(name).flag}")
    return validate(dataclasses.replace(Settings(), **values))


def otlp_requested(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """OTLP export is on when an endpoint is configured here or in the standard env vars."""
    env = os.environ if env is None else env
    return settings.otlp_endpoint is not None or bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(key, value, env var) rows for ``validate``; secrets and URL credentials masked."""
    rows = []
    for spec in FIELDS:
        value = getattr(settings, spec.name)
        text = "" if value is None else str(value)
        if spec.secret and text:
            text = "****"
        elif "://" in text and "@" in text:
            scheme, rest = text.split("://", 1)
            text = f"{scheme}://****@{rest.split('@', 1)[1]}"
        rows.append((spec.key, text, spec.env))
    return rows


def log_level_number(settings: Settings) -> int:
    return int(logging.getLevelName(settings.log_level.upper()))
