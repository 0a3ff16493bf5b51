"""One call, one counted span: the API SDK's own span is marked as the duplicate of ours.

The ``anthropic`` SDK emits its own span for every call (``anthropic.messages.create``,
scope ``com.anthropic.sdk.python``) whenever a tracer provider is set, and makes it current
while it sends the request, so our span (made in the httpx hook) is its child. Both carry
usage; ours also carries the cost and the findings. While the SDK's span is still open,
:func:`mark_sdk_parent` sets ``llmtrace.call.duplicate_of`` on it (our span's id): our
processors then never price or count it, and a ``collect`` receiving both spans, or any
backend, can tell which one is the call.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Span

from llmtrace_processors.attributes import LLMTRACE_CALL_DUPLICATE_OF, SELF_TRACING_SDK_SCOPES

__all__ = ["mark_sdk_parent"]


def mark_sdk_parent(ours: Span) -> bool:
    """Mark the current span when it is an API SDK's own call span; True when it was."""
    current = trace.get_current_span()
    if current is ours or not current.is_recording():
        return False
    scope = getattr(current, "instrumentation_scope", None)
    if scope is None or scope.name not in SELF_TRACING_SDK_SCOPES:
        return False
    current.set_attribute(LLMTRACE_CALL_DUPLICATE_OF,
                          format(ours.get_span_context().span_id, "016x"))
    return True
