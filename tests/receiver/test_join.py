"""CallJoin on the recorded twin spans: held, paired, merged, or marked when late."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan

from llmtrace_otel.receiver.join import CallJoin
from tests.receiver.test_dialects_recorded import spans

DUPLICATE_OF = "llmtrace.call.duplicate_of"
SDK = "com.anthropic.sdk.python"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def anthropic_pair(stream: bool) -> tuple[ReadableSpan, ReadableSpan]:
    """The anthropic SDK's span and OpenLLMetry 0.45.6's span of one recorded call."""
    calls = [span for span in spans("openllmetry-0.45.6/default")
             if (span.attributes or {}).get("gen_ai.provider.name") == "anthropic"
             and bool((span.attributes or {}).get("gen_ai.request.stream")) is stream]
    [sdk] = [span for span in calls if span.instrumentation_scope.name == SDK]
    [library] = [span for span in calls if span is not sdk]
    return sdk, library


def hex_id(span: ReadableSpan) -> str:
    return format(span.context.span_id, "016x")


def test_the_sdk_span_waits_for_its_twin_and_the_library_span_is_counted() -> None:
    clock = Clock()
    join = CallJoin(wait_s=1.0, content=True, clock=clock)
    sdk, library = anthropic_pair(stream=True)
    assert join.admit(sdk) == [] and join.held == 1 and join.next_deadline() == 101.0
    counted, duplicate = join.admit(library)
    assert join.held == 0 and join.next_deadline() is None
    assert counted.context.span_id == library.context.span_id
    assert (duplicate.attributes or {})[DUPLICATE_OF] == hex_id(library)
    # OpenLLMetry 0.45.6 sent no usage for this streamed call: the counted span has the SDK's
    assert "gen_ai.usage.input_tokens" not in (library.attributes or {})
    merged = counted.attributes or {}
    assert merged["gen_ai.usage.input_tokens"] == 12
    assert merged["gen_ai.usage.output_tokens"] == 6
    assert merged["gen_ai.response.time_to_first_chunk"] == (
        sdk.attributes or {})["gen_ai.response.time_to_first_chunk"]


def test_a_lone_sdk_span_goes_on_at_its_deadline() -> None:
    clock = Clock()
    join = CallJoin(wait_s=1.0, content=True, clock=clock)
    sdk, _ = anthropic_pair(stream=False)
    assert join.admit(sdk) == []
    clock.now += 0.9
    assert join.due() == []
    clock.now += 0.2
    assert join.due() == [sdk] and join.held == 0


def test_a_twin_that_comes_late_is_marked_at_once() -> None:
    join = CallJoin(wait_s=0, content=True)  # nothing waits
    sdk, library = anthropic_pair(stream=False)
    assert join.admit(sdk) == [sdk]
    [late] = join.admit(library)
    assert (late.attributes or {})[DUPLICATE_OF] == hex_id(sdk)


def test_openinference_parent_and_sdk_child_are_one_call() -> None:
    recorded = [span for span in spans("openinference-0.1.66/default")
                if (span.attributes or {}).get("gen_ai.provider.name") == "anthropic"
                and not (span.attributes or {}).get("gen_ai.request.stream")]
    [sdk] = [span for span in recorded if span.instrumentation_scope.name == SDK]
    [library] = [span for span in recorded if span is not sdk]
    assert sdk.parent is not None and sdk.parent.span_id == library.context.span_id
    join = CallJoin(wait_s=1.0, content=True, clock=Clock())
    assert join.admit(sdk) == []
    counted, duplicate = join.admit(library)
    assert counted.context.span_id == library.context.span_id  # it has the content
    assert (duplicate.attributes or {})[DUPLICATE_OF] == hex_id(library)


def test_spans_that_are_not_calls_never_wait() -> None:
    join = CallJoin(wait_s=1.0, content=True, clock=Clock())
    app = [span for span in spans("openllmetry-0.45.6/default")
           if span.name == "handle_request"]
    assert join.admit(app[0]) == app


def test_drain_lets_every_held_span_go() -> None:
    join = CallJoin(wait_s=5.0, content=True, clock=Clock())
    held = [span for span in spans("anthropic-sdk-2.17.0/metadata_only",
                                   content=True) if span.instrumentation_scope.name == SDK]
    for span in held:
        assert join.admit(span) == []
    assert join.drain() == held and join.held == 0
