"""The resolved configuration of one process: one frozen :class:`Settings`.

Every field is declared in :data:`~llmtrace_otel.config.fields.FIELDS` (names, type, rules);
the ``tenants:`` section of the file is the one structured value
(:mod:`~llmtrace_otel.config.tenants`). Parts never receive
``Settings``: the assembly (:mod:`llmtrace_otel.wiring`) builds each part's own small
config from it.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from llmtrace_otel.config.tenants import TenantOverrides

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration of one llmtrace-otel process."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    shutdown_timeout_s: float = 15.0
    workers: int = 1
    event_loop: EventLoop = EventLoop.AUTO
    gc_freeze: bool = True
    upstream_url: str = "https://api.openai.com"
    anthropic_upstream_url: str = "https://api.anthropic.com"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    total_timeout_s: float = 600.0
    max_upstream_connections: int = 512
    stream_include_usage: bool = True
    capture_content: bool = False
    semconv_stability_opt_in: str = ""
    service_name: str = "llmtrace-otel"
    analysis_queue_size: int = 8192
    analysis_stall_timeout_s: float = 30.0
    sqlite_enabled: bool = True
    sqlite_path: str = "llmtrace.db"
    otlp_endpoint: str | None = None
    otlp_protocol: OtlpProtocol = OtlpProtocol.GRPC
    metrics_enabled: bool = True
    metrics_max_models: int = 200
    metrics_max_providers: int = 50
    metrics_model_allowlist: str = ""
    metrics_http_server: bool = True
    metrics_http_exclude_paths: str = "/health,/metrics"
    metrics_process: bool = True
    provider_health_window_s: float = 60.0
    provider_health_min_calls: int = 5
    provider_health_failure_ratio: float = 0.5
    provider_health_consecutive_failures: int = 5
    pricing_file: str | None = None
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.TEXT
    security_enabled: bool = True
    security_min_severity: SeverityName = SeverityName.LOW
    security_enforcement: Enforcement = Enforcement.OFF
    security_enforce_types: str = "prompt_injection,jailbreak"
    security_enforce_min_severity: SeverityName = SeverityName.HIGH
    security_fail_closed: bool = False
    security_guard_max_chars: int = 50_000
    security_guard_budget_ms: float = 5.0
    security_pii_export: PiiExport = PiiExport.ALERT
    security_stream_scan: StreamScan = StreamScan.OFF
    security_stream_stop_severity: SeverityName = SeverityName.CRITICAL
    security_workers: int = 0
    sdk_hosts: str = ""
    sdk_proxy_urls: str = ""
    sdk_exporters: SdkExporters = SdkExporters.AUTO
    sdk_prometheus_port: int = 0
    api_enabled: bool = True
    api_admin_token: str | None = None
    # OTLP receiver (`llmtrace-otel collect`, docs/collector.md)
    receiver_grpc_endpoint: str | None = "127.0.0.1:4317"
    receiver_http_endpoint: str | None = "127.0.0.1:4318"
    receiver_on_proxy: bool = False
    receiver_auth_token: str | None = None
    receiver_allow_unauthenticated: bool = False
    receiver_queue_size: int = 8192
    receiver_retry_after_s: float = 1.0
    receiver_forward_metrics: bool = False
    receiver_join_wait_s: float = 1.0
    # Tenancy, limits, budgets, anomalies, alerts (docs/tenancy.md)
    tenancy_enabled: bool = True
    default_tenant: str = "default"
    tenant_key_secret: str | None = None
    tenant_header_trusted_from: str = ""
    metric_tenants: int = 100
    requests_per_s: float = 0.0
    request_burst: float = 0.0
    tokens_per_min: float = 0.0
    limits_on_backend_error: BackendErrorPolicy = BackendErrorPolicy.OPEN
    budget_hourly_soft_usd: float = 0.0
    budget_hourly_hard_usd: float = 0.0
    budget_daily_soft_usd: float = 0.0
    budget_daily_hard_usd: float = 0.0
    budget_weekly_soft_usd: float = 0.0
    budget_weekly_hard_usd: float = 0.0
    budget_monthly_soft_usd: float = 0.0
    budget_monthly_hard_usd: float = 0.0
    state_backend: StateBackend = StateBackend.MEMORY
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 0.25
    state_key_prefix: str = "llmtrace:"
    anomaly_enabled: bool = False
    anomaly_sigma: float = 4.0
    anomaly_min_samples: int = 30
    anomaly_alpha: float = 0.05
    anomaly_rate_window_s: float = 60.0
    alert_slack_webhook_url: str | None = None
    alert_slack_min_severity: AlertLevel = AlertLevel.WARNING
    alert_pagerduty_routing_key: str | None = None
    alert_pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    alert_pagerduty_min_severity: AlertLevel = AlertLevel.ERROR
    alert_webhook_url: str | None = None
    alert_webhook_min_severity: AlertLevel = AlertLevel.INFO
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
    allowed_hosts: str = ""
    max_inflight_body_bytes: int = 256 * 1024 * 1024
    retry_connect_failures: int = 1
    sqlite_busy_timeout_ms: int = 5000
    breaker_enabled: bool = True
    breaker_failure_threshold: int = 5
    breaker_window: int = 20
    breaker_recovery_s: float = 30.0
    breaker_half_open_probes: int = 2
    breaker_analysis_slow_ms: float = 250.0
