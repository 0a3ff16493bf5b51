"""The status description made from an upstream's error message: one line, bounded, no secret."""

from __future__ import annotations

from llmtrace_otel.telemetry.error_text import MAX_CHARS, status_description


def test_whitespace_and_control_characters_become_single_spaces() -> None:
    assert status_description("Overloaded\n\n\tplease\x00retry ") == "Overloaded please retry"


def test_long_messages_are_cut_with_an_ellipsis() -> None:
    text = status_description("word " * 1000)
    assert len(text) <= MAX_CHARS and text.endswith("…")


def test_secrets_in_the_message_are_replaced_by_placeholders() -> None:
    aws = "AKIA" + "Q3ZV7XK2LMN8PTRW"
    text = status_description(f"forbidden for key {aws} from https://bob:hunter2x9@example.com")
    assert aws not in text and "hunter2x9" not in text
    assert "[SECRET:" in text and text.startswith("forbidden for key")
