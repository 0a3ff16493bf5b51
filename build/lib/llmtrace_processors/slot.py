"""A place in a running chain where enrichers can be attached after it was built.

The pipeline is built before the parts that need its results exist (the proxy's tenancy
guard needs the pipeline's meter, and the pipeline must carry the guard's spend recorder).
:class:`EnricherSlot` is an :class:`~processors.chain.EnrichingSpanProcessor` with a list
of attached enrichers (anything with ``enrich(span)`` and ``applies_to(span)``, such as
another ``EnrichingSpanProcessor`` used standalone), run in order on each span. Their
enrichments are merged and applied with one copy; one that raises is logged and counted
under its own ``stage`` and the others still run. An empty slot passes spans through.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.chain import DropCounter, EnrichingSpanProcessor, Enrichment, copy_span

__all__ = ["AttachableEnricher", "EnricherSlot"]

_log = logging.getLogger(__name__)


class AttachableEnricher(Protocol):
    """What a slot calls; an ``EnrichingSpanProcessor`` satisfies it."""

    stage: str

    def applies_to(self, span: ReadableSpan) -> bool: ...

    def enrich(self, span: ReadableSpan) -> Enrichment | None: ...


class EnricherSlot(EnrichingSpanProcessor):
    """Runs the enrichers attached so far (copy-on-write: attaching never blocks spans)."""

    stage = "slot"

    def __init__(self, next_processor: SpanProcessor | None = None, *,
                 on_drop: DropCounter | None = None) -> None:
        super().__init__(next_processor, on_drop=on_drop)
        self._attached: tuple[AttachableEnricher, ...] = ()
        self._lock = threading.Lock()

    def attach(self, enricher: AttachableEnricher) -> None:
        with self._lock:
            self._attached = (*self._attached, enricher)

    def detach(self, enricher: AttachableEnricher) -> None:
        with self._lock:
            self._attached = tuple(e for e in self._attached if e is not enricher)

    @property
    def attached(self) -> tuple[AttachableEnricher, ...]:
        return self._attached

    def applies_to(self, span: ReadableSpan) -> bool:
        return bool(self._attached)

    def on_end(self, span: ReadableSpan) -> None:
        attached = self._attached
        if attached:
            enrichment = self._enrich_all(span, attached)
            if enrichment:
                span = copy_span(span, enrichment)
        if self._next is not None:
            self._next.on_end(span)

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        return self._enrich_all(span, self._attached)

    def _enrich_all(self, span: ReadableSpan,
                    attached: tuple[AttachableEnricher, ...]) -> Enrichment | None:
        attributes: dict[str, AttributeValue] = {}
        events: list[Event] = []
        remove: set[str] = set()
        for enricher in attached:
            try:
                if not enricher.applies_to(span):
                    continue
                found = enricher.enrich(span)
            except Exception:  # telemetry never breaks the caller
                _log.exception("span processor %s failed; span passed on", enricher.stage)
                self._on_drop(enricher.stage, "processor_error")
                continue
            if found:
                attributes.update(found.attributes)
                events.extend(found.events)
                remove.update(found.remove)
        if not (attributes or events or remove):
            return None
        return Enrichment(attributes=attributes, events=events, remove=frozenset(remove))
