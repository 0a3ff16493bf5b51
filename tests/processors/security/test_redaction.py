"""security.pii_export = redact: placeholders in the exported content, never in the traffic."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import openai
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from llmtrace_processors.security.findings import Finding, Severity
from llmtrace_processors.security.processor import SecurityProcessor
from llmtrace_processors.security.redaction import placeholder, redact_attributes, redact_text
from llmtrace_processors.security.segments import segments_from_attributes
from tests.support.fake_upstream import LEAK_TEXT, SCENARIO_HEADER, FakeUpstream
from tests.support.proxy_harness import running_proxy

EMAIL = "jane.doe@example.com"
CARD = "4539 1488 0343 6467"
PHONE = "+1 415 555 0132"
IBAN = "DE89 3704 0044 0532 0130 00"
IP = "203.0.113.77"
SSN = "536-22-8726"
AWS_ID = "AKIA2OGYBAH6QNXC5VLP"


def _finding(kind: str, start: int, end: int, severity: Severity = Severity.MEDIUM) -> Finding:
    return Finding(kind, severity, 0.9, "test", "input", start, end)


def test_placeholders_name_the_kind() -> None:
    assert placeholder("pii.email") == "[PII:EMAIL]"
    assert placeholder("pii.us_ssn") == "[PII:US_SSN]"
    assert placeholder("pii.ip_address") == "[PII:IP_ADDRESS]"
    assert placeholder("secret.aws_access_key") == "[SECRET:AWS_ACCESS_KEY]"
    assert placeholder("leakage.system_secret") == "[SECRET:SYSTEM_SECRET]"
    assert placeholder("prompt_injection.instruction_override") is None
    assert placeholder("leakage.system_prompt") is None


def test_redact_text_merges_overlaps_and_maps_positions() -> None:
    text = "mail a@b.co or call 555 now"
    done = redact_text(text, [_finding("pii.email", 5, 11), _finding("pii.phone", 20, 23),
                              _finding("secret.password", 20, 27, Severity.HIGH),
                              _finding("prompt_injection.delimiter", 0, 4)])
    assert done is not None
    assert done.text == "mail [PII:EMAIL] or call [SECRET:PASSWORD]"
    assert done.position(0) == 0 and done.position(4, end=True) == 4
    assert (done.position(5), done.position(11, end=True)) == (5, 16)
    assert done.position(12) == 17  # "or" moved by len("[PII:EMAIL]") - 6
    assert (done.position(20), done.position(27, end=True)) == (25, 42)
    assert redact_text(text, [_finding("jailbreak.persona", 0, 4)]) is None


def _span(attributes: dict[str, str]) -> ReadableSpan:
    span = TracerProvider().get_tracer("test").start_span("chat", attributes={
        "gen_ai.operation.name": "chat", **attributes})
    span.end()
    return span  # type: ignore[return-value]


def _messages(*messages: tuple[str, list[object]]) -> str:
    return json.dumps([{"role": role, "parts": parts} for role, parts in messages])


def test_every_content_shape_is_redacted_and_keeps_its_json_shape() -> None:
    attributes = {
        "gen_ai.system_instructions": json.dumps([
            {"type": "text", "content": f"Escalations go to {EMAIL}."}]),
        "gen_ai.input.messages": _messages(
            ("user", [{"type": "text", "content": f"My card is {CARD} and my SSN is {SSN}."},
                      f"Call me at {PHONE}"]),
            ("assistant", [{"type": "tool_call", "name": "lookup", "id": "c1",
                            "arguments": {"email": EMAIL, "ip": IP}}]),
            ("tool", [{"type": "tool_call_response", "id": "c1",
                       "response": {"iban": IBAN, "note": "ok"}}]),
        ),
        "gen_ai.output.messages": _messages(
            ("assistant", [{"type": "text", "content": f"The key is {AWS_ID}, done."}])),
        "gen_ai.prompt.0.content": f"legacy prompt from {EMAIL}",
    }
    processor = SecurityProcessor(redact=True, cache_size=0)
    enrichment = processor.enrich(_span(attributes))
    assert enrichment is not None
    out = {**attributes, **enrichment.attributes}
    exported = json.dumps({k: out[k] for k in attributes})
    for value in (EMAIL, CARD, SSN, PHONE, IP, IBAN, AWS_ID):
        assert value not in exported, value
    for mark in ("[PII:EMAIL]", "[PII:CREDIT_CARD]", "[PII:US_SSN]", "[PII:PHONE]",
                 "[PII:IP_ADDRESS]", "[PII:IBAN]", "[SECRET:AWS_ACCESS_KEY]"):
        assert mark in exported, mark
    # the semconv shapes survive: same roles, same part types, objects stay objects
    messages = json.loads(str(out["gen_ai.input.messages"]))
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[0]["parts"][1] == "Call me at [PII:PHONE]"
    assert messages[1]["parts"][0]["arguments"] == {"email": "[PII:EMAIL]",
                                                    "ip": "[PII:IP_ADDRESS]"}
    assert messages[2]["parts"][0]["response"] == {"iban": "[PII:IBAN]", "note": "ok"}
    assert json.loads(str(out["gen_ai.system_instructions"]))[0]["type"] == "text"
    assert out["gen_ai.prompt.0.content"] == "legacy prompt from [PII:EMAIL]"
    assert out["llmtrace.security.redacted"] == 9


def test_finding_offsets_point_at_the_placeholders_in_the_exported_text() -> None:
    attributes = {
        "gen_ai.input.messages": _messages(
            ("user", [{"type": "text", "content": f"Mail {EMAIL} or {EMAIL} please."}])),
        "gen_ai.output.messages": _messages(
            ("assistant", [{"type": "text", "content": f"Card {CARD} noted; key {AWS_ID}."}])),
    }
    enrichment = SecurityProcessor(redact=True, cache_size=0).enrich(_span(attributes))
    assert enrichment is not None
    exported = segments_from_attributes({**attributes, **enrichment.attributes})
    sides = {side: "\n".join(s.text for s in exported if s.side == side)
             for side in ("input", "output")}
    marks = []
    for event in enrichment.events:
        attrs = event.attributes or {}
        side = str(attrs["llmtrace.security.finding.side"])
        start = int(attrs["llmtrace.security.finding.start"])  # type: ignore[arg-type]
        end = int(attrs["llmtrace.security.finding.end"])  # type: ignore[arg-type]
        marks.append((attrs["llmtrace.security.finding.type"], sides[side][start:end]))
    assert sorted(marks) == sorted([("pii.email", "[PII:EMAIL]"), ("pii.email", "[PII:EMAIL]"),
                                    ("pii.credit_card", "[PII:CREDIT_CARD]"),
                                    ("secret.aws_access_key", "[SECRET:AWS_ACCESS_KEY]")])


def test_alert_mode_exports_content_as_it_is() -> None:
    attributes = {"gen_ai.input.messages": _messages(("user", [f"I am {EMAIL}"]))}
    enrichment = SecurityProcessor(cache_size=0).enrich(_span(attributes))
    assert enrichment is not None
    assert "gen_ai.input.messages" not in enrichment.attributes
    assert "llmtrace.security.redacted" not in enrichment.attributes
    assert any((e.attributes or {})["llmtrace.security.finding.type"] == "pii.email"
               for e in enrichment.events)


def test_values_below_the_reporting_threshold_are_still_redacted() -> None:
    attributes = {"gen_ai.input.messages": _messages(("user", [f"server 10.1.2.3, {EMAIL}"]))}
    enrichment = SecurityProcessor(redact=True, min_severity=Severity.HIGH,
                                   cache_size=0).enrich(_span(attributes))
    assert enrichment is not None
    assert json.loads(str(enrichment.attributes["gen_ai.input.messages"]))[0]["parts"] == [
        "server [PII:IP_ADDRESS], [PII:EMAIL]"]
    assert not enrichment.events  # nothing at high severity to report


def test_through_the_proxy_only_the_export_is_redacted(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    prompt = f"Please email the config to {EMAIL}; bill card {CARD}."
    with running_proxy(upstream.url, tmp_path, capture_content=True,
                       security_pii_export="redact") as proxy:
        reply = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0,
                              timeout=10).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}],
            extra_headers={SCENARIO_HEADER: "leak"})
        # the client and the upstream see the original
        assert reply.choices[0].message.content == LEAK_TEXT
        assert upstream.requests[0].json()["messages"][0]["content"] == prompt
        attrs = dict(proxy.only_span().attributes or {})
        sent = str(attrs["gen_ai.input.messages"])
        got = str(attrs["gen_ai.output.messages"])
        assert EMAIL not in sent and CARD not in sent
        assert "[PII:EMAIL]" in sent and "[PII:CREDIT_CARD]" in sent
        assert AWS_ID not in got and "[SECRET:AWS_ACCESS_KEY]" in got
        assert "[SECRET:AWS_SECRET_KEY]" in got
        assert json.loads(got)[0]["role"] == "assistant"
        assert attrs["llmtrace.security.redacted"] == 4
    with sqlite3.connect(tmp_path / "spans.db") as db:
        stored = " ".join(str(row) for row in db.execute("SELECT * FROM spans"))
    assert "[PII:EMAIL]" in stored and EMAIL not in stored and AWS_ID not in stored


def test_without_content_capture_nothing_is_left_to_redact(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, security_pii_export="redact") as proxy:
        openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0,
                      timeout=10).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"I am {EMAIL}"}])
        attrs = dict(proxy.only_span().attributes or {})
        assert "gen_ai.input.messages" not in attrs  # stripped by the content policy
        assert "llmtrace.security.redacted" not in attrs
        assert float(attrs["llmtrace.security.score"]) > 0  # type: ignore[arg-type]


# -- redact_text and redact_attributes on their own: what is replaced, and where -----------


def test_every_pii_and_secret_kind_gets_a_placeholder_of_its_own() -> None:
    assert placeholder("pii.passport") == "[PII:PASSPORT]"  # a kind without a fixed one
    assert placeholder("secret.github_token") == "[SECRET:GITHUB_TOKEN]"


def test_a_finding_must_lie_inside_the_text_to_be_replaced() -> None:
    text = "0123456789"
    whole = redact_text(text, [_finding("pii.phone", 0, 10)])  # all of it
    assert whole is not None and whole.text == "[PII:PHONE]"
    for start, end in ((3, 3), (-1, 4), (5, 11), (7, 4)):  # empty, outside, reversed
        assert redact_text(text, [_finding("pii.phone", start, end)]) is None, (start, end)


def test_findings_in_any_order_each_become_one_placeholder() -> None:
    text = "a 0123 b 4567 c"
    done = redact_text(text, [_finding("pii.phone", 9, 13),
                              _finding("prompt_injection.delimiter", 0, 1),  # not redacted
                              _finding("pii.email", 2, 6)])
    assert done is not None and done.text == "a [PII:EMAIL] b [PII:PHONE] c"


def test_adjacent_values_stay_two_placeholders() -> None:
    done = redact_text("0123456789", [_finding("pii.email", 0, 5), _finding("pii.phone", 5, 10)])
    assert done is not None and done.text == "[PII:EMAIL][PII:PHONE]"


def test_overlaps_merge_into_the_most_severe_finding_first_come_on_a_tie() -> None:
    text = "x" * 40
    low, high, medium = Severity.LOW, Severity.HIGH, Severity.MEDIUM
    done = redact_text(text, [_finding("pii.email", 0, 10, low),
                              _finding("secret.password", 5, 15, high),
                              _finding("pii.phone", 12, 25, medium),  # reaches past both
                              _finding("pii.iban", 30, 35)])  # after the merged one
    assert done is not None
    assert done.text == "[SECRET:PASSWORD]" + "x" * 5 + "[PII:IBAN]" + "x" * 5
    tie = redact_text(text, [_finding("pii.email", 0, 10), _finding("pii.phone", 5, 12)])
    assert tie is not None and tie.text == "[PII:EMAIL]" + "x" * 28
    inside = redact_text(text, [_finding("pii.email", 0, 20), _finding("pii.phone", 5, 10)])
    assert inside is not None and inside.text == "[PII:EMAIL]" + "x" * 20  # all 20 of it


def test_merging_joins_the_last_value_not_an_earlier_one() -> None:
    text = "a1 b2 c3 d4 e5"
    done = redact_text(text, [_finding("pii.email", 0, 2), _finding("pii.email", 3, 5),
                              _finding("pii.phone", 6, 8), _finding("pii.phone", 7, 11)])
    assert done is not None and done.text == "[PII:EMAIL] [PII:EMAIL] [PII:PHONE] e5"


def test_positions_map_to_the_placeholders_edges() -> None:
    text = "mail a@b.co now"
    done = redact_text(text, [_finding("pii.email", 5, 11)])
    assert done is not None and done.text == "mail [PII:EMAIL] now"
    assert done.position(5) == 5 and done.position(5, end=True) == 5  # the value's start
    assert done.position(8) == 5 and done.position(8, end=True) == 16  # inside it
    assert done.position(11) == 16 and done.position(11, end=True) == 16  # just after it
    assert done.position(14) == 19


JSON_ATTRIBUTES = ("gen_ai.input.messages", "gen_ai.output.messages",
                   "gen_ai.system_instructions", "gen_ai.tool.definitions")


def _redact(attributes: dict[str, str], location: str, *findings: Finding
            ) -> dict[str, object] | None:
    """The changed attributes, the JSON ones decoded."""
    done = redact_attributes(attributes, {location: list(findings)})
    if done is None:
        return None
    return {key: json.loads(value) if key in JSON_ATTRIBUTES else value
            for key, value in done.attributes.items()}


def test_the_legacy_role_content_shape_and_parts_given_as_a_string() -> None:
    legacy = {"gen_ai.input.messages": json.dumps([{"role": "user", "content": "I am x@y.z"}])}
    assert _redact(legacy, "gen_ai.input.messages[0].parts[0]",
                   _finding("pii.email", 5, 10)) == {
        "gen_ai.input.messages": [{"role": "user", "content": "I am [PII:EMAIL]"}]}
    assert _redact(legacy, "gen_ai.input.messages[0].parts[1]",
                   _finding("pii.email", 5, 10)) is None  # only one part in that shape
    both = {"gen_ai.input.messages": json.dumps([{"role": "user", "content": "other text",
                                                  "parts": ["I am x@y.z"]}])}
    assert _redact(both, "gen_ai.input.messages[0].parts[0]",  # parts win over content
                   _finding("pii.email", 5, 10)) == {"gen_ai.input.messages": [
        {"role": "user", "content": "other text", "parts": ["I am [PII:EMAIL]"]}]}
    flat = {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": "I am x@y.z"}])}
    assert _redact(flat, "gen_ai.input.messages[0].parts[0]",
                   _finding("pii.email", 5, 10)) == {
        "gen_ai.input.messages": [{"role": "user", "parts": "I am [PII:EMAIL]"}]}


def test_tool_call_arguments_and_system_instructions() -> None:
    call = {"gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
        {"type": "tool_call", "name": "lookup", "arguments": "x@y.z"}]}])}
    out = _redact(call, "gen_ai.output.messages[0].parts[0]", _finding("pii.email", 0, 5))
    assert out is not None
    assert out["gen_ai.output.messages"][0]["parts"][0]["arguments"] == "[PII:EMAIL]"  # type: ignore[index]
    no_arguments = {"gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
        {"type": "tool_call", "name": "ping", "arguments": None}]}])}
    assert _redact(no_arguments, "gen_ai.output.messages[0].parts[0]",
                   _finding("pii.email", 0, 4)) is None
    system = {"gen_ai.system_instructions": json.dumps([{"type": "text",
                                                         "content": "ops: x@y.z"}])}
    assert _redact(system, "gen_ai.system_instructions[0]", _finding("pii.email", 5, 10)) == {
        "gen_ai.system_instructions": [{"type": "text", "content": "ops: [PII:EMAIL]"}]}


def test_a_phone_number_that_was_a_json_number_becomes_a_string() -> None:
    response = {"gen_ai.input.messages": json.dumps([{"role": "tool", "parts": [
        {"type": "tool_call_response", "response": 4155550132}]}])}
    out = _redact(response, "gen_ai.input.messages[0].parts[0]", _finding("pii.phone", 0, 10))
    assert out is not None
    assert out["gen_ai.input.messages"][0]["parts"][0]["response"] == "[PII:PHONE]"  # type: ignore[index]


def test_tool_definitions_are_redacted_in_description_and_parameters() -> None:
    tools = {"gen_ai.tool.definitions": json.dumps([
        {"name": "mail", "description": "to x@y.z", "parameters": {"to": "a@b.c"}},
        {"name": "only_params", "parameters": {"to": "a@b.c"}},
        "not a tool",
        {"name": "only_description", "description": "to x@y.z"},
        {"name": "text_parameters", "description": "mail", "parameters": "x@y.z"}])}
    # scanned as description + "\n" + parameters: '{"to":"a@b.c"}' starts at 9
    out = _redact(tools, "gen_ai.tool.definitions[0]", _finding("pii.email", 3, 8),
                  _finding("pii.email", 16, 21))
    assert out is not None
    first = out["gen_ai.tool.definitions"][0]  # type: ignore[index]
    assert first["description"] == "to [PII:EMAIL]"
    assert first["parameters"] == {"to": "[PII:EMAIL]"}
    out = _redact(tools, "gen_ai.tool.definitions[1]", _finding("pii.email", 7, 12))
    assert out is not None
    assert out["gen_ai.tool.definitions"][1]["parameters"] == {"to": "[PII:EMAIL]"}  # type: ignore[index]
    # ... and the finding's text, which offsets are mapped in, is the parameters alone
    done = redact_attributes(tools, {"gen_ai.tool.definitions[1]": [
        _finding("pii.email", 7, 12)]})
    assert done is not None
    assert done.texts["gen_ai.tool.definitions[1]"].text == '{"to":"[PII:EMAIL]"}'
    assert _redact(tools, "gen_ai.tool.definitions[2]", _finding("pii.email", 0, 3)) is None
    out = _redact(tools, "gen_ai.tool.definitions[3]", _finding("pii.email", 3, 8))
    assert out is not None
    assert out["gen_ai.tool.definitions"][3] == {  # type: ignore[index]
        "name": "only_description", "description": "to [PII:EMAIL]"}
    # a value at the very start of the parameters ("mail\nx@y.z")
    out = _redact(tools, "gen_ai.tool.definitions[4]", _finding("pii.email", 5, 10))
    assert out is not None
    assert out["gen_ai.tool.definitions"][4]["parameters"] == "[PII:EMAIL]"  # type: ignore[index]


def test_locations_that_point_nowhere_change_nothing() -> None:
    messages = {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": ["x@y.z"]}]),
                "gen_ai.output.messages": "not json",
                "gen_ai.prompt.0.content": "x@y.z"}
    email = _finding("pii.email", 0, 5)
    for location in ("gen_ai.input.messages[1].parts[0]", "gen_ai.input.messages[0].parts[1]",
                     "gen_ai.output.messages[0].parts[0]", "gen_ai.completion.0.content"):
        assert _redact(messages, location, email) is None, location
    assert _redact(messages, "gen_ai.prompt.0.content", email) == {
        "gen_ai.prompt.0.content": "[PII:EMAIL]"}


def test_several_parts_of_one_attribute_are_all_kept_and_counted() -> None:
    """And locations with nothing to replace do not stop the ones after them."""
    attributes = {"gen_ai.input.messages": json.dumps([
        {"role": "user", "parts": ["x@y.z", "call 4155550132"]},
        {"role": "user", "parts": ["a@b.c"]}])}
    done = redact_attributes(attributes | {"gen_ai.prompt.0.content": "plain"}, {
        "gen_ai.completion.0.content": [_finding("pii.email", 0, 5)],  # no such attribute
        "gen_ai.prompt.0.content": [_finding("prompt_injection.delimiter", 0, 5)],  # kept
        "gen_ai.input.messages[5].parts[0]": [_finding("pii.email", 0, 5)],  # no such message
        "gen_ai.input.messages[0].parts[0]": [_finding("pii.email", 0, 5)],
        "gen_ai.input.messages[0].parts[1]": [_finding("pii.phone", 5, 15)],
        "gen_ai.input.messages[1].parts[0]": [_finding("pii.email", 0, 5)]})
    assert done is not None and done.count == 3
    assert json.loads(done.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": ["[PII:EMAIL]", "call [PII:PHONE]"]},
        {"role": "user", "parts": ["[PII:EMAIL]"]}]
    assert set(done.texts) == {"gen_ai.input.messages[0].parts[0]",
                               "gen_ai.input.messages[0].parts[1]",
                               "gen_ai.input.messages[1].parts[0]"}
