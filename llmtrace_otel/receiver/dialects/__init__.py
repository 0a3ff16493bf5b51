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

Dialects: :mod:`.openinference`, :mod:`.openllmetry`, :mod:`.genai_legacy` (older semconv).
"""

from __future__ import annotations

from operator import methodcaller
from typing import Any

from opentelemetry.sdk.trace import Event

from llmtrace_otel.receiver.dialects import genai_legacy, openinference, openllmetry
from llmtrace_otel.receiver.dialects._draft import Draft
from llmtrace_processors.attributes import LLMTRACE_RECEIVER_DIALECTS

__all__ = ["DIALECTS", "normalise"]

DIALECTS = (openinference.DIALECT, openllmetry.DIALECT, genai_legacy.DIALECT)
_CONTENT_KEYS = genai_legacy.CONTENT_KEYS
_CONTENT_KEY_SET = frozenset(_CONTENT_KEYS)
_TRACELOOP_PREFIXED = methodcaller("startswith", openllmetry.PREFIXES)


def _run(draft: Draft, dialect: str, step: Any) -> None:
    before, draft.changed = draft.changed, False
    step(draft)
    if draft.changed:
        draft.mark(dialect)
    draft.changed |= before


def normalise(
    attributes: dict[str, Any], events: list[Event], *, content: bool = True
) -> tuple[dict[str, Any], list[Event]] | None:
    """The span's (attributes, events) in the latest semconv, or None when already so.

    ``attributes`` is not modified (a failure half-way leaves the span as received).
    With ``content=False`` (nothing in-process reads message content and it will not be
    exported) the dialects' content is removed without being translated: the content
    policy would strip the translation anyway, and building it is most of the cost.
    """
    # This runs for every span received: C-level set checks, no per-key Python loop, so a
    # span already in the latest conventions costs about a microsecond here.
    legacy = not genai_legacy.TRIGGER_KEYS.isdisjoint(attributes)
    inference = not openinference.TRIGGER_KEYS.isdisjoint(attributes)
    traceloop = not openllmetry.TRIGGER_KEYS.isdisjoint(attributes) or any(
        map(_TRACELOOP_PREFIXED, attributes))
    if not legacy and events:
        legacy = any(event.name in genai_legacy.EVENT_NAMES for event in events)
    structured = False
    if not _CONTENT_KEY_SET.isdisjoint(attributes):
        for key in _CONTENT_KEYS:
            value = attributes.get(key)
            if value is not None and not isinstance(value, str):
                structured = True
    if not (legacy or inference or traceloop or structured):
        return None
    draft = Draft(dict(attributes), list(events))
    draft.conversation.enabled = content
    if inference:
        _run(draft, openinference.DIALECT, openinference.apply)
    if traceloop:
        _run(draft, openllmetry.DIALECT, openllmetry.apply)
    if legacy:
        _run(draft, genai_legacy.DIALECT, genai_legacy.apply)
    genai_legacy.structured_content(draft)
    if draft.conversation:
        for key, value in draft.conversation.attributes().items():
            draft.default(key, value)
    if not draft.changed:
        return None
    if draft.dialects:
        draft.attributes[LLMTRACE_RECEIVER_DIALECTS] = tuple(draft.dialects)
    return draft.attributes, draft.events
