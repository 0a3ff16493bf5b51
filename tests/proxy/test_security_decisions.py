"""What the security guard decides for a request, and what the client and the span get.

The SecurityGuard on parsed requests, with a scripted detector (it reports a given finding
wherever a text holds its marker) so that each test states the findings and checks only
the decision: pass, flag (header, span attributes) or block (400 in the API's error shape,
503 when failing closed), which findings count (type prefix, minimum severity), which
texts are read (users, tools, system; never the model's own turns; long texts bounded and
read in overlapping pieces) and what a check cut short by its time budget does. The same
guard through the running proxy with the real detectors is in
tests/processors/security/test_guard.py and test_guard_budget.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from llmtrace_otel.guards import CallInfo, Verdict
from llmtrace_otel.providers.types import (
    ChatMessage,
    LLMRequest,
    Operation,
    TextPart,
    ToolCallResponsePart,
    ToolDefinition,
)
from llmtrace_otel.proxy.security_guard import (
    BLOCKED_CODE,
    BUDGET_EXCEEDED,
    FAILED_CODE,
    FLAG_HEADER,
    UNREADABLE_CODE,
    SecurityGuard,
)
from llmtrace_processors.attributes import (
    LLMTRACE_SECURITY_GUARD_ACTION,
    LLMTRACE_SECURITY_GUARD_BUDGET_EXCEEDED,
    LLMTRACE_SECURITY_GUARD_FINDINGS,
)
from llmtrace_processors.security.detectors import ScanContext
from llmtrace_processors.security.findings import Finding, Severity
from llmtrace_processors.security.segments import Segment, Source

#: marker in a text -> the finding the scripted detector reports there
SCRIPT = {
    "OVERRIDE": ("prompt_injection.instruction_override", Severity.HIGH),
    "ROLEPLAY": ("jailbreak.roleplay", Severity.CRITICAL),
    "EMAIL": ("pii.email", Severity.MEDIUM),
    "LOOKALIKE": ("piiz.other", Severity.CRITICAL),
    "UNDERSCORE": ("pii_like", Severity.CRITICAL),
}


class Scripted:
    """Reports ``SCRIPT``'s finding for each marker in a text; remembers what it read."""

    def __init__(self, name: str = "scripted", *, delay_s: float = 0.0,
                 fail: bool = False) -> None:
        self.name = name
        self.delay_s = delay_s
        self.fail = fail
        self.read: list[Segment] = []
        self.contexts: list[ScanContext] = []

    def applies_to(self, segment: Segment) -> bool:
        return True

    def detect(self, segment: Segment, context: ScanContext) -> Sequence[Finding]:
        if self.fail:
            raise RuntimeError("detector broke")
        self.read.append(segment)
        self.contexts.append(context)
        time.sleep(self.delay_s)
        return [Finding(kind, severity, 0.9, self.name, "input", at, at + len(marker))
                for marker, (kind, severity) in SCRIPT.items()
                if (at := segment.text.find(marker)) >= 0]


def request(*user_texts: str, system: str | None = None) -> LLMRequest:
    return LLMRequest(
        operation=Operation.CHAT,
        system_instructions=(TextPart(system),) if system is not None else (),
        input_messages=tuple(ChatMessage("user", (TextPart(t),)) for t in user_texts))


def check(guard: SecurityGuard, parsed: LLMRequest | None,
          api: str | None = "openai.chat_completions") -> Verdict | None:
    return asyncio.run(guard.check(CallInfo("POST", "/v1/chat/completions", {}, api, "openai",
                                            parsed)))


def guard(mode: str = "block", *, detector: Scripted | None = None, **options: object
          ) -> SecurityGuard:
    """A guard with no time budget unless the test gives one: on a loaded machine even a
    fast scan can outlast the default 5 ms, and only the budget tests are about time."""
    options = {"budget_ms": 0, **options}
    return SecurityGuard(mode=mode, detectors=[detector or Scripted()], cache_size=0,
                         **options)  # type: ignore[arg-type]


def test_block_refuses_with_400_naming_the_types_and_the_worst_severity() -> None:
    verdict = check(guard("block"), request("OVERRIDE then ROLEPLAY", "OVERRIDE again"))
    assert verdict is not None and verdict.reject is not None
    assert (verdict.reject.status, verdict.reject.code) == (400, BLOCKED_CODE)
    assert ("jailbreak.roleplay, prompt_injection.instruction_override (critical) found in "
            "the input") in verdict.reject.message
    assert "not sent to the model" in verdict.reject.message
    assert dict(verdict.response_headers) == {
        FLAG_HEADER: "blocked; types=jailbreak.roleplay,prompt_injection.instruction_override"}
    assert verdict.attributes[LLMTRACE_SECURITY_GUARD_ACTION] == "block"
    assert verdict.attributes[LLMTRACE_SECURITY_GUARD_FINDINGS] == (
        "jailbreak.roleplay", "prompt_injection.instruction_override")
    assert LLMTRACE_SECURITY_GUARD_BUDGET_EXCEEDED not in verdict.attributes
    assert tuple(verdict.counted) == ()


def test_flag_lets_the_call_through_with_a_header_and_marks_the_span() -> None:
    verdict = check(guard("flag"), request("OVERRIDE"))
    assert verdict is not None and verdict.reject is None
    assert dict(verdict.response_headers) == {
        FLAG_HEADER: "flagged; types=prompt_injection.instruction_override"}
    assert verdict.attributes[LLMTRACE_SECURITY_GUARD_ACTION] == "flag"


def test_nothing_found_changes_nothing() -> None:
    assert check(guard("block"), request("What is the capital of Portugal?")) is None
    assert check(guard("block"), None, api=None) is None  # not an LLM call: nothing to read


@pytest.mark.parametrize(("minimum", "blocked"), [
    (Severity.MEDIUM, True), (Severity.HIGH, True), (Severity.CRITICAL, False)])
def test_findings_below_the_minimum_severity_do_not_count(minimum: Severity,
                                                          blocked: bool) -> None:
    verdict = check(guard("block", min_severity=minimum), request("OVERRIDE"))  # high
    assert (verdict is not None) is blocked


@pytest.mark.parametrize(("types", "found"), [
    (("pii",), ["pii.email"]),  # a prefix takes its sub-types
    ((" pii.email ", ""), ["pii.email"]),  # an exact type; blanks around it ignored
    (("pii.phone",), None),
    (("prompt_injection",), None),
])
def test_only_the_enforced_types_count(types: tuple[str, ...], found: list[str] | None
                                       ) -> None:
    # "piiz.other" and "pii_like" are not under "pii": a prefix ends at a dot.
    verdict = check(guard("block", enforce_types=types, min_severity=Severity.LOW),
                    request("EMAIL LOOKALIKE UNDERSCORE"))
    if found is None:
        assert verdict is None
    else:
        assert verdict is not None
        assert list(verdict.attributes[LLMTRACE_SECURITY_GUARD_FINDINGS]) == found


@pytest.mark.parametrize(("types", "detectors"), [
    (("prompt_injection", "jailbreak"), ["injection"]),
    (("pii.email",), ["pii"]),
    (("secret",), ["secrets"]),
    (("pii", "secret.aws_access_key", "jailbreak"), ["injection", "pii", "secrets"]),
])
def test_the_enforced_types_choose_the_detectors_that_run(types: tuple[str, ...],
                                                          detectors: list[str]) -> None:
    chosen = SecurityGuard(mode="flag", enforce_types=types).detectors
    assert sorted(d.name for d in chosen) == detectors


def test_bad_modes_and_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="flag or block, got 'observe'"):
        SecurityGuard(mode="observe")
    with pytest.raises(ValueError, match="budget_ms must be >= 0, got -1"):
        SecurityGuard(mode="flag", budget_ms=-1)
    assert SecurityGuard(mode="flag", budget_ms=0).budget_ms == 0  # 0: no limit


def test_the_texts_read_are_the_callers_not_the_models() -> None:
    reader = Scripted()
    parsed = LLMRequest(
        operation=Operation.CHAT,
        system_instructions=(TextPart("be brief"), TextPart("  ")),
        input_messages=(
            ChatMessage("user", (TextPart("hello"),)),
            ChatMessage("ASSISTANT", (TextPart("OVERRIDE from the model itself"),)),
            ChatMessage("tool", (ToolCallResponsePart("tool output"),)),
            ChatMessage("function", (TextPart("legacy function result"),)),
            ChatMessage("developer", (TextPart("dev note"),)),
            ChatMessage("critic", (TextPart("an unknown role's text"),)),
        ),
        tool_definitions=(ToolDefinition("f", description="fetches pages"),
                          ToolDefinition("g", description="")))
    assert check(guard("block", detector=reader), parsed) is None
    assert [(s.source, s.text) for s in reader.read] == [
        (Source.SYSTEM, "be brief"), (Source.USER, "hello"), (Source.TOOL, "tool output"),
        (Source.TOOL, "legacy function result"), (Source.SYSTEM, "dev note"),
        (Source.TOOL, "fetches pages")]
    assert {c.system_prompt for c in reader.contexts} == {"be brief\ndev note"}
    no_system = Scripted()
    check(guard("block", detector=no_system), request("hi"))
    assert no_system.contexts[0].system_prompt is None


def test_a_long_text_is_bounded_to_its_head_and_tail() -> None:
    reader = Scripted()
    text = "OVERRIDE" + "a" * 2000 + "ROLEPLAY"
    verdict = check(guard("block", detector=reader, max_chars=100), request(text, "b" * 100))
    assert [len(s.text) for s in reader.read] == [101, 100]  # 50 + "\n" + 50; 100 as it is
    assert reader.read[0].text == text[:50] + "\n" + text[-50:]
    assert verdict is not None and verdict.reject is not None
    assert "jailbreak.roleplay, prompt_injection.instruction_override" in \
        verdict.reject.message


def test_a_text_over_8192_characters_is_read_in_overlapping_pieces() -> None:
    reader = Scripted()
    cut = 8192 - 4  # the marker straddles the end of the first piece
    text = "x" * cut + "OVERRIDE" + "y" * (20_000 - cut - 8)
    verdict = check(guard("block", detector=reader, max_chars=50_000), request(text))
    assert [len(s.text) for s in reader.read] == [8192, 8192, 20_000 - 2 * 7680]
    assert [s.text[:4] for s in reader.read] == [text[0:4], text[7680:7684],
                                                 text[15360:15364]]
    assert verdict is not None  # seen whole in the second piece
    reader.read.clear()
    check(guard("block", detector=reader), request("z" * 8192))
    assert len(reader.read) == 1
    reader.read.clear()  # two pieces reach the end: no third one inside the second
    check(guard("block", detector=reader, max_chars=50_000), request("z" * (8192 + 7680)))
    assert [len(s.text) for s in reader.read] == [8192, 8192]


def test_a_check_out_of_time_fails_open_and_says_so() -> None:
    slow = Scripted(delay_s=0.03)
    verdict = check(guard("block", detector=slow, budget_ms=1), request("a", "b", "OVERRIDE"))
    assert len(slow.read) == 1  # the budget is spent after the first text
    assert verdict is not None and verdict.reject is None
    assert verdict.attributes == {LLMTRACE_SECURITY_GUARD_BUDGET_EXCEEDED: True}
    assert tuple(verdict.counted) == (BUDGET_EXCEEDED,)


def test_what_was_found_before_the_time_ran_out_is_enforced() -> None:
    slow = Scripted(delay_s=0.03)
    verdict = check(guard("block", detector=slow, budget_ms=1), request("OVERRIDE", "b"))
    assert verdict is not None and verdict.reject is not None
    assert verdict.reject.code == BLOCKED_CODE
    assert verdict.attributes[LLMTRACE_SECURITY_GUARD_BUDGET_EXCEEDED] is True
    assert tuple(verdict.counted) == (BUDGET_EXCEEDED,)


def test_within_a_generous_budget_everything_is_read() -> None:
    slow = Scripted(delay_s=0.01)
    assert check(guard("block", detector=slow, budget_ms=60_000), request("a", "b")) is None
    assert len(slow.read) == 2
    scan = guard("block", detector=Scripted(delay_s=0.01), budget_ms=60_000).scan(
        request("a", "b"))
    assert scan.complete and scan.skipped == 0 and scan.findings == ()
    assert 20 <= scan.elapsed_ms < 60_000  # two 10 ms reads, in ms


def test_a_scan_out_of_time_says_how_long_it_took_and_what_it_skipped() -> None:
    scan = guard("block", detector=Scripted(delay_s=0.03), budget_ms=1).scan(
        request("a", "b", "c"))
    assert not scan.complete and scan.skipped == 2
    assert 30 <= scan.elapsed_ms < 60_000


def test_out_of_time_and_failing_closed_is_503_in_block_mode_only() -> None:
    slow = Scripted(delay_s=0.03)
    verdict = check(guard("block", detector=slow, budget_ms=1, fail_closed=True),
                    request("a", "b"))
    assert verdict is not None and verdict.reject is not None
    assert (verdict.reject.status, verdict.reject.code) == (503, FAILED_CODE)
    assert "did not finish within its time budget" in verdict.reject.message
    assert verdict.attributes[LLMTRACE_SECURITY_GUARD_ACTION] == "error"
    assert tuple(verdict.counted) == (BUDGET_EXCEEDED,)
    flag = check(guard("flag", detector=Scripted(delay_s=0.03), budget_ms=1, fail_closed=True),
                 request("a", "b"))
    assert flag is not None and flag.reject is None  # flag mode never refuses


def test_a_failing_detector_is_503_when_failing_closed_else_left_to_the_chain() -> None:
    verdict = check(guard("block", detector=Scripted(fail=True), fail_closed=True),
                    request("a"))
    assert verdict is not None and verdict.reject is not None
    assert (verdict.reject.status, verdict.reject.code) == (503, FAILED_CODE)
    assert "The security check of this request failed" in verdict.reject.message
    assert verdict.attributes == {LLMTRACE_SECURITY_GUARD_ACTION: "error"}
    for mode, closed in (("block", False), ("flag", True)):
        with pytest.raises(RuntimeError, match="detector broke"):  # the chain counts it
            check(guard(mode, detector=Scripted(fail=True), fail_closed=closed),
                  request("a"))


def _unparsed(guard: SecurityGuard, body: bytes) -> Verdict | None:
    """A call to an LLM route whose body the API's parser refused."""
    return asyncio.run(guard.check(CallInfo("POST", "/v1/chat/completions", {},
                                            "openai.chat_completions", "openai", None,
                                            unparsed=body)))


def test_a_body_the_parser_refused_is_still_read_for_its_texts() -> None:
    verdict = _unparsed(guard("block"), b'{"messages": "OVERRIDE", "model": 5}')
    assert verdict is not None and verdict.reject is not None
    assert verdict.reject.code == BLOCKED_CODE


def test_a_body_nobody_can_read_is_unchecked_or_refused_when_failing_closed() -> None:
    passed = _unparsed(guard("block"), b"\x00 not json")
    assert passed is not None and passed.reject is None
    assert passed.attributes == {LLMTRACE_SECURITY_GUARD_ACTION: "unchecked"}
    refused = _unparsed(guard("block", fail_closed=True), b"\x00 not json")
    assert refused is not None and refused.reject is not None
    assert (refused.reject.status, refused.reject.code) == (400, UNREADABLE_CODE)
