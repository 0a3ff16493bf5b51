"""Reading price tables: our own format (JSON or YAML) and LiteLLM's JSON.

Our format, USD per 1M tokens::

    {"version": 1, "as_of": "2026-11-01", "source": "...",
     "models": {"gpt-4o": {"input": 2.5, "output": 10, "cache_read": 1.25,
                           "provider": "openai", "aliases": ["gpt-4o-chat"]}}}

LiteLLM's ``model_prices_and_context_window.json``: a mapping of model name to a dict
with per-token costs (``input_cost_per_token``, ``output_cost_per_token``,
``cache_read_input_token_cost``, ``cache_creation_input_token_cost``,
``output_cost_per_reasoning_token``) and ``litellm_provider``. ``sample_spec`` and
entries without token costs (images, audio seconds, ...) are skipped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from llmtrace_processors.cost._names import normalize
from llmtrace_processors.cost._price import ModelPrice, PriceFileError

__all__ = ["ParsedTable", "parse_price_document", "read_price_file"]

Format = Literal["llmtrace", "litellm"]

_TOP_LEVEL_KEYS = frozenset({"version", "as_of", "source", "models"})
_ENTRY_KEYS = frozenset(
    {"input", "output", "cache_read", "cache_write", "reasoning", "provider", "aliases", "note"}
)
_LITELLM_MARKERS = frozenset(
    {"input_cost_per_token", "output_cost_per_token", "litellm_provider", "mode"}
)
_LITELLM_SKIP = frozenset({"sample_spec"})


@dataclass(frozen=True, slots=True)
class ParsedTable:
    """A validated price document: entries and aliases keyed by normalized name."""

    entries: Mapping[str, ModelPrice]
    aliases: Mapping[str, str] = field(default_factory=dict)
    as_of: date | None = None
    source: str | None = None
    format: Format = "llmtrace"


def read_price_file(path: str | os.PathLike[str]) -> ParsedTable:
    """Read and validate a price file; JSON or YAML by suffix (JSON first otherwise)."""
    origin = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceFileError(origin, f"cannot be read: {exc.strerror or exc}") from exc
    suffix = Path(path).suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = _load_yaml(text, origin)
    elif suffix == ".json":
        data = _load_json(text, origin)
    else:
        try:
            data = json.loads(text)
        except ValueError:
            data = _load_yaml(text, origin)
    return parse_price_document(data, origin)


def _load_json(text: str, origin: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PriceFileError(origin, f"is not valid JSON: {exc}") from exc


def _load_yaml(text: str, origin: str) -> object:
    try:
        import yaml  # optional: processors depend only on OTel; YAML needs PyYAML
    except ImportError as exc:  # pragma: no cover - PyYAML ships with llmtrace-otel
        raise PriceFileError(origin, "is YAML but PyYAML is not installed") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PriceFileError(origin, f"is not valid YAML: {exc}") from exc


def parse_price_document(data: object, origin: str) -> ParsedTable:
    """Validate an already-decoded document in either supported format."""
    if not isinstance(data, Mapping):
        raise PriceFileError(
            origin, f"must be a mapping at the top level, got {type(data).__name__}"
        )
    if isinstance(data.get("models"), Mapping):
        return _parse_llmtrace(data, origin)
    if _looks_like_litellm(data):
        return _parse_litellm(data, origin)
    raise PriceFileError(
        origin,
        "is not a recognized price table: expected a top-level 'models' mapping "
        "(llmtrace format, see docs/pricing.md) or LiteLLM's "
        "model_prices_and_context_window.json",
    )


# -- llmtrace format -------------------------------------------------------------------


def _parse_llmtrace(data: Mapping[object, object], origin: str) -> ParsedTable:
    unknown = sorted(str(key) for key in data if key not in _TOP_LEVEL_KEYS)
    if unknown:
        raise PriceFileError(
            origin,
            f"unknown top-level key(s) {unknown}; allowed: {sorted(_TOP_LEVEL_KEYS)}",
        )
    source = data.get("source")
    if source is not None and not isinstance(source, str):
        raise PriceFileError(origin, f"'source' must be a string, got {source!r}")
    models = data["models"]
    assert isinstance(models, Mapping)
    entries: dict[str, ModelPrice] = {}
    alias_of: dict[str, str] = {}
    for raw_name, spec in models.items():
        name = _entry_name(raw_name, origin)
        entries[name] = _llmtrace_entry(name, spec, origin)
        for alias in _aliases(name, spec, origin):
            if alias in alias_of and alias_of[alias] != name:
                raise PriceFileError(
                    origin,
                    f"alias {alias!r} is already an alias of {alias_of[alias]!r}",
                    entry=name,
                )
            alias_of[alias] = name
    for alias, target in alias_of.items():
        if alias in entries:
            raise PriceFileError(
                origin, f"alias {alias!r} is also a model entry of its own", entry=target
            )
    return ParsedTable(
        entries=entries,
        aliases=alias_of,
        as_of=_as_of(data.get("as_of"), origin),
        source=source,
        format="llmtrace",
    )


def _entry_name(raw: object, origin: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise PriceFileError(origin, f"model names must be non-empty strings, got {raw!r}")
    return normalize(raw)


def _llmtrace_entry(name: str, spec: object, origin: str) -> ModelPrice:
    if not isinstance(spec, Mapping):
        raise PriceFileError(
            origin, f"must be a mapping of prices, got {type(spec).__name__}", entry=name
        )
    unknown = sorted(str(key) for key in spec if key not in _ENTRY_KEYS)
    if unknown:
        raise PriceFileError(
            origin, f"unknown key(s) {unknown}; allowed: {sorted(_ENTRY_KEYS)}", entry=name
        )
    for required in ("input", "output"):
        if spec.get(required) is None:
            raise PriceFileError(origin, f"missing {required!r} (USD per 1M tokens)", entry=name)
    provider = spec.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise PriceFileError(origin, f"'provider' must be a string, got {provider!r}", entry=name)
    try:
        return ModelPrice(
            input=spec["input"],
            output=spec["output"],
            cache_read=spec.get("cache_read"),
            cache_write=spec.get("cache_write"),
            reasoning=spec.get("reasoning"),
            provider=provider,
        )
    except ValueError as exc:
        raise PriceFileError(origin, str(exc), entry=name) from exc


def _aliases(name: str, spec: object, origin: str) -> list[str]:
    assert isinstance(spec, Mapping)
    raw = spec.get("aliases") or []
    if not isinstance(raw, list) or not all(isinstance(a, str) and a.strip() for a in raw):
        raise PriceFileError(
            origin, f"'aliases' must be a list of non-empty strings, got {raw!r}", entry=name
        )
    return [normalize(alias) for alias in raw]


def _as_of(value: object, origin: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):  # YAML reads an unquoted 2026-11-01 as a date
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PriceFileError(origin, f"'as_of' must be an ISO date like 2026-11-01, got {value!r}")


# -- LiteLLM format --------------------------------------------------------------------


def _looks_like_litellm(data: Mapping[object, object]) -> bool:
    return any(
        isinstance(spec, Mapping) and not _LITELLM_MARKERS.isdisjoint(spec)
        for key, spec in data.items()
        if key not in _LITELLM_SKIP
    )


def _parse_litellm(data: Mapping[object, object], origin: str) -> ParsedTable:
    entries: dict[str, ModelPrice] = {}
    for raw_name, spec in data.items():
        if raw_name in _LITELLM_SKIP:
            continue
        name = _entry_name(raw_name, origin)
        if not isinstance(spec, Mapping):
            raise PriceFileError(
                origin, f"must be a mapping, got {type(spec).__name__}", entry=name
            )
        input_cost = _per_million(spec, "input_cost_per_token", name, origin)
        output_cost = _per_million(spec, "output_cost_per_token", name, origin)
        if input_cost is None and output_cost is None:
            continue  # priced per image/second/character: not token-priced
        provider = spec.get("litellm_provider")
        try:
            entries[name] = ModelPrice(
                input=input_cost or 0.0,
                output=output_cost or 0.0,
                cache_read=_per_million(spec, "cache_read_input_token_cost", name, origin),
                cache_write=_per_million(spec, "cache_creation_input_token_cost", name, origin),
                reasoning=_per_million(spec, "output_cost_per_reasoning_token", name, origin),
                provider=provider if isinstance(provider, str) else None,
            )
        except ValueError as exc:
            raise PriceFileError(origin, str(exc), entry=name) from exc
    return ParsedTable(entries=entries, format="litellm")


def _per_million(spec: Mapping[object, object], key: str, name: str, origin: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, str):  # tolerate "0.0000025": the file is third-party
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PriceFileError(
            origin, f"{key!r} must be a number (USD per token), got {spec.get(key)!r}", entry=name
        )
    if value < 0:
        raise PriceFileError(origin, f"{key!r} must be >= 0, got {value!r}", entry=name)
    # Per token -> per 1M tokens, without float noise (2.5e-06 * 1e6 -> 2.5).
    return float(f"{value * 1_000_000:.12g}")
