"""processors.json_text.loads: every failure is a ValueError."""

from __future__ import annotations

import pytest

from llmtrace_processors.json_text import loads


def test_parses_json_text_and_bytes() -> None:
    assert loads('{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}
    assert loads(b'"\\u00e9"') == "é"


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000])
def test_nesting_deeper_than_the_interpreter_allows_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        loads(text)


@pytest.mark.parametrize("text", ["", "{", "nan?", b"\xff\xfe"])
def test_malformed_text_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads(text)
