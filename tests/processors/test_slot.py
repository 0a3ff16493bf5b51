"""processors.slot: enrichers attached to a running chain, merged, failures isolated."""

from __future__ import annotations

from llmtrace_processors.chain import Enrichment, build_chain, is_genai_span
from llmtrace_processors.slot import EnricherSlot
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Adds:
    def __init__(self, stage: str, key: str, fail: bool = False) -> None:
        self.stage, self.key, self.fail = stage, key, fail
        self.seen = 0

    def applies_to(self, span: ReadableSpan) -> bool:
        return is_genai_span(span)

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        self.seen += 1
        if self.fail:
            raise RuntimeError("bug")
        return Enrichment(attributes={self.key: True}, events=[Event(self.key)])


def test_slot_runs_what_was_attached_later_and_isolates_failures() -> None:
    memory = InMemorySpanExporter()
    drops: list[tuple[str, str]] = []
    slot = EnricherSlot()
    provider = TracerProvider()
    provider.add_span_processor(build_chain([slot], [SimpleSpanProcessor(memory)],
                                            background=False,
                                            on_drop=lambda s, r: drops.append((s, r))))
    tracer = provider.get_tracer("t")
    genai = {"gen_ai.operation.name": "chat"}
    tracer.start_span("before", attributes=genai).end()  # empty slot: unchanged
    first, broken, second = Adds("a", "x.a"), Adds("broken", "x.b", fail=True), Adds("c", "x.c")
    for enricher in (first, broken, second):
        slot.attach(enricher)
    tracer.start_span("after", attributes=genai).end()
    tracer.start_span("plain").end()  # not GenAI: no enricher applies
    slot.detach(first)
    tracer.start_span("detached", attributes=genai).end()
    before, after, plain, detached = memory.get_finished_spans()
    assert set(before.attributes or {}) == {"gen_ai.operation.name"}
    assert (after.attributes or {})["x.a"] is True and (after.attributes or {})["x.c"] is True
    assert [e.name for e in after.events] == ["x.a", "x.c"]
    assert "x.a" not in (plain.attributes or {})
    assert "x.a" not in (detached.attributes or {}) and "x.c" in (detached.attributes or {})
    assert drops == [("broken", "processor_error"), ("broken", "processor_error")]
    assert (first.seen, second.seen) == (1, 2)
