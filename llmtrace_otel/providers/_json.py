"""Typed reads from decoded JSON, shared by the adapters.

Every accessor takes the object, the key and ``where`` (a path prefix such as
``"messages[2]."``) so that a :class:`ParseError` names the exact field, e.g.
``"messages[2].content must be a string, an array or null (got number)"``.
JSON ``null`` reads as absent everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from llmtrace_otel.providers.base import ParseError
from llmtrace_processors.json_text import loads

__all__ = [
    "dumps_compact",
    "error_message",
    "json_type",
    "loads",
    "loads_object",
    "opt_bool",
    "opt_float",
    "opt_int",
    "opt_list",
    "opt_object",
    "opt_str",
    "require_object",
    "str_tuple",
]

_JSON_TYPES: Mapping[type, str] = MappingProxyType({
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
})

dumps_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
"""Compact JSON text (no spaces, UTF-8 kept), as tool arguments and schemas are stored."""


def error_message(obj: dict[str, Any]) -> str | None:
    """The human message of an error body or event, as the upstream wrote it: ``error.message``
    (OpenAI, Anthropic and most compatible servers), a bare ``{"error": "text"}``, or the flat
    ``{"object": "error", "message"}`` of vLLM. None when there is none."""
    error = obj.get("error")
    if isinstance(error, str):
        return error or None
    if not isinstance(error, dict):
        if obj.get("object") != "error":
            return None
        error = obj
    message = error.get("message")
    return message if isinstance(message, str) and message else None


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (``"array"``, ``"object"``, ...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def loads_object(body: bytes | str, what: str) -> dict[str, Any]:
    """Decode a body that must be a JSON object; ``what`` is e.g. ``"request body"``."""
    try:
        value = loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ParseError(f"{what} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ParseError(f"{what} is not a JSON object (got {json_type(value)})")
    return value


def _wrong(where: str, key: str, expected: str, value: object) -> ParseError:
    return ParseError(f"{where}{key} must be {expected} (got {json_type(value)})")


def require_object(value: object, where: str) -> dict[str, Any]:
    """``value`` itself must be an object; ``where`` is its full path."""
    if not isinstance(value, dict):
        raise ParseError(f"{where} must be an object (got {json_type(value)})")
    return value


def opt_str(obj: dict[str, Any], key: str, where: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _wrong(where, key, "a string", value)


def opt_int(obj: dict[str, Any], key: str, where: str = "") -> int | None:
    value = obj.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer():  # 100.0 is an integer in JSON
        return int(value)
    raise _wrong(where, key, "an integer", value)


def opt_float(obj: dict[str, Any], key: str, where: str = "") -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _wrong(where, key, "a number", value)


def opt_bool(obj: dict[str, Any], key: str, where: str = "") -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise _wrong(where, key, "a boolean", value)


def opt_object(obj: dict[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise _wrong(where, key, "an object", value)


def opt_list(obj: dict[str, Any], key: str, where: str = "") -> list[Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, list):
        return value
    raise _wrong(where, key, "an array", value)


def str_tuple(obj: dict[str, Any], key: str, where: str = "") -> tuple[str, ...]:
    """A field that may be one string or an array of strings (``stop``)."""
    value = obj.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise _wrong(where, key, "a string or an array of strings", value)
