"""Resolving the configuration: flags > environment > file > defaults, and checking it.

:func:`resolve` reads every source, remembers which one set each value (``validate`` shows
it), checks every key against its rules in FIELDS and every cross-field rule, and raises one
:class:`ConfigError` listing *every* problem found, each naming its key and source, with a
"did you mean" for a misspelled key. Unknown ``LLMTRACE_*`` environment variables are not
errors (the environment is shared with other programs) but come back as warnings.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmtrace_otel.config.errors import ConfigError
from llmtrace_otel.config.fields import FIELDS, FieldSpec, field_by_key, field_by_name
from llmtrace_otel.config.rules import CROSS_FIELD_RULES
from llmtrace_otel.config.settings import Settings
from llmtrace_otel.config.tenants import TenantOverrides, parse_overrides

__all__ = ["CONFIG_ENV", "ConfigError", "Resolution", "describe", "load_settings", "resolve"]

#: Names a config file when no ``--config`` is given.
CONFIG_ENV = "LLMTRACE_CONFIG"
DEFAULT_SOURCE = "default"
#: Sections of the file that are not flat settings.
_STRUCTURED = ("tenants",)
_ENV_PREFIX = "LLMTRACE_"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The resolved settings, which source set each field, and warnings worth showing."""

    settings: Settings
    #: Settings field name -> ``default``, ``file PATH``, ``env NAME`` or ``flag --name``.
    sources: Mapping[str, str]
    warnings: tuple[str, ...] = ()


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


class _Collector:
    """Values by field name, their sources, and the problems met on the way."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.problems: list[str] = []

    def problem(self, key: str, source: str, message: str) -> None:
        where = key if source == DEFAULT_SOURCE else f"{key} ({source})"
        self.problems.append(f"{where}: {message}")

    def set(self, spec: FieldSpec, raw: Any, source: str) -> None:
        try:
            self.values[spec.name] = _coerce(spec, raw)
        except ValueError as exc:
            self.problem(spec.key, source, str(exc))
            self.values.pop(spec.name, None)
        self.sources[spec.name] = source


def _coerce(spec: FieldSpec, value: Any) -> Any:
    """Bring a value from any source (text, or a YAML scalar) to the field's type."""
    if value is None:
        return None
    if isinstance(value, str):
        return spec.from_text(value)
    if spec.is_bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true/false, got {value!r}")
    if spec.is_number:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        if spec.parse is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return spec.parse(value)  # type: ignore[arg-type]
    if spec.choices is not None and isinstance(value, bool):
        return spec.from_text("on" if value else "off")  # YAML reads a bare off as false
    if isinstance(value, Mapping | list):
        raise ValueError(f"expected a single value, got {type(value).__name__}")
    return spec.from_text(str(value))


def _read_file(path: str, found: _Collector) -> TenantOverrides | None:
    source = f"file {path}"
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
    known = [spec.key for spec in FIELDS] + list(_STRUCTURED)
    for key, raw in _flatten({k: v for k, v in data.items() if k not in _STRUCTURED}).items():
        spec = field_by_key(key)
        if spec is None:
            found.problems.append(f"{key} ({source}): unknown key{_did_you_mean(key, known)} "
                                  "(every key: docs/configuration.md)")
            continue
        found.set(spec, raw, source)
    if data.get("tenants") is None:
        return None
    try:
        return parse_overrides(data["tenants"], source)
    except ConfigError as exc:
        found.problems.extend(exc.problems)
        return None


def _read_env(env: Mapping[str, str], found: _Collector) -> list[str]:
    for spec in FIELDS:
        raw = env.get(spec.env)
        if raw is not None and raw != "":
            found.set(spec, raw, f"env {spec.env}")
    if "otlp_protocol" not in found.values:
        for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            if env.get(name):
                found.set(field_by_name("otlp_protocol"), env[name], f"env {name}")
                break
    known = sorted({spec.env for spec in FIELDS} | {CONFIG_ENV})
    return [
        f"environment variable {name} is not a setting and is ignored"
        f"{_did_you_mean(name, known)}"
        for name in sorted(env) if name.startswith(_ENV_PREFIX) and name not in known
    ]


def resolve(
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Resolution:
    """Resolve settings: ``overrides`` (CLI flags, by field name) > ``env`` > file > defaults.

    ``env`` defaults to ``os.environ``; ``LLMTRACE_CONFIG`` names a file when
    ``config_file`` is not given. Raises :class:`ConfigError` listing every problem.
    """
    env = os.environ if env is None else env
    config_file = config_file or env.get(CONFIG_ENV) or None
    found = _Collector()
    tenants = _read_file(config_file, found) if config_file else None
    warnings = _read_env(env, found)
    for name, raw in (overrides or {}).items():
        if name == "tenants":
            try:
                tenants = parse_overrides(raw, "overrides")
            except ConfigError as exc:
                found.problems.extend(exc.problems)
        elif raw is not None:
            spec = field_by_name(name)
            found.set(spec, raw, f"flag {spec.flag}")
    values = {name: value for name, value in found.values.items()}
    if tenants is not None:
        values["tenants"] = tenants
    settings = dataclasses.replace(Settings(), **values)
    sources = {spec.name: found.sources.get(spec.name, DEFAULT_SOURCE) for spec in FIELDS}
    for spec in FIELDS:
        if spec.name in found.values or spec.name not in found.sources:
            message = spec.problem(getattr(settings, spec.name))
            if message is not None:
                found.problem(spec.key, sources[spec.name], message)
    if not found.problems:  # cross-field rules judge values that are each valid
        for rule in CROSS_FIELD_RULES:
            for key, message in rule(settings, env):
                about = field_by_key(key)
                found.problem(key, sources[about.name] if about else DEFAULT_SOURCE, message)
    if found.problems:
        raise ConfigError(found.problems)
    return Resolution(settings, sources, tuple(warnings))


def load_settings(
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """:func:`resolve`, for callers that need only the settings."""
    return resolve(config_file, env, overrides).settings


def describe(resolution: Resolution) -> list[tuple[str, str, str]]:
    """(key, value, source) rows for ``validate``; secrets and URL credentials masked."""
    rows = []
    for spec in FIELDS:
        value = getattr(resolution.settings, spec.name)
        text = "" if value is None else str(value)
        text = "****" if spec.secret and text else mask_url_credentials(text)
        rows.append((spec.key, text, resolution.sources.get(spec.name, DEFAULT_SOURCE)))
    return rows


def mask_url_credentials(text: str) -> str:
    """``scheme://user:pass@host/...`` -> ``scheme://****@host/...`` (else unchanged)."""
    if "://" not in text:
        return text
    scheme, rest = text.split("://", 1)
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return text
    return f"{scheme}://****@{authority.rsplit('@', 1)[1]}{slash}{path}"
