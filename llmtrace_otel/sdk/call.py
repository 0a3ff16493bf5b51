"""One recognised LLM call seen from inside the application: span, body and stream.

:class:`ObservedCall` sits beside the httpx request, never in its way. It owns a
:class:`CallRecorder` (the same one the proxy uses: one span + metrics per call) and is
fed what the application's client sends and reads: the response of a non-streamed call
once httpx has read it, or a streamed body chunk by chunk as the application consumes it.
The span ends exactly once: when the body is complete, when the stream is exhausted,
fails or is closed early, or when the request itself fails.

Every public method catches its own failures: a bug here is logged and counted
(``llmtrace_telemetry_dropped_total{stage="sdk",reason="instrumentation_error"}``) and
the application's call carries on untouched.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import MutableMapping
from enum import Enum

from opentelemetry.context import Context
from opentelemetry.propagate import inject
from opentelemetry.trace import set_span_in_context

from llmtrace_otel.providers.base import ParseError, StreamAccumulator
from llmtrace_otel.providers.content_encoding import DecodedTooLarge, decoded, inflate, inflater
from llmtrace_otel.providers.sse import SSEDecoder, SSEEventTooLarge
from llmtrace_otel.providers.types import LLMResponse, SSEEvent
from llmtrace_otel.sdk.matching import LLMCallTarget
from llmtrace_otel.sdk.twins import mark_sdk_parent
from llmtrace_otel.telemetry.recorder import CallRecorder, RecordingTarget

__all__ = ["CLIENT_CLOSED_EARLY", "ObservedCall", "count_fault", "error_type_of"]

_log = logging.getLogger(__name__)

#: ``error.type`` of a stream the application closed before its terminal event: the
#: value the proxy records for the same client behaviour.
CLIENT_CLOSED_EARLY = "client_disconnected"
# Largest non-SSE body kept for parsing; a larger one is passed on and left unparsed.
_MAX_BODY = 32 * 1024 * 1024
# OpenAI adds `"usage":null` to every chunk once include_usage is on (compact JSON).
_USAGE_NULL = b',"usage":null'


class _Mode(Enum):
    NONE = 0  # not parsed (undecodable, or after a fault)
    SSE = 1  # text/event-stream: events fed to the adapter's accumulator
    JSON = 2  # anything else: collected, parsed when complete


def error_type_of(exc: BaseException) -> str:
    """``error.type`` for an exception: its class name, as the HTTP instrumentation has it."""
    return type(exc).__qualname__


def count_fault(telemetry: RecordingTarget, where: str) -> None:
    """Log and count a failure of the instrumentation itself; never raises."""
    _log.warning("llmtrace-otel SDK instrumentation failed (%s); the call is unaffected",
                 where, exc_info=True)
    try:
        telemetry.instruments.count_drop("sdk", "instrumentation_error")
    except Exception:  # the meter itself is broken: nothing more to do
        _log.debug("could not count the failure", exc_info=True)


class ObservedCall:
    """The telemetry side of one LLM call made through httpx."""

    __slots__ = (
        "_telemetry", "_target", "recorder", "_status", "_mode", "_accumulator", "_decoder",
        "_inflater", "_encoding", "_body", "_body_size", "_terminal", "_finished",
        "edit_stream",
    )

    def __init__(self, telemetry: RecordingTarget, target: LLMCallTarget, method: str) -> None:
        self._telemetry = telemetry
        self._target = target
        self.recorder = CallRecorder(
            telemetry,
            method=method,
            url=target.url,
            api=target.adapter.api,
            request=target.request,
            provider=target.provider,
            server_address=target.server_address,
            server_port=target.server_port,
            parent=None,  # the application's current context
            issues=[],
        )
        mark_sdk_parent(self.recorder.span)  # the anthropic SDK's own span, if any
        self._status = 0
        self._mode = _Mode.NONE
        self._accumulator: StreamAccumulator | None = None
        self._decoder: SSEDecoder | None = None
        self._inflater: zlib._Decompress | None = None
        self._encoding = ""
        self._body: list[bytes] = []
        self._body_size = 0
        self._terminal = False
        self._finished = False
        #: True when the request was given ``stream_options.include_usage`` by us: the
        #: usage-only chunk and the ``"usage":null`` fields are removed from the stream.
        self.edit_stream = False

    # -- request side -------------------------------------------------------------------

    def context(self) -> Context:
        """The application's context with this call's span current."""
        return set_span_in_context(self.recorder.span)

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """W3C trace context of the call span into the outgoing request headers."""
        try:
            inject(headers, context=self.context())
        except Exception:
            count_fault(self._telemetry, "inject")

    def failed(self, exc: BaseException) -> None:
        """The request raised before a response (connect error, timeout, cancel)."""
        try:
            error = error_type_of(exc)
            self._telemetry.instruments.count_upstream_error(self._target.provider, error)
            self._finish(None, error)
        except Exception:
            self._fault("failed", end_span=True)

    # -- response side ------------------------------------------------------------------

    def complete(self, status: int, body: bytes) -> None:
        """A response whose body httpx has read (and decoded) already."""
        try:
            self._status = status
            self._finish(self._parse(body) if body else None)
        except Exception:
            self._fault("response", end_span=True)

    def streaming(self, status: int, content_type: str, encoding: str) -> None:
        """A response whose body the application will read: set up how to follow it."""
        try:
            self._status = status
            self._encoding = encoding
            if not content_type.startswith("text/event-stream"):
                self._mode = _Mode.JSON
                return
            identity = not encoding or encoding == "identity"
            if self.edit_stream and not identity:
                self.edit_stream = False  # we asked for identity; never edit what we cannot
                self.recorder.note(f"stream: content-encoding {encoding!r}: not edited")
            if not identity:
                self._inflater = inflater(encoding)
                if self._inflater is None:
                    self.recorder.note(
                        f"stream: content-encoding {encoding!r} not decoded for telemetry")
                    return
            self._accumulator = self._target.adapter.new_stream_accumulator()
            self._decoder = SSEDecoder()
            self._mode = _Mode.SSE
        except Exception:
            self._fault("stream setup")

    def chunk(self, data: bytes) -> bytes:
        """Account for one raw chunk of the body; returns the bytes to pass on."""
        mode = self._mode
        if mode is _Mode.SSE:
            if self.edit_stream:
                return self._edit(data)
            try:
                assert self._decoder is not None
                pieces = (data,) if self._inflater is None else inflate(self._inflater, data)
                for plain in pieces:
                    for event in self._decoder.feed(plain):
                        self._account(event)
            except (ValueError, zlib.error) as exc:  # an event over the limit, bad gzip
                self.recorder.note(f"stream: {exc}")
                self._mode = _Mode.NONE
            except Exception:
                self._fault("stream")
                self._mode = _Mode.NONE
        elif mode is _Mode.JSON:
            self._body_size += len(data)
            if self._body_size <= _MAX_BODY:
                self._body.append(data)
            else:
                self._body.clear()
                self.recorder.note(f"response: body over {_MAX_BODY} bytes not parsed")
                self._mode = _Mode.NONE
        return data

    def exhausted(self) -> bytes:
        """The application read the whole body. Returns a last tail to pass on (if any)."""
        tail = b""
        try:
            if self._mode is _Mode.SSE:
                assert self._decoder is not None
                if self.edit_stream:
                    tail = self._decoder.pending  # an unterminated tail passes as it came
                for event in self._decoder.flush():
                    self._account(event)
                self._finish(self._stream_result())
            elif self._mode is _Mode.JSON:
                body = b"".join(self._body)
                try:
                    plain = decoded(body, self._encoding, limit=_MAX_BODY)
                except DecodedTooLarge as exc:
                    self.recorder.note(f"response: {exc}")
                    plain = b""
                if plain is None:
                    self.recorder.note(
                        f"response: content-encoding {self._encoding!r} not decoded for "
                        "telemetry")
                self._finish(self._parse(plain) if plain else None)
            else:
                self._finish(None)
        except Exception:
            self._fault("stream end", end_span=True)
        return tail

    def stream_failed(self, exc: BaseException) -> None:
        """Reading the body raised (read timeout, connection reset)."""
        try:
            error = error_type_of(exc)
            self._telemetry.instruments.count_upstream_error(self._target.provider, error)
            self._finish(self._stream_result(), error)
        except Exception:
            self._fault("stream failure", end_span=True)

    def closed(self) -> None:
        """The response was closed (or dropped); ends the span if nothing else did."""
        if self._finished:
            return
        try:
            if self._mode is _Mode.SSE:
                # After the terminal event ([DONE], message_stop) the answer was complete.
                self._finish(self._stream_result(),
                             None if self._terminal else CLIENT_CLOSED_EARLY)
            else:
                if self._mode is _Mode.JSON:
                    self.recorder.note("response: closed before the body was read")
                self._finish(None)
        except Exception:
            self._fault("close", end_span=True)

    @property
    def finished(self) -> bool:
        return self._finished

    # -- internals ----------------------------------------------------------------------

    def _edit(self, data: bytes) -> bytes:
        """Pass on the stream without what only we asked for (proxy: the same edit)."""
        decoder = self._decoder
        assert decoder is not None
        try:
            events = decoder.feed(data)
        except SSEEventTooLarge as exc:  # never lose the application's bytes
            self.recorder.note(f"stream: {exc}")
            self._mode = _Mode.NONE
            return exc.unparsed  # what the decoder held back, and this chunk
        out = []
        for event in events:
            usage_only = False
            try:
                usage_only = self._account(event)
            except Exception:
                self._fault("stream")
            if not usage_only:
                out.append(event.raw.replace(_USAGE_NULL, b""))
        return b"".join(out)

    def _account(self, event: SSEEvent) -> bool:
        """Feed one event to the accumulator and the recorder; True for a usage-only one."""
        assert self._accumulator is not None
        signal = self._accumulator.feed(event)
        if signal.terminal:
            self._terminal = True
        self.recorder.on_event(signal)
        return signal.usage_only

    def _stream_result(self) -> LLMResponse | None:
        accumulator = self._accumulator
        if accumulator is None:
            return None
        for problem in accumulator.problems:
            self.recorder.note(f"stream: {problem}")
        return accumulator.result()

    def _parse(self, body: bytes) -> LLMResponse | None:
        try:
            return self._target.adapter.parse_response(body)
        except ParseError as exc:
            self.recorder.note(f"response: {exc}")
            return None

    def _finish(self, response: LLMResponse | None, error_type: str | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        status = self._status
        if status >= 400:
            self._telemetry.instruments.count_upstream_error(self._target.provider,
                                                             f"http_{status}")
        self.recorder.finish(status, response, error_type=error_type)

    def _fault(self, where: str, *, end_span: bool = False) -> None:
        count_fault(self._telemetry, where)
        self._mode = _Mode.NONE
        if not end_span:
            return
        self._finished = True
        try:
            span = self.recorder.span
            if span.is_recording():
                span.end()  # never leave a span open because of our own bug
        except Exception:
            _log.debug("could not end the span", exc_info=True)
