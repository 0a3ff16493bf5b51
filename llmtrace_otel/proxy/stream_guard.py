"""Streaming output analysis: scan relayed output as it grows, and optionally end the stream.

With ``security.stream_scan`` at ``observe`` or ``stop`` the proxy's relay calls
:meth:`StreamWatch.on_event` after it has written each SSE event to the client (the client
never waits for the scan). The watch reads the new output text from the provider's
stream accumulator (``text_pieces()``: message text, reasoning, tool-call arguments) and
feeds it to a :class:`~processors.security.incremental.TextStreamScanner`, which scans
every 512 new characters (at a line or sentence end once 128 have arrived) with a
320-character overlap, so a key split across chunks is still found: credentials and
keys, exfiltration links, and the system prompt or its secrets echoed back.

* ``observe``: findings become span events ``llmtrace.security.stream.finding`` as they
  are found, and the span gets ``llmtrace.security.stream.finding_types`` and
  ``llmtrace.security.stream.scanned_chars``. A dry run of ``stop``: the background
  security processor reports the same values again from the whole response.
* ``stop``: on a finding at or above ``security.stream_stop_severity`` (default
  ``critical``: an AWS secret key, a private key, a live Stripe key, an exfiltration
  link) the proxy stops relaying, closes the upstream connection (which cancels the
  generation), and ends the client's stream the way the API itself ends a filtered one:

  - OpenAI chat completions / completions: a chunk with ``finish_reason:
    "content_filter"`` for each choice, then ``data: [DONE]``, as Azure OpenAI ends a
    filtered stream (iterating ``create(stream=True)`` ends normally; the
    ``chat.completions.stream()`` helper's ``get_final_completion()`` raises its
    ``ContentFilterFinishReasonError``, which carries the partial completion);
  - OpenAI responses: ``response.incomplete`` with ``incomplete_details.reason =
    "content_filter"``;
  - Anthropic messages: ``content_block_stop``, ``message_delta`` with ``stop_reason:
    "refusal"`` (what Anthropic's own streaming classifiers send), ``message_stop``;
  - any other stream, or a compressed one the proxy relays as it came: the connection
    is closed, so the client sees a broken stream rather than a complete-looking one.

  The span gets ``llmtrace.security.stream_stopped = true``.

What was written before the finding was complete (at most one scan interval of text, and
the chunk that completed the secret) has reached the client: scanning after the write is
what keeps the relay's latency, and the stop limits what follows. A scan that raises is
logged and counted (``llmtrace_telemetry_dropped_total{stage="security.stream",
reason="scan_error"}``) and the watch stops scanning; the relay goes on.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Protocol, runtime_checkable

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from llmtrace_otel.config.choices import StreamScan
from llmtrace_otel.providers.types import LLMRequest, TextPart
from llmtrace_processors.attributes import (
    LLMTRACE_SECURITY_FINDING_CONFIDENCE,
    LLMTRACE_SECURITY_FINDING_DETECTOR,
    LLMTRACE_SECURITY_FINDING_END,
    LLMTRACE_SECURITY_FINDING_EVIDENCE,
    LLMTRACE_SECURITY_FINDING_MESSAGE,
    LLMTRACE_SECURITY_FINDING_SEVERITY,
    LLMTRACE_SECURITY_FINDING_SIDE,
    LLMTRACE_SECURITY_FINDING_START,
    LLMTRACE_SECURITY_FINDING_TYPE,
    LLMTRACE_SECURITY_STREAM_FINDING_EVENT,
    LLMTRACE_SECURITY_STREAM_FINDING_TYPES,
    LLMTRACE_SECURITY_STREAM_SCANNED_CHARS,
    LLMTRACE_SECURITY_STREAM_STOPPED,
)
from llmtrace_processors.security.findings import Severity
from llmtrace_processors.security.incremental import (
    DEFAULT_EVERY,
    DEFAULT_MIN_EVERY,
    DEFAULT_OVERLAP,
    StreamCheck,
    StreamFinding,
    TextStreamScanner,
    default_stream_checks,
)

__all__ = ["StreamScanPolicy", "StreamStopped", "StreamWatch", "TextPieces", "stop_events"]

_log = logging.getLogger(__name__)
_STAGE = "security.stream"
_REFERENCES = 64  # system prompts whose leakage checks are kept
#: Called with (stage, reason) when the scanner fails.
DropCounter = Callable[[str, str], None]


@runtime_checkable
class TextPieces(Protocol):
    """A stream accumulator that exposes the output texts it is building."""

    def text_pieces(self) -> Iterator[tuple[Hashable, list[str]]]: ...


class StreamStopped(Exception):  # noqa: N818 - a signal to the relay, not an error
    """Raised by :meth:`StreamWatch.on_event` when the stream must end (stop mode).

    ``final`` is what to write to the client before finishing (None: close the
    connection instead)."""

    def __init__(self, final: bytes | None) -> None:
        super().__init__("stream stopped by the security stream scanner")
        self.final = final


def _ignore(stage: str, reason: str) -> None:
    return None


class StreamScanPolicy:
    """Built once per proxy (security.stream_scan); :meth:`watch` makes one watch per stream."""

    def __init__(
        self,
        *,
        mode: StreamScan,
        stop_severity: Severity = Severity.CRITICAL,
        every: int = DEFAULT_EVERY,
        min_every: int = DEFAULT_MIN_EVERY,
        overlap: int = DEFAULT_OVERLAP,
        checks: Callable[[str | None], list[StreamCheck]] = default_stream_checks,
        on_drop: DropCounter | None = None,
    ) -> None:
        if mode not in (StreamScan.OBSERVE, StreamScan.STOP):
            raise ValueError(f"stream scan mode must be observe or stop, got {mode!r}")
        self.mode = StreamScan(mode)
        self.stop_severity = stop_severity
        self.every, self.min_every, self.overlap = every, min_every, overlap
        self._checks = checks
        self._on_drop = on_drop or _ignore
        self._by_prompt: OrderedDict[str, list[StreamCheck]] = OrderedDict()

    def _checks_for(self, system_prompt: str | None) -> list[StreamCheck]:
        key = system_prompt or ""
        checks = self._by_prompt.get(key)
        if checks is None:  # the leakage reference indexes the prompt once, not per stream
            checks = self._by_prompt[key] = self._checks(system_prompt)
            if len(self._by_prompt) > _REFERENCES:
                self._by_prompt.popitem(last=False)
        else:
            self._by_prompt.move_to_end(key)
        return checks

    def watch(self, api: str | None, request: LLMRequest | None, accumulator: object,
              span: Span, *, appendable: bool = True) -> StreamWatch | None:
        """A watch for one stream, or None when its accumulator exposes no text.

        ``appendable``: the relay can add an event of its own at the end (False for a
        compressed stream relayed as it came)."""
        if not isinstance(accumulator, TextPieces):
            return None
        system = None
        if request is not None:
            texts = [p.content for p in request.system_instructions if isinstance(p, TextPart)]
            system = "\n".join(texts) if texts else None
        scanner = TextStreamScanner(self._checks_for(system), every=self.every,
                                    min_every=self.min_every, overlap=self.overlap)
        return StreamWatch(self, scanner, accumulator, api if appendable else None, span)

    def failed(self) -> None:
        _log.exception("security stream scan failed; the stream is relayed unscanned")
        self._on_drop(_STAGE, "scan_error")


class StreamWatch:
    """Scans one relayed stream; owned by the handler relaying it (the event loop)."""

    __slots__ = ("_accumulator", "_api", "_consumed", "_policy", "_scanner", "_span",
                 "_stopped", "_types", "active")

    def __init__(self, policy: StreamScanPolicy, scanner: TextStreamScanner,
                 accumulator: TextPieces, api: str | None, span: Span) -> None:
        self._policy = policy
        self._scanner = scanner
        self._accumulator = accumulator
        self._api = api
        self._span = span
        self._consumed: dict[Hashable, int] = {}
        self._types: dict[str, None] = {}
        self._stopped = False
        self.active = True

    def on_event(self) -> None:
        """Scan the output text the last event added, if a scan is due. Raises
        :class:`StreamStopped` in stop mode on a finding at the stop severity."""
        if not self.active:
            return
        try:
            found: list[StreamFinding] = []
            consumed = self._consumed
            for key, pieces in self._accumulator.text_pieces():
                count = len(pieces)
                seen = consumed.get(key, 0)
                if count > seen:
                    consumed[key] = count
                    new = pieces[seen] if count == seen + 1 else "".join(pieces[seen:])
                    found.extend(self._scanner.feed(key, new))
            if found:
                self._record(found)
        except Exception:  # the relay must go on whatever the scan does
            self.active = False
            self._policy.failed()
            return
        if self._stopped:
            self.active = False
            self._span.set_attributes(self._attributes())
            raise StreamStopped(stop_events(self._api, self._accumulator, self._keys()))

    def close(self) -> None:
        """At the end of the stream: scan the rest, mark the span."""
        if self.active:
            self.active = False
            try:
                found = self._scanner.flush()
                if found:
                    self._record(found)
            except Exception:
                self._policy.failed()
        self._span.set_attributes(self._attributes())

    def _keys(self) -> list[Hashable]:
        return list(self._consumed)

    def _record(self, found: list[StreamFinding]) -> None:
        stop_at = self._policy.stop_severity if self._policy.mode is StreamScan.STOP else None
        for item in found:
            finding = item.finding
            self._types.setdefault(finding.finding_type)
            attributes: dict[str, AttributeValue] = {
                LLMTRACE_SECURITY_FINDING_TYPE: finding.finding_type,
                LLMTRACE_SECURITY_FINDING_SEVERITY: finding.severity.label,
                LLMTRACE_SECURITY_FINDING_CONFIDENCE: float(finding.confidence),
                LLMTRACE_SECURITY_FINDING_SIDE: finding.side,
                LLMTRACE_SECURITY_FINDING_DETECTOR: finding.detector,
            }
            if finding.start >= 0:  # offsets in that output text, as streamed
                attributes[LLMTRACE_SECURITY_FINDING_START] = finding.start
                attributes[LLMTRACE_SECURITY_FINDING_END] = finding.end
            if finding.evidence:
                attributes[LLMTRACE_SECURITY_FINDING_EVIDENCE] = finding.evidence
            if finding.message:
                attributes[LLMTRACE_SECURITY_FINDING_MESSAGE] = finding.message
            self._span.add_event(LLMTRACE_SECURITY_STREAM_FINDING_EVENT, attributes)
            if stop_at is not None and finding.severity >= stop_at:
                self._stopped = True
        # on the live span now: a stream the client hangs up on is never closed by the relay
        self._span.set_attributes(self._attributes())

    def _attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            LLMTRACE_SECURITY_STREAM_SCANNED_CHARS: self._scanner.scanned_chars,
        }
        if self._types:
            attributes[LLMTRACE_SECURITY_STREAM_FINDING_TYPES] = tuple(self._types)
        if self._stopped:
            attributes[LLMTRACE_SECURITY_STREAM_STOPPED] = True
        return attributes


def _sse(data: dict[str, object] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def stop_events(api: str | None, accumulator: object, keys: list[Hashable]) -> bytes | None:
    """The SSE events that end a stream of ``api`` early as a filtered one (see the module
    docstring); None when the API has no such shape (close the connection instead)."""
    result = getattr(accumulator, "result", None)
    response = result() if callable(result) else None
    response_id = getattr(response, "id", None) or "stopped"
    model = getattr(response, "model", None) or ""
    created = int(time.time())
    if api in ("openai.chat_completions", "openai.completions"):
        chat = api == "openai.chat_completions"
        choices = sorted({k[0] for k in keys if isinstance(k, tuple)} or {0})
        chunks = [_sse({
            "id": response_id, "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created, "model": model,
            "choices": [{"index": index, **({"delta": {}} if chat else {"text": ""}),
                         "logprobs": None, "finish_reason": "content_filter"}],
        }) for index in choices]
        return b"".join(chunks) + _sse("[DONE]")
    if api == "openai.responses":
        return _sse({"type": "response.incomplete", "sequence_number": 0, "response": {
            "id": response_id, "object": "response", "created_at": created, "model": model,
            "status": "incomplete", "incomplete_details": {"reason": "content_filter"},
            "output": [], "error": None}}, event="response.incomplete")
    if api == "anthropic.messages":
        usage = getattr(response, "usage", None)
        output_tokens = getattr(usage, "output_tokens", None) or 0
        last = max((k for k in keys if isinstance(k, int)), default=0)
        return (
            _sse({"type": "content_block_stop", "index": last}, event="content_block_stop")
            + _sse({"type": "message_delta",
                    "delta": {"stop_reason": "refusal", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens}}, event="message_delta")
            + _sse({"type": "message_stop"}, event="message_stop")
        )
    return None
