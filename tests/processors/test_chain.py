"""processors.chain: copy-on-enrich, fan-out isolation, the bounded background worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    Span,
    SpanLimits,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from llmtrace_processors.chain import (
    BackgroundSpanProcessor,
    EnrichingSpanProcessor,
    Enrichment,
    FanOutSpanProcessor,
    build_chain,
    copy_span,
    is_genai_span,
)

GENAI = {GEN_AI_OPERATION_NAME: "chat", GEN_AI_PROVIDER_NAME: "openai"}


class Recording(SpanProcessor):
    """Records what reaches it; optionally blocks in on_end until released."""

    def __init__(self, *, block: bool = False, delay_s: float = 0.0) -> None:
        self.ended: list[ReadableSpan] = []
        self.started = 0
        self.shutdowns = 0
        self.flushes = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()
        self._delay = delay_s

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.entered.set()
        assert self.release.wait(10), "test never released the blocked processor"
        time.sleep(self._delay)
        self.ended.append(span)

    def shutdown(self) -> None:
        self.shutdowns += 1

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes += 1
        return True


class Raising(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raise RuntimeError("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("on_end")

    def shutdown(self) -> None:
        raise RuntimeError("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("force_flush")


class Tag(EnrichingSpanProcessor):
    """Adds ``tag.<name>`` and records the tags it saw, to check ordering."""

    def __init__(self, name: str, *, remove: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.stage = name
        self.remove = remove
        self.seen: list[list[str]] = []

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        attributes = span.attributes or {}
        self.seen.append(sorted(key for key in attributes if key.startswith("tag.")))
        return Enrichment(
            attributes={f"tag.{self.stage}": True},
            events=(Event(f"event.{self.stage}", {"n": 1}),),
            remove=self.remove,
        )


class Nothing(EnrichingSpanProcessor):
    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        return Enrichment()


def finished_span(
    attributes: dict[str, object] | None = None,
    *,
    limits: SpanLimits | None = None,
    events: int = 0,
    links: int = 0,
) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "svc"}),
        span_limits=limits or SpanLimits(),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope.name", "1.2.3", schema_url="https://schema")
    with tracer.start_as_current_span("parent"):
        other = tracer.start_span("other")
        other.end()
        span = tracer.start_span(
            "child",
            kind=SpanKind.CLIENT,
            attributes=attributes or dict(GENAI),  # type: ignore[arg-type]
            links=[Link(other.get_span_context(), {"link.attr": i}) for i in range(links)],
        )
        for i in range(events):
            span.add_event(f"e{i}", {"i": i})
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()
    (child,) = [s for s in exporter.get_finished_spans() if s.name == "child"]
    return child


def span_ids(spans: list[ReadableSpan]) -> list[int]:
    return [s.context.span_id for s in spans if s.context is not None]


# -- copy_span -------------------------------------------------------------------------


def test_copy_span_preserves_everything_but_applies_enrichment() -> None:
    original = finished_span({**GENAI, "drop.me": "x", "keep": 1}, events=2, links=1)
    copied = copy_span(
        original,
        Enrichment(
            attributes={"added": 2.5, "keep": 2},
            events=(Event("finding", {"rule": "r1"}),),
            remove=frozenset({"drop.me", "absent"}),
        ),
    )
    assert copied is not original
    assert copied.context == original.context
    assert copied.parent == original.parent and copied.parent is not None
    assert (copied.start_time, copied.end_time) == (original.start_time, original.end_time)
    assert copied.status.status_code is StatusCode.ERROR
    assert copied.status.description == "boom"
    assert copied.kind is SpanKind.CLIENT
    assert copied.resource == original.resource
    assert copied.instrumentation_scope == original.instrumentation_scope
    assert copied.name == "child"
    assert list(copied.links) == list(original.links)
    assert copied.links[0].attributes == {"link.attr": 0}
    assert [e.name for e in copied.events] == ["e0", "e1", "finding"]
    assert dict(copied.attributes or {}) == {**GENAI, "keep": 2, "added": 2.5}
    assert dict(original.attributes or {}) == {**GENAI, "drop.me": "x", "keep": 1}
    # The copy encodes like any span (what the OTLP exporter will do).
    assert copied.to_json()


def test_copy_span_keeps_dropped_counts() -> None:
    limits = SpanLimits(max_span_attributes=3, max_events=1, max_links=1)
    original = finished_span({**GENAI, "a": 1, "b": 2, "c": 3}, limits=limits, events=3, links=2)
    assert (original.dropped_attributes, original.dropped_events, original.dropped_links) == (
        2,
        2,
        1,
    )
    copied = copy_span(original, Enrichment(attributes={"x": 1}))
    assert copied.dropped_events == original.dropped_events
    assert copied.dropped_links == original.dropped_links
    assert copied.dropped_attributes >= original.dropped_attributes


def test_is_genai_span() -> None:
    assert is_genai_span(finished_span())
    assert not is_genai_span(finished_span({"http.request.method": "GET"}))


# -- EnrichingSpanProcessor ------------------------------------------------------------


def test_enrichers_run_in_order_and_see_earlier_enrichment() -> None:
    first, second = Tag("a"), Tag("b", remove=frozenset({"tag.a"}))
    sink = Recording()
    head = build_chain([first, second], [sink], background=False)
    span = finished_span()
    head.on_end(span)
    (out,) = sink.ended
    assert first.seen == [[]] and second.seen == [["tag.a"]]
    assert dict(out.attributes or {}) == {**GENAI, "tag.b": True}
    assert [e.name for e in out.events] == ["event.a", "event.b"]


def test_non_genai_and_empty_enrichment_pass_the_same_object() -> None:
    tag, nothing = Tag("a"), Nothing()
    sink = Recording()
    head = build_chain([tag], [sink], background=False)
    plain = finished_span({"http.request.method": "GET"})
    head.on_end(plain)
    assert sink.ended == [plain] and tag.seen == []
    sink2 = Recording()
    head2 = build_chain([nothing], [sink2], background=False)
    genai = finished_span()
    head2.on_end(genai)
    assert sink2.ended[0] is genai


def test_on_start_reaches_sinks_synchronously() -> None:
    sink = Recording()
    head = build_chain([Tag("a")], [sink], background=True)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(head)
    provider.get_tracer("t").start_span("s", attributes=GENAI).end()
    assert sink.started == 1
    provider.shutdown()


# -- FanOutSpanProcessor ---------------------------------------------------------------


def test_fan_out_isolates_a_raising_sink() -> None:
    drops: list[tuple[str, str]] = []
    exporter = InMemorySpanExporter()
    good = Recording()
    fan = FanOutSpanProcessor(
        [Raising(), SimpleSpanProcessor(exporter), good],
        on_drop=lambda stage, reason: drops.append((stage, reason)),
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(fan)
    provider.get_tracer("t").start_span("s").end()
    assert [s.name for s in exporter.get_finished_spans()] == ["s"]
    assert len(good.ended) == 1 and good.started == 1
    assert drops == [("export", "processor_error")]
    assert fan.force_flush() is False  # one sink failed to flush...
    assert good.flushes == 1  # ...the others were still flushed
    fan.shutdown()
    assert good.shutdowns == 1


# -- BackgroundSpanProcessor -----------------------------------------------------------


@pytest.fixture
def blocked() -> Iterator[Recording]:
    sink = Recording(block=True)
    yield sink
    sink.release.set()


def test_background_drops_and_counts_when_queue_full(blocked: Recording) -> None:
    drops: list[tuple[str, str]] = []
    background = BackgroundSpanProcessor(
        blocked, max_queue_size=2, on_drop=lambda stage, reason: drops.append((stage, reason))
    )
    spans = [finished_span() for _ in range(5)]
    background.on_end(spans[0])
    assert blocked.entered.wait(5)  # the worker holds span 0 and is stuck
    for span in spans[1:]:
        background.on_end(span)
    assert background.queue_depth == 2 and background.capacity == 2
    assert drops == [("analysis", "queue_full")] * 2
    blocked.release.set()
    assert background.force_flush(5000)
    assert span_ids(blocked.ended) == span_ids(spans[:3])
    background.shutdown()


def test_background_on_end_does_not_run_analysis_on_caller_thread(blocked: Recording) -> None:
    background = BackgroundSpanProcessor(blocked)
    started = time.perf_counter()
    for _ in range(100):
        background.on_end(finished_span())
    assert time.perf_counter() - started < 2.0  # would hang if on_end ran the sink
    blocked.release.set()
    assert background.force_flush(5000)
    assert len(blocked.ended) == 100
    background.shutdown()


def test_force_flush_waits_for_queued_work() -> None:
    slow = Recording(delay_s=0.05)
    background = BackgroundSpanProcessor(slow)
    for _ in range(5):
        background.on_end(finished_span())
    assert background.force_flush(5000) is True
    assert len(slow.ended) == 5 and slow.flushes == 1
    background.shutdown()


def test_force_flush_times_out_while_blocked(blocked: Recording) -> None:
    background = BackgroundSpanProcessor(blocked)
    background.on_end(finished_span())
    assert blocked.entered.wait(5)
    started = time.perf_counter()
    assert background.force_flush(100) is False
    assert time.perf_counter() - started < 2.0
    blocked.release.set()
    assert background.force_flush(5000) is True
    background.shutdown()


def test_shutdown_drains_is_idempotent_and_then_drops() -> None:
    drops: list[tuple[str, str]] = []
    slow = Recording(delay_s=0.01)
    background = BackgroundSpanProcessor(
        slow, on_drop=lambda stage, reason: drops.append((stage, reason))
    )
    for _ in range(10):
        background.on_end(finished_span())
    background.shutdown()
    assert len(slow.ended) == 10 and slow.shutdowns == 1
    background.shutdown()
    assert slow.shutdowns == 1
    background.on_end(finished_span())
    assert drops == [("analysis", "shutdown")]
    assert len(slow.ended) == 10


def test_worker_survives_a_raising_pipeline() -> None:
    drops: list[tuple[str, str]] = []

    class FailOnce(Recording):
        def on_end(self, span: ReadableSpan) -> None:
            if not self.ended and not drops:
                raise RuntimeError("first span fails")
            super().on_end(span)

    sink = FailOnce()
    background = BackgroundSpanProcessor(
        sink, on_drop=lambda stage, reason: drops.append((stage, reason))
    )
    background.on_end(finished_span())
    assert background.force_flush(5000)
    background.on_end(finished_span())
    assert background.force_flush(5000)
    assert drops == [("analysis", "processor_error")] and len(sink.ended) == 1
    background.shutdown()


def test_bad_queue_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="max_queue_size must be >= 1"):
        BackgroundSpanProcessor(Recording(), max_queue_size=0)


def test_full_chain_with_tracer_provider_background() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        build_chain([Tag("a")], [SimpleSpanProcessor(exporter)], background=True)
    )
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("genai", attributes=GENAI):
        pass
    with tracer.start_as_current_span("plain"):
        pass
    assert provider.force_flush(5000)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    assert (by_name["genai"].attributes or {}).get("tag.a") is True
    assert "tag.a" not in (by_name["plain"].attributes or {})
    assert trace.SpanKind.INTERNAL is by_name["plain"].kind
    provider.shutdown()


def test_span_ended_during_shutdown_is_delivered_or_counted() -> None:
    checked, shut_down = threading.Event(), threading.Event()
    caller: list[threading.Thread] = []

    class Paused(BackgroundSpanProcessor):
        """Pauses the caller thread right after it read ``_stopped`` outside the lock."""

        @property  # type: ignore[override]
        def _stopped(self) -> bool:
            value: bool = self.__dict__["stopped_flag"]
            if (
                caller
                and threading.current_thread() is caller[0]
                and not self._cond._lock.locked()  # type: ignore[attr-defined]
                and not checked.is_set()
            ):
                checked.set()
                assert shut_down.wait(5)
            return value

        @_stopped.setter
        def _stopped(self, value: bool) -> None:
            self.__dict__["stopped_flag"] = value

    drops: list[tuple[str, str]] = []
    sink = Recording()
    background = Paused(sink, on_drop=lambda stage, reason: drops.append((stage, reason)))
    span = finished_span()
    thread = threading.Thread(target=background.on_end, args=(span,))
    caller.append(thread)
    thread.start()
    checked.wait(2)  # on_end saw "not stopped" (unless it reads it under the lock) ...
    background.shutdown()  # ... then shutdown completed ...
    shut_down.set()  # ... then on_end carries on
    thread.join(5)
    assert sink.ended == [span] or drops == [("analysis", "shutdown")]


def test_copy_span_validates_added_values_like_the_sdk() -> None:
    """Plain values are taken as they are; anything else goes through the SDK's cleaning."""
    from opentelemetry.sdk.trace import ReadableSpan as _Readable

    from llmtrace_processors.chain import Enrichment, copy_span

    span = _Readable(name="chat", attributes={"gen_ai.operation.name": "chat"})
    plain = copy_span(span, Enrichment(attributes={"a": 1.5, "b": ("x", "y"), "c": True}))
    assert dict(plain.attributes or {}) == {"gen_ai.operation.name": "chat", "a": 1.5,
                                            "b": ("x", "y"), "c": True}
    odd = {"l": ["x", "y"], "n": None, "m": {"k": [1, 2]}}
    other = copy_span(span, Enrichment(attributes=odd))  # type: ignore[arg-type]
    assert (other.attributes or {})["l"] == ("x", "y")
    from opentelemetry.attributes import BoundedAttributes

    assert dict(other.attributes or {}) == {"gen_ai.operation.name": "chat",
                                            **BoundedAttributes(maxlen=None, attributes=odd)}


# -- stalls: a stage that never returns ----------------------------------------------------


class Hang(EnrichingSpanProcessor):
    """Tags spans; blocks (until released) on spans named in ``hang_on`` (all: ``None``)."""

    stage = "hang"

    def __init__(self, hang_on: set[str] | None) -> None:
        super().__init__()
        self.hang_on = hang_on
        self.release = threading.Event()
        self.stuck: list[threading.Thread] = []

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        if self.hang_on is None or span.name in self.hang_on:
            self.stuck.append(threading.current_thread())
            assert self.release.wait(20), "test never released the hung stage"
        return Enrichment(attributes={"tag.hang": True})


def _eventually(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def hung() -> Iterator[list[Hang]]:
    stages: list[Hang] = []
    yield stages
    for stage in stages:
        stage.release.set()


def _stalling_chain(stage: EnrichingSpanProcessor, sink: SpanProcessor,
                    drops: list[tuple[str, str]], **options: object
                    ) -> tuple[TracerProvider, BackgroundSpanProcessor]:
    head = build_chain([stage], [sink], stall_timeout_s=0.2,
                       on_drop=lambda stage_, reason: drops.append((stage_, reason)))
    assert isinstance(head, BackgroundSpanProcessor)
    for name, value in options.items():
        setattr(head, name, value)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(head)
    return provider, head


def _emit(provider: TracerProvider, *names: str) -> None:
    tracer = provider.get_tracer("t")
    for name in names:
        with tracer.start_as_current_span(name, attributes=GENAI):
            pass


def test_a_stage_that_never_returns_is_bypassed_and_the_queue_goes_on(
        hung: list[Hang], caplog: pytest.LogCaptureFixture) -> None:
    from llmtrace_processors.attributes import LLMTRACE_ANALYSIS_SKIPPED
    from llmtrace_processors.breaker import BreakerPolicy, BreakerState, CircuitBreaker

    stage = Hang({"stuck"})
    hung.append(stage)
    breaker = CircuitBreaker("analysis.hang", BreakerPolicy(recovery_s=60))
    stage.set_breaker(breaker)
    exporter, drops = InMemorySpanExporter(), []
    provider, head = _stalling_chain(stage, SimpleSpanProcessor(exporter), drops)
    _emit(provider, "before", "stuck", "after-1", "after-2", "after-3")
    assert provider.force_flush(10_000)  # waits for the new worker, not the stuck one
    spans = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert sorted(spans) == ["after-1", "after-2", "after-3", "before"]
    assert spans["before"]["tag.hang"] is True
    for name in ("after-1", "after-2", "after-3"):  # the stuck stage is skipped, and says so
        assert "tag.hang" not in spans[name]
        assert spans[name][LLMTRACE_ANALYSIS_SKIPPED] == ("hang",)
    assert drops == [("analysis", "stalled")] + [("hang", "stage_stuck")] * 3
    assert breaker.state is BreakerState.OPEN and head.stalls == 1  # /health shows it
    report = next(r for r in caplog.records if "span analysis stuck in hang" in r.message)
    assert "in enrich" in report.message and "self.release.wait" in report.message
    # If the stuck call ever returns, its thread passes the span on and exits; from then
    # on the breaker decides (open for its recovery time here).
    stuck = stage.stuck[0]
    stage.release.set()
    stuck.join(5)
    assert not stuck.is_alive()
    _eventually(lambda: len(exporter.get_finished_spans()) == 5)
    _emit(provider, "later")
    assert provider.force_flush(10_000)
    assert drops[-1] == ("hang", "circuit_open")
    provider.shutdown()


def test_a_stage_that_hangs_on_every_span_costs_one_thread(hung: list[Hang]) -> None:
    stage = Hang(None)  # no breaker, and every call hangs
    hung.append(stage)
    exporter, drops = InMemorySpanExporter(), []
    provider, head = _stalling_chain(stage, SimpleSpanProcessor(exporter), drops)
    _emit(provider, *(f"span-{index}" for index in range(6)))
    assert provider.force_flush(10_000)
    exported = exporter.get_finished_spans()
    assert len(exported) == 5  # all but the one it is stuck on
    # One stall, one thread: the new worker passed the other five spans on without calling
    # the stuck stage (none carries its tag), so nothing can hang or stall again.
    assert head.stalls == 1 and len(stage.stuck) == 1
    assert not any("tag.hang" in (span.attributes or {}) for span in exported)
    stage.release.set()  # the call returns: the stage is used again
    _eventually(lambda: len(exporter.get_finished_spans()) == 6)
    _emit(provider, "after")
    assert provider.force_flush(10_000)
    assert (exporter.get_finished_spans()[-1].attributes or {})["tag.hang"] is True
    provider.shutdown()


def test_replacing_a_worker_stuck_outside_any_stage_stops_after_max_stalls(
        blocked: Recording, caplog: pytest.LogCaptureFixture) -> None:
    drops: list[tuple[str, str]] = []
    provider, head = _stalling_chain(Tag("a"), blocked, drops, _stalls_left=2)
    _emit(provider, *(f"span-{index}" for index in range(6)))
    head.force_flush(100)  # wake the worker now
    _eventually(lambda: any("replacement(s) used up" in r.message for r in caplog.records))
    assert head.stalls == 2 and drops == [("analysis", "stalled")] * 2
    report = next(r for r in caplog.records if "span analysis stuck in the chain" in r.message)
    assert "in on_end" in report.message
    blocked.release.set()
    assert provider.force_flush(10_000)
    # Once released, the abandoned threads pass their spans on too: nothing was lost.
    _eventually(lambda: len(blocked.ended) == 6)
    provider.shutdown()


def test_a_bad_stall_timeout_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="stall_timeout_s must be > 0 seconds"):
        BackgroundSpanProcessor(Recording(), stall_timeout_s=0)
