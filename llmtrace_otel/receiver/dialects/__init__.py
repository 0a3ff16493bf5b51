"""GenAI dialects seen in the wild -> the latest GenAI semantic conventions.

:func:`normalise` rewrites the attributes and events of one received span before it is
built, so every processor sees one vocabulary whatever produced the span. Rules (the same
for every dialect, see ``_draft.py``):

* a translated key or event is **removed**; the semconv key takes its value, except when
  the span already has the semconv key, which wins;
* keys that are not translated stay untouched; spans without any GenAI dialect come back
  as ``None`` (nothing to do) and are forwarded exactly as received;
* message content from any dialect becomes ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` / ``gen_ai.system_instructions`` / ``gen_ai.tool.definitions``
  JSON in the shape the proxy produces, so the content policy and the security analysers
  apply to it like to proxied content;
* a rewritten span carries ``llmtrace.receiver.dialects`` naming what was translated.

Dialects: :mod:`.openinference`, :mod:`.openllmetry`, :mod:`.genai_legacy` (older semconv),
:mod:`.openlit`, :mod:`.genai_latest` (names newer than the ones the processors read).

With ``keep_foreign=False`` (content is not exported as it was received: capture off, or
``security.pii_export=redact``, which redacts only the semconv content keys) the content
keys of every dialect that were not translated are removed too: OpenInference's
``input.value`` / ``output.value`` on CHAIN or RETRIEVER spans, documents and prompt
templates, Traceloop's ``traceloop.entity.input`` / ``output``, on every span, GenAI or not.
"""

from __future__ import annotations

from operator import methodcaller
from typing import Any

from opentelemetry.sdk.trace import Event

from llmtrace_otel.receiver.dialects import (
    genai_latest,
    genai_legacy,
    openinference,
    openlit,
    openllmetry,
)
from llmtrace_otel.receiver.dialects._draft import Draft
from llmtrace_processors.attributes import LLMTRACE_RECEIVER_DIALECTS

__all__ = ["DIALECTS", "FOREIGN_CONTENT_KEYS", "FOREIGN_CONTENT_PREFIXES", "join_events",
           "normalise"]

DIALECTS = (openinference.DIALECT, openllmetry.DIALECT, genai_legacy.DIALECT, openlit.DIALECT,
            genai_latest.DIALECT)
#: Content keys of the dialects (removed when content is not exported as received).
FOREIGN_CONTENT_KEYS: frozenset[str] = openinference.CONTENT_KEYS | openllmetry.CONTENT_KEYS
FOREIGN_CONTENT_PREFIXES: tuple[str, ...] = (
    *openinference.CONTENT_PREFIXES, *openllmetry.CONTENT_PREFIXES)
_CONTENT_KEYS = genai_legacy.CONTENT_KEYS
_CONTENT_KEY_SET = frozenset(_CONTENT_KEYS)
_TRACELOOP_PREFIXED = methodcaller("startswith", openllmetry.PREFIXES)
_FOREIGN_PREFIXED = methodcaller("startswith", FOREIGN_CONTENT_PREFIXES)
_LEGACY_EVENTS = genai_legacy.EVENT_NAMES
_TRACELOOP_EVENTS = openllmetry.EVENT_NAMES
_INFERENCE_EVENTS = frozenset({openinference.FIRST_TOKEN_EVENT})


def _run(draft: Draft, dialect: str, step: Any) -> None:
    before, draft.changed = draft.changed, False
    step(draft)
    if draft.changed:
        draft.mark(dialect)
    draft.changed |= before


def _strip_foreign(draft: Draft) -> None:
    attributes = draft.attributes
    remove = [*FOREIGN_CONTENT_KEYS.intersection(attributes),
              *filter(_FOREIGN_PREFIXED, attributes)]
    for key in remove:
        draft.take(key)


def _finish(draft: Draft) -> tuple[dict[str, Any], list[Event]] | None:
    genai_legacy.structured_content(draft)
    if draft.conversation:
        for key, value in draft.conversation.attributes().items():
            draft.default(key, value)
    if not draft.changed:
        return None
    if draft.dialects:
        before = draft.attributes.get(LLMTRACE_RECEIVER_DIALECTS, ())
        merged = (*before, *(name for name in draft.dialects if name not in before))
        draft.attributes[LLMTRACE_RECEIVER_DIALECTS] = merged
    return draft.attributes, draft.events


def normalise(
    attributes: dict[str, Any], events: list[Event], *, start_ns: int = 0,
    content: bool = True, keep_foreign: bool = True,
) -> tuple[dict[str, Any], list[Event]] | None:
    """The span's (attributes, events) in the latest semconv, or None when already so.

    ``attributes`` is not modified (a failure half-way leaves the span as received).
    With ``content=False`` (nothing in-process reads message content and it will not be
    exported) the dialects' content is removed without being translated: the content
    policy would strip the translation anyway, and building it is most of the cost.
    ``start_ns`` is the span's start, for times carried by events (a stream's first chunk).
    """
    # This runs for every span received: C-level set checks, no per-key Python loop, so a
    # span already in the latest conventions costs about a microsecond here.
    legacy = not genai_legacy.TRIGGER_KEYS.isdisjoint(attributes)
    inference = not openinference.TRIGGER_KEYS.isdisjoint(attributes)
    traceloop = not openllmetry.TRIGGER_KEYS.isdisjoint(attributes) or any(
        map(_TRACELOOP_PREFIXED, attributes))
    lit = not openlit.TRIGGER_KEYS.isdisjoint(attributes)
    latest = not genai_latest.TRIGGER_KEYS.isdisjoint(attributes)
    if events:
        names = {event.name for event in events}
        legacy = legacy or not _LEGACY_EVENTS.isdisjoint(names)
        traceloop = traceloop or not _TRACELOOP_EVENTS.isdisjoint(names)
        inference = inference or not _INFERENCE_EVENTS.isdisjoint(names)
    structured = False
    if not _CONTENT_KEY_SET.isdisjoint(attributes):
        for key in _CONTENT_KEYS:
            value = attributes.get(key)
            if value is not None and not isinstance(value, str):
                structured = True
    foreign = not keep_foreign and (
        not FOREIGN_CONTENT_KEYS.isdisjoint(attributes) or any(map(_FOREIGN_PREFIXED,
                                                                   attributes)))
    if not (legacy or inference or traceloop or structured or lit or latest or foreign):
        return None
    draft = Draft(dict(attributes), list(events), start_ns=start_ns)
    draft.conversation.enabled = content
    if inference:
        _run(draft, openinference.DIALECT, openinference.apply)
    if traceloop:
        _run(draft, openllmetry.DIALECT, openllmetry.apply)
    if legacy:
        _run(draft, genai_legacy.DIALECT, genai_legacy.apply)
    if lit:
        _run(draft, openlit.DIALECT, openlit.apply)
    if latest:
        _run(draft, genai_latest.DIALECT, genai_latest.apply)
    if foreign:
        _strip_foreign(draft)
    return _finish(draft)


def join_events(
    attributes: dict[str, Any], events: list[Event], *, content: bool = True
) -> tuple[dict[str, Any], list[Event]] | None:
    """Message events that arrived after their span was normalised (as OTLP log records),
    translated onto it: only the events are read, so a span is never normalised twice."""
    draft = Draft(dict(attributes), list(events))
    draft.conversation.enabled = content
    _run(draft, genai_legacy.DIALECT, genai_legacy.translate_events)
    return _finish(draft)
