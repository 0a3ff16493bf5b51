"""The one table of settings: every key's names, type, range and allowed values.

Each :class:`FieldSpec` says how one :class:`~llmtrace_otel.config.settings.Settings` field
is named in each source (YAML key, environment variable, CLI flag), how its text is parsed
(``bool``, ``int``, ``float``, ``str``, or a :mod:`~llmtrace_otel.config.choices` enum), and
the rules its value must meet (bounds, a format check). The CLI flags, the env lookup,
validation, ``validate`` output and docs/configuration.md all follow from this table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from llmtrace_otel.config.choices import (
    AlertLevel,
    BackendErrorPolicy,
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
from llmtrace_otel.config.values import (
    check_admin_token,
    check_endpoint,
    check_file_exists,
    check_host_patterns,
    check_http_url,
    check_http_urls,
    check_key_prefix,
    check_networks,
    check_not_empty_list,
    check_path_list,
    check_port,
    check_redis_url,
    check_tenant_id,
    parse_bool,
    parse_endpoint,
    parse_optional_str,
)

__all__ = ["FIELDS", "FieldSpec", "field_by_key", "field_by_name"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One setting: its names in every source, its parser and the rules of its value."""

    name: str  # Settings attribute
    key: str  # dotted YAML key
    env: str  # environment variable
    parse: Callable[[str], Any]  # text -> value; an enum class for a choice
    help: str
    secret: bool = False
    #: Inclusive lower bound, exclusive lower bound, inclusive upper bound of a number.
    low: float | None = None
    above: float | None = None
    high: float | None = None
    #: 0 is accepted (meaning off or unlimited) whatever the bounds say.
    zero_off: bool = False
    #: A format rule: the problem with a parsed value, or None.
    check: Callable[[Any], str | None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_bool(self) -> bool:
        return self.parse is parse_bool

    @property
    def is_number(self) -> bool:
        return self.parse in (int, float)

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The allowed values of a choice, in order; None for other settings."""
        if isinstance(self.parse, type) and issubclass(self.parse, StrEnum):
            return tuple(member.value for member in self.parse)
        return None

    def from_text(self, text: str) -> Any:
        """Parse one source's text; ValueError says what was expected."""
        choices = self.choices
        if choices is not None:
            wanted = text.strip().lower()
            for member in self.parse:  # type: ignore[attr-defined]
                if member.value.lower() == wanted:
                    return member
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return self.parse(text)

    def problem(self, value: Any) -> str | None:
        """What is wrong with a parsed value under this key's rules, or None."""
        if value is None:
            return None
        if self.is_number and not isinstance(value, bool):
            if not math.isfinite(value):
                return f"must be a finite number, got {value}"
            if not (self.zero_off and value == 0):
                bounded = self._bounds_problem(value)
                if bounded is not None:
                    return bounded
        return self.check(value) if self.check is not None else None

    def _bounds_problem(self, value: float) -> str | None:
        low, above, high = self.low, self.above, self.high
        too_low = (low is not None and value < low) or (above is not None and value <= above)
        too_high = high is not None and value > high
        if not (too_low or too_high):
            return None
        zero = "0 (off) or " if self.zero_off else ""
        unit = " seconds" if self.name.endswith("_s") and not self.name.endswith("per_s") else ""
        if high is not None and (low is not None or above is not None):
            opener = f"between {_num(low)} and" if low is not None else f"> {_num(above)} and <="
            return f"must be {zero}{opener} {_num(high)}{unit}, got {_num(value)}"
        if high is not None:
            return f"must be {zero}<= {_num(high)}{unit}, got {_num(value)}"
        if low is not None:
            return f"must be {zero}>= {_num(low)}{unit}, got {_num(value)}"
        return f"must be {zero}> {_num(above)}{unit}, got {_num(value)}"


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _f(name: str, key: str, parse: Callable[[str], Any], help: str, env: str | None = None,
       secret: bool = False, **rules: Any) -> FieldSpec:
    return FieldSpec(name, key, env or "LLMTRACE_" + key.replace(".", "_").upper(), parse, help,
                     secret, **rules)


#: The one table of settings. Order is the order of docs and ``validate`` output.
FIELDS: tuple[FieldSpec, ...] = (
    _f("host", "server.host", str, "Interface the proxy listens on."),
    _f("port", "server.port", int, "Port of the proxy, /metrics and /health (0 = any free).",
       check=check_port),
    _f("max_body_bytes", "server.max_body_bytes", int,
       "Largest request body accepted; larger bodies get 413.", low=1),
    _f("shutdown_timeout_s", "server.shutdown_timeout_s", float,
       "On SIGTERM/SIGINT, how long in-flight calls may take to finish.", above=0),
    _f("workers", "server.workers", int,
       "Relay processes serving the one port (0 = one per core). With more than one, a "
       "telemetry process runs the analysis, the exporters and /metrics for all of them "
       "(docs/architecture.md, Processes).", low=0, high=256),
    _f("event_loop", "server.event_loop", EventLoop,
       "Event loop of serve/collect: auto (uvloop when installed), uvloop or asyncio."),
    _f("gc_freeze", "server.gc_freeze", parse_bool,
       "Once started, move the start-up heap out of the garbage collector's full passes "
       "(gc.freeze): shorter stop-the-world pauses."),
    _f("upstream_url", "upstream.url", str,
       "Base URL of the OpenAI-compatible upstream (paths are appended).", check=check_http_url),
    _f("anthropic_upstream_url", "upstream.anthropic_url", str,
       "Base URL for Anthropic-shaped calls (/v1/messages or an anthropic-version header).",
       check=check_http_url),
    _f("connect_timeout_s", "upstream.connect_timeout_s", float, "Upstream connect timeout.",
       above=0),
    _f("read_timeout_s", "upstream.read_timeout_s", float,
       "Longest silence between two reads from the upstream.", above=0),
    _f("total_timeout_s", "upstream.total_timeout_s", float,
       "Longest a whole upstream call (streams included) may take.", above=0),
    _f("max_upstream_connections", "upstream.max_connections", int,
       "Size of the upstream connection pool.", low=1),
    _f("stream_include_usage", "upstream.stream_include_usage", parse_bool,
       "Ask OpenAI streams for usage (stream_options.include_usage) and hide the extra "
       "chunk from clients that did not ask for it."),
    _f("capture_content", "telemetry.capture_content", parse_bool,
       "Export message content (gen_ai.input.messages, ...). Analysis sees it regardless.",
       env="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"),
    _f("semconv_stability_opt_in", "telemetry.semconv_stability_opt_in", str,
       "gen_ai_latest_experimental: emit the latest GenAI semantic conventions (comma list, "
       "as OTel instrumentations read it); empty: the previous names.",
       env="OTEL_SEMCONV_STABILITY_OPT_IN"),
    _f("service_name", "telemetry.service_name", str,
       "service.name of the resource (OTEL_SERVICE_NAME, when set, wins).",),
    _f("analysis_queue_size", "telemetry.analysis_queue_size", int,
       "Spans waiting for analysis/export before new ones are dropped (and counted).", low=1),
    _f("analysis_stall_timeout_s", "telemetry.analysis_stall_timeout_s", float,
       "A span still in the analysis chain after this long: the stage it is stuck in is "
       "bypassed and a new worker takes the queue (0 = never).", low=0),
    _f("sqlite_enabled", "sqlite.enabled", parse_bool, "Store spans in SQLite."),
    _f("sqlite_path", "sqlite.path", str, "SQLite database file."),
    _f("otlp_endpoint", "otlp.endpoint", parse_optional_str,
       "Export traces and metrics over OTLP to this endpoint (else OTEL_EXPORTER_OTLP_"
       "ENDPOINT, when set).", check=check_http_url),
    _f("otlp_protocol", "otlp.protocol", OtlpProtocol,
       "OTLP protocol: grpc or http/protobuf (else OTEL_EXPORTER_OTLP_PROTOCOL)."),
    _f("metrics_enabled", "metrics.enabled", parse_bool, "Serve Prometheus metrics at /metrics."),
    _f("metrics_max_models", "metrics.max_models", int,
       "Distinct model names a metric label keeps; later ones are counted as `_other` "
       "(spans keep the real name).", low=1),
    _f("metrics_max_providers", "metrics.max_providers", int,
       "Distinct provider names clients may introduce with X-LLMTrace-Provider (beyond the "
       "providers the GenAI conventions name); later ones are `_other` on spans, metrics and "
       "/health.", low=1, high=10_000),
    _f("metrics_model_allowlist", "metrics.model_allowlist", str,
       "Comma-separated model names that metric labels keep (all others `_other`); "
       "replaces metrics.max_models when set."),
    _f("metrics_http_server", "metrics.http_server", parse_bool,
       "Record the OTel HTTP server metrics (http.server.*) for every route of the port."),
    _f("metrics_http_exclude_paths", "metrics.http_exclude_paths", str,
       "Comma-separated paths left out of the http.server.* metrics.", check=check_path_list),
    _f("metrics_process", "metrics.process", parse_bool,
       "Report process metrics (CPU, memory, file descriptors, threads, GC, start time)."),
    _f("provider_health_window_s", "provider_health.window_s", float,
       "Sliding window of call outcomes that decides llmtrace_provider_available.", above=0),
    _f("provider_health_min_calls", "provider_health.min_calls", int,
       "Calls in the window before the failure ratio can mark a provider unavailable.", low=1),
    _f("provider_health_failure_ratio", "provider_health.failure_ratio", float,
       "Share of failed calls in the window (0-1] that marks a provider unavailable.",
       above=0, high=1),
    _f("provider_health_consecutive_failures", "provider_health.consecutive_failures", int,
       "This many failures in a row mark a provider unavailable at once.", low=1),
    _f("pricing_file", "pricing.file", parse_optional_str,
       "Price table (our YAML/JSON or LiteLLM JSON) overriding/extending the built-in one.",
       check=check_file_exists),
    _f("log_level", "logging.level", LogLevel, "DEBUG, INFO, WARNING or ERROR."),
    _f("log_format", "logging.format", LogFormat, "text or json."),
    _f("security_enabled", "security.enabled", parse_bool,
       "Scan GenAI span content for prompt injection, jailbreaks, PII, secrets and leakage "
       "(off the request path)."),
    _f("security_min_severity", "security.min_severity", SeverityName,
       "Lowest severity reported as a finding: info, low, medium, high or critical."),
    _f("security_enforcement", "security.enforcement", Enforcement,
       "Request-path check before the upstream call: off, flag (response header + span "
       "attribute) or block (4xx in the API's error shape, no upstream call)."),
    _f("security_enforce_types", "security.enforce_types", str,
       "Comma-separated finding-type prefixes enforcement acts on (prompt_injection, "
       "jailbreak, pii, secret, or exact types such as pii.credit_card).",
       check=check_not_empty_list),
    _f("security_enforce_min_severity", "security.enforce_min_severity", SeverityName,
       "Lowest severity of an input finding that enforcement flags or blocks."),
    _f("security_fail_closed", "security.fail_closed", parse_bool,
       "In block mode, reject the call (503) when the check itself fails, instead of "
       "letting it through."),
    _f("security_guard_max_chars", "security.guard_max_chars", int,
       "Request text the request-path check reads; longer inputs are checked head and tail.",
       low=1),
    _f("security_guard_budget_ms", "security.guard_budget_ms", float,
       "Time the request-path check may take (ms, checked between detectors and texts); "
       "when spent, found findings are enforced, else security.fail_closed decides. 0 = "
       "no limit.", low=0),
    _f("security_pii_export", "security.pii_export", PiiExport,
       "PII and secrets in exported content (with telemetry.capture_content): alert (export "
       "as is, findings only) or redact ([PII:EMAIL], [SECRET:AWS_ACCESS_KEY] placeholders "
       "in the exported copy; the client and upstream see the original)."),
    _f("security_stream_scan", "security.stream_scan", StreamScan,
       "Scan streamed output as it is relayed, for secrets, leakage and exfiltration: off, "
       "observe (findings on the span) or stop (end the stream on a finding at or above "
       "security.stream_stop_severity)."),
    _f("security_stream_stop_severity", "security.stream_stop_severity", SeverityName,
       "Lowest severity of a streamed-output finding that ends the stream in stop mode."),
    _f("security_workers", "security.workers", int,
       "Worker processes that run the security detectors on span content (0 = in the "
       "process, on the analysis thread); >0 lets analysis use more cores.", low=0, high=64),
    _f("sdk_hosts", "sdk.hosts", str,
       "SDK instrumentation: hosts whose calls may be LLM calls, comma-separated (exact, or "
       "*.suffix); empty = any host whose path is an API shape.", check=check_host_patterns),
    _f("sdk_proxy_urls", "sdk.proxy_urls", str,
       "SDK instrumentation: base URLs of llmtrace-otel proxies, comma-separated; calls to "
       "them carry the trace context but get no SDK span (the proxy records them).",
       check=check_http_urls),
    _f("sdk_exporters", "sdk.exporters", SdkExporters,
       "SDK instrumentation: also use llmtrace's own exporters (sqlite.*, otlp.*): auto "
       "(only when the application has no TracerProvider), on or off."),
    _f("sdk_prometheus_port", "sdk.prometheus_port", int,
       "SDK instrumentation without an application MeterProvider: serve Prometheus "
       "metrics on this port (0 = off).", check=check_port),
    _f("api_enabled", "api.enabled", parse_bool,
       "Serve the read-only query API (/api/v1/...) and the trace viewer (/ui) on the proxy's "
       "port; those paths are then not proxied."),
    _f("api_admin_token", "api.admin_token", parse_optional_str,
       "When set, /api/v1/... (budgets included) and /metrics require 'Authorization: Bearer "
       "<token>' (the viewer asks for it). Unset: they are open to whoever can reach the "
       "port.", secret=True,
       check=check_admin_token),
    _f("receiver_grpc_endpoint", "receiver.grpc_endpoint", parse_endpoint,
       "host:port of the OTLP/gRPC receiver of `collect` (`off` = none).", check=check_endpoint),
    _f("receiver_http_endpoint", "receiver.http_endpoint", parse_endpoint,
       "host:port of the OTLP/HTTP receiver of `collect` (`off` = none).", check=check_endpoint),
    _f("receiver_on_proxy", "receiver.on_proxy", parse_bool,
       "`serve` also accepts OTLP/HTTP at /v1/traces, /v1/logs and /v1/metrics on the proxy's "
       "port."),
    _f("receiver_auth_token", "receiver.auth_token", parse_optional_str,
       "When set, OTLP senders must send `Authorization: Bearer <token>` (at least 16 "
       "characters). Required when a receiver listens beyond loopback.", secret=True,
       check=check_admin_token),
    _f("receiver_allow_unauthenticated", "receiver.allow_unauthenticated", parse_bool,
       "Accept OTLP without receiver.auth_token on a non-loopback address (only behind a "
       "network boundary you trust)."),
    _f("receiver_queue_size", "receiver.queue_size", int,
       "Received spans waiting for the pipeline; beyond it senders are told to retry.", low=1),
    _f("receiver_retry_after_s", "receiver.retry_after_s", float,
       "Delay suggested to senders when the queue is full (RetryInfo / Retry-After).", above=0),
    _f("receiver_forward_metrics", "receiver.forward_metrics", parse_bool,
       "Forward received OTLP metrics unchanged to the OTLP endpoint (else refused)."),
    _f("receiver_join_wait_s", "receiver.join_wait_s", float,
       "How long a received call span waits for its log events or its twin span (the "
       "anthropic SDK's own span) before analysis; 0 = never.", low=0, high=60),
    # Tenancy, limits, budgets, anomalies, alerts (docs/tenancy.md)
    _f("tenancy_enabled", "tenancy.enabled", parse_bool,
       "Identify tenants (header, API-key hash, default) and enforce their limits."),
    _f("default_tenant", "tenancy.default_tenant", str,
       "Tenant of calls with neither an X-LLMTrace-Tenant-ID header nor an API key.",
       check=check_tenant_id),
    _f("tenant_key_secret", "tenancy.key_secret", parse_optional_str,
       "HMAC secret for tenant ids derived from API keys (unset: one is generated once and "
       "kept beside the SQLite store, <sqlite.path>.tenant-key, 0600; set the same value on "
       "every instance that shares state).", secret=True),
    _f("tenant_header_trusted_from", "tenancy.header_trusted_from", str,
       "Callers (IP addresses or CIDR networks, comma-separated; * = anyone) whose "
       "X-LLMTrace-Tenant-ID header names their tenant, e.g. the gateway in front of the "
       "proxy. Empty: nobody; the tenant comes from the API key.",
       check=check_networks),
    _f("metric_tenants", "tenancy.metric_tenants", int,
       "Tenants with their own metric series; later ones share tenant=\"_other\".",
       low=0, high=100_000),
    _f("requests_per_s", "limits.requests_per_s", float,
       "Default per-tenant request rate (token bucket); 0 = unlimited.",
       low=1e-6, high=1e6, zero_off=True),
    _f("request_burst", "limits.request_burst", float,
       "Default request bucket capacity; 0 = max(1, requests_per_s).",
       low=1, high=1e9, zero_off=True),
    _f("tokens_per_min", "limits.tokens_per_min", float,
       "Default per-tenant tokens per minute (max_tokens up front, reconciled from "
       "usage); 0 = unlimited.", low=1, high=1e12, zero_off=True),
    _f("limits_on_backend_error", "limits.on_backend_error", BackendErrorPolicy,
       "State backend unreachable: open (let calls through) or closed (503)."),
    *(
        _f(f"budget_{window}_{level}_usd", f"budgets.{window}_{level}_usd", float,
           f"Default {window} {level} budget per tenant in USD "
           f"({'alert' if level == 'soft' else '429 budget_exceeded'}); 0 = none.",
           low=1e-9, high=1e9, zero_off=True)
        for window in ("hourly", "daily", "weekly", "monthly") for level in ("soft", "hard")
    ),
    _f("state_backend", "state.backend", StateBackend,
       "Where limits and spend live: memory (this process) or redis (shared)."),
    _f("redis_url", "state.redis_url", str, "Redis URL for state.backend=redis.",
       check=check_redis_url),
    _f("redis_timeout_s", "state.redis_timeout_s", float,
       "Redis connect/read timeout; on failure Redis is skipped for 1 s.", low=0.001, high=60),
    _f("state_key_prefix", "state.key_prefix", str, "Prefix of every Redis key.",
       check=check_key_prefix),
    _f("anomaly_enabled", "anomaly.enabled", parse_bool,
       "Flag calls and rate windows far above their tenant's baseline."),
    _f("anomaly_sigma", "anomaly.sigma", float,
       "Standard deviations above the EWMA mean that count as an anomaly.", low=0.5, high=100),
    _f("anomaly_min_samples", "anomaly.min_samples", int,
       "Warm-up: calls (or rate windows) seen before a tenant can be flagged.", low=2, high=1e9),
    _f("anomaly_alpha", "anomaly.alpha", float,
       "EWMA weight of the newest sample (0-1; smaller = longer memory).", low=1e-6, high=0.999999),
    _f("anomaly_rate_window_s", "anomaly.rate_window_s", float,
       "Window of the request-rate and error-rate statistics.", low=0.001, high=86400),
    _f("alert_slack_webhook_url", "alerts.slack.webhook_url", parse_optional_str,
       "Slack incoming-webhook URL.", secret=True, check=check_http_url),
    _f("alert_slack_min_severity", "alerts.slack.min_severity", AlertLevel,
       "Least severity sent to Slack: info, warning, error, critical."),
    _f("alert_pagerduty_routing_key", "alerts.pagerduty.routing_key", parse_optional_str,
       "PagerDuty Events API v2 routing (integration) key.", secret=True),
    _f("alert_pagerduty_url", "alerts.pagerduty.url", str, "PagerDuty Events API v2 URL.",
       check=check_http_url),
    _f("alert_pagerduty_min_severity", "alerts.pagerduty.min_severity", AlertLevel,
       "Least severity sent to PagerDuty."),
    _f("alert_webhook_url", "alerts.webhook.url", parse_optional_str,
       "Generic webhook receiving alert JSON.", check=check_http_url),
    _f("alert_webhook_min_severity", "alerts.webhook.min_severity", AlertLevel,
       "Least severity sent to the webhook."),
    _f("alert_cooldown_s", "alerts.cooldown_s", float,
       "At most one alert per (tenant, kind, subject) in this many seconds.",
       low=0, high=7 * 86400),
    _f("alert_queue_size", "alerts.queue_size", int,
       "Alerts waiting per channel before new ones are dropped (and counted).",
       low=1, high=1_000_000),
    _f("alert_timeout_s", "alerts.timeout_s", float, "Timeout of one delivery attempt.",
       low=0.001, high=300),
    _f("alert_retries", "alerts.retries", int,
       "Retries of a failed delivery (network error, 429, 5xx).", low=0, high=10),
    _f("alert_backoff_s", "alerts.backoff_s", float,
       "First retry delay; doubles with each retry.", low=0, high=600),
    _f("idle_timeout_s", "server.idle_timeout_s", float,
       "Longest a client connection may sit idle, and longest a client may take to send a "
       "request's headers (slow clients are disconnected).", above=0),
    _f("body_timeout_s", "server.body_timeout_s", float,
       "Longest a client may take to send a request body.", above=0),
    _f("max_header_bytes", "server.max_header_bytes", int,
       "Largest request header block; larger ones get 431 (far larger: the connection is "
       "closed).", low=1024),
    _f("max_connections", "server.max_connections", int,
       "Open client connections; beyond it new connections get 503 and are closed.", low=1),
    _f("allowed_hosts", "server.allowed_hosts", str,
       "Host header values the server answers to, comma-separated (names, *.suffix, or *); "
       "empty: loopback names only when it listens on loopback (no DNS rebinding), any host "
       "otherwise. Others get 403.", check=check_host_patterns),
    _f("max_inflight_body_bytes", "server.max_inflight_body_bytes", int,
       "Request-body bytes all connections together may be sending at once; past it, 503 "
       "with Retry-After.", low=1024),
    _f("retry_connect_failures", "upstream.retry_connect_failures", int,
       "Retries of an upstream connection that failed before any byte was sent (refused, "
       "reset, DNS); a request the upstream may have received is never retried.", low=0, high=5),
    _f("sqlite_busy_timeout_ms", "sqlite.busy_timeout_ms", int,
       "How long a batch write waits for a lock held by another process before it fails.", low=0),
    _f("breaker_enabled", "breaker.enabled", parse_bool,
       "Circuit breakers around each exporter and analysis processor."),
    _f("breaker_failure_threshold", "breaker.failure_threshold", int,
       "Failed (or slow) calls among the last breaker.window calls that open a breaker.", low=1),
    _f("breaker_window", "breaker.window", int,
       "Calls (export batches, analysed spans) a closed breaker remembers.", low=1),
    _f("breaker_recovery_s", "breaker.recovery_s", float,
       "How long an open breaker skips its subsystem before probing it again.", above=0),
    _f("breaker_half_open_probes", "breaker.half_open_probes", int,
       "Successful probe calls that close a half-open breaker (one failure re-opens it).", low=1),
    _f("breaker_analysis_slow_ms", "breaker.analysis_slow_ms", float,
       "An analysis processor taking longer than this on one span counts as a failure.", above=0),
)

_BY_NAME = {spec.name: spec for spec in FIELDS}
_BY_KEY = {spec.key: spec for spec in FIELDS}


def field_by_name(name: str) -> FieldSpec:
    return _BY_NAME[name]


def field_by_key(key: str) -> FieldSpec | None:
    return _BY_KEY.get(key)
