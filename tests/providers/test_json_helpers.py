from __future__ import annotations

import pytest

from llmtrace_otel.providers._json import (
    dumps_compact,
    json_type,
    loads_object,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
    str_tuple,
)
from llmtrace_otel.providers.base import ParseError


def test_json_type_names() -> None:
    values: tuple[object, ...] = ("", 1, 1.5, True, None, [], {})
    assert [json_type(v) for v in values] == [
        "string", "number", "number", "boolean", "null", "array", "object"]


def test_loads_object() -> None:
    assert loads_object(b'{"a": 1}', "body") == {"a": 1}
    assert loads_object('{"a": "\u00e9"}', "body") == {"a": "é"}
    with pytest.raises(ParseError, match=r"^body is not a JSON object \(got null\)$"):
        loads_object(b"null", "body")
    with pytest.raises(ParseError, match=r"^body is not JSON \(JSON nested too deeply\)$"):
        loads_object(b"[" * 50_000, "body")


def test_scalar_accessors() -> None:
    obj = {"i": 3, "f": 2, "whole": 4.0, "b": False, "s": "x", "n": None}
    assert opt_int(obj, "i") == 3 and opt_int(obj, "whole") == 4
    assert opt_float(obj, "f") == 2.0 and isinstance(opt_float(obj, "f"), float)
    assert opt_bool(obj, "b") is False
    assert opt_str(obj, "s") == "x"
    for read in (opt_int, opt_float, opt_bool, opt_str, opt_list, opt_object):
        assert read(obj, "n") is None and read(obj, "missing") is None
    with pytest.raises(ParseError, match=r"^a\.b must be an integer \(got boolean\)$"):
        opt_int({"b": True}, "b", "a.")
    with pytest.raises(ParseError, match=r"^x must be a number \(got boolean\)$"):
        opt_float({"x": True}, "x")


def test_str_tuple() -> None:
    assert str_tuple({"stop": "a"}, "stop") == ("a",)
    assert str_tuple({"stop": ["a", "b"]}, "stop") == ("a", "b")
    assert str_tuple({}, "stop") == ()
    with pytest.raises(ParseError):
        str_tuple({"stop": {"a": 1}}, "stop")


def test_dumps_compact_keeps_unicode() -> None:
    assert dumps_compact({"a": [1, "é"]}) == '{"a":[1,"é"]}'
