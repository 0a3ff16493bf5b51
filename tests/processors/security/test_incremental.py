"""Incremental scanning of streamed text: values split across pieces, dedupe, bounded reads."""

from __future__ import annotations

from llmtrace_processors.security.findings import Finding
from llmtrace_processors.security.incremental import (
    StreamFinding,
    TextStreamScanner,
    default_stream_checks,
)
from llmtrace_processors.security.secrets import detect_secrets

ACCESS_KEY = "AKIA2OGYBAH6QNXC5VLP"
SECRET_KEY = "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"
TEXT = (f"Sure, here is the config you asked for. aws_access_key_id = {ACCESS_KEY}\n"
        f"aws_secret_access_key = {SECRET_KEY}\nThat should be all you need to deploy. "
        "Let me know if anything else comes up while you set it up.")


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _run(scanner: TextStreamScanner, pieces: list[str], key: object = 0) -> list[StreamFinding]:
    found: list[StreamFinding] = []
    for piece in pieces:
        found.extend(scanner.feed(key, piece))
    return found + scanner.flush()


def _types(found: list[StreamFinding]) -> list[str]:
    return sorted(item.finding.finding_type for item in found)


def test_a_key_split_across_pieces_is_found_once_with_stream_offsets() -> None:
    # a scan every 16 characters: the access key id is cut by several scan boundaries and
    # is only seen whole thanks to the overlap
    scanner = TextStreamScanner(default_stream_checks(), every=16, min_every=16, overlap=320)
    found = _run(scanner, _pieces(TEXT, 7))
    assert _types(found) == ["secret.aws_access_key", "secret.aws_secret_key"]
    for item in found:
        value = ACCESS_KEY if item.finding.finding_type == "secret.aws_access_key" else SECRET_KEY
        assert TEXT[item.finding.start:item.finding.end] == value
    assert scanner.scans > 10


def test_without_overlap_the_split_key_is_missed() -> None:
    # the control: what the overlap is for
    scanner = TextStreamScanner(default_stream_checks(), every=16, min_every=16, overlap=0)
    found = _run(scanner, _pieces(TEXT, 7))
    assert "secret.aws_access_key" not in _types(found)


def test_what_the_whole_text_holds_is_what_the_stream_finds() -> None:
    whole = sorted((f.finding_type, f.start, f.end) for f in detect_secrets(TEXT, side="output"))
    for size in (1, 3, 50, 1000):
        scanner = TextStreamScanner(default_stream_checks())
        found = _run(scanner, _pieces(TEXT, size))
        assert sorted((i.finding.finding_type, i.finding.start, i.finding.end)
                      for i in found) == whole, size


def test_reads_are_bounded_by_new_text_plus_overlap() -> None:
    scanner = TextStreamScanner(default_stream_checks(), every=64, min_every=64, overlap=100)
    long_text = ("The weather is fine and the meeting moved to Thursday afternoon. " * 60)
    _run(scanner, _pieces(long_text, 5))
    assert scanner.scanned_chars <= len(long_text) + scanner.scans * 100
    assert scanner.scans >= len(long_text) // 64


def test_streams_are_kept_apart_and_nothing_is_scanned_twice_for_nothing() -> None:
    calls: list[str] = []

    def check(text: str) -> list[Finding]:
        calls.append(text)
        return []

    scanner = TextStreamScanner([check], every=10, min_every=10, overlap=4)
    scanner.feed("a", "0123456789")
    scanner.feed("b", "abcdefghij")
    scanner.feed("a", "ABCDEFGHIJ")
    assert calls == ["0123456789", "abcdefghij", "6789ABCDEFGHIJ"]
    assert scanner.flush() == [] and len(calls) == 3  # nothing pending


def test_a_sentence_end_makes_a_scan_due_early() -> None:
    calls: list[str] = []
    scanner = TextStreamScanner([lambda t: calls.append(t) or []], every=500, min_every=10)
    scanner.feed(0, "Short words here")
    assert calls == []
    scanner.feed(0, " and a full stop. ")
    assert len(calls) == 1


def test_a_system_prompt_echo_is_reported_once() -> None:
    system = ("You are the support assistant of Acme Outdoor. Never reveal internal notes. "
              "Answer questions about orders, shipping and returns politely and briefly, and "
              "if you do not know an answer, offer to connect the customer with a human agent.")
    scanner = TextStreamScanner(default_stream_checks(system), every=40, min_every=40)
    found = _run(scanner, _pieces("My instructions say: " + system + " " + system, 9))
    assert _types(found).count("leakage.system_prompt") == 1


def test_a_value_longer_than_the_overlap_is_reported_once_it_leaves_the_view() -> None:
    body = "".join("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" for _ in range(30))
    pem = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(
        body[i:i + 64] for i in range(0, len(body), 64)) + "\n-----END PRIVATE KEY-----\n"
    text = "Here is the key:\n" + pem + "Store it in the vault."
    assert [f.finding_type for f in detect_secrets(text, side="output")] == ["secret.private_key"]
    scanner = TextStreamScanner(default_stream_checks())
    found = _run(scanner, _pieces(text, 5))
    assert _types(found) == ["secret.private_key"]
    assert found[0].finding.start == text.index("-----BEGIN")
