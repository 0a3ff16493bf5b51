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

__all__ = ["FIELDS", "ConfigError", "FieldSpec", "Settings", "load_settings"]


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key and its source."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration of one llmtrace-otel process."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 32 * 1024 * 1024
    shutdown_timeout_s: float = 15.0
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
    sqlite_enabled: bool = True
    sqlite_path: str = "llmtrace.db"
    otlp_endpoint: str | None = None
    otlp_protocol: str = "grpc"
    metrics_enabled: bool = True
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


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _parse_optional_str(text: str) -> str | None:
    return text or None


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
    _f("sqlite_enabled", "sqlite.enabled", _parse_bool, "Store spans in SQLite."),
    _f("sqlite_path", "sqlite.path", str, "SQLite database file."),
    _f("otlp_endpoint", "otlp.endpoint", _parse_optional_str,
       "Export traces and metrics over OTLP to this endpoint (else OTEL_EXPORTER_OTLP_"
       "ENDPOINT, when set)."),
    _f("otlp_protocol", "otlp.protocol", str,
       "OTLP protocol: grpc or http/protobuf (else OTEL_EXPORTER_OTLP_PROTOCOL)."),
    _f("metrics_enabled", "metrics.enabled", _parse_bool, "Serve Prometheus metrics at /metrics."),
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
)

_BY_KEY = {spec.key: spec for spec in FIELDS}
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
    flat = _flatten(data)
    unknown = sorted(set(flat) - set(_BY_KEY))
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
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"logging.format: {settings.log_format!r} is not text or json")
    if settings.pricing_file is not None and not Path(settings.pricing_file).is_file():
        raise ConfigError(f"pricing.file: {settings.pricing_file!r} does not exist")
    _validate_security(settings)
    return settings


_SEVERITIES = ("info", "low", "medium", "high", "critical")
_ENFORCEMENT = ("off", "flag", "block")


def _validate_security(settings: Settings) -> None:
    for name in ("security_min_severity", "security_enforce_min_severity"):
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
        if raw is not None:
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
