"""The proxy handler: relay a request upstream and the response back, unchanged.

Telemetry is recorded beside the relay, never in its way: bytes go to the client first,
parsing happens after; parse failures are noted on the span, never raised; a client
that goes away cancels the upstream call and ends the span as an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from dataclasses import dataclass, field

import aiohttp
from opentelemetry.propagate import extract
from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler, stream_request_body

from llmtrace_otel.compat import mark_response_abandoned
from llmtrace_otel.guards import CallInfo, CallResult, GuardChain
from llmtrace_otel.providers.base import ParseError, StreamAccumulator
from llmtrace_otel.providers.content_encoding import DecodedTooLarge, inflate
from llmtrace_otel.providers.content_encoding import decoded as _decoded
from llmtrace_otel.providers.content_encoding import inflater as _inflater
from llmtrace_otel.providers.sse import SSEDecoder, SSEEventTooLarge
from llmtrace_otel.providers.types import LLMRequest, LLMResponse, SSEEvent, StreamSignal
from llmtrace_otel.proxy.headers import request_headers, response_headers
from llmtrace_otel.proxy.routing import Route, Router
from llmtrace_otel.proxy.stream_guard import StreamScanPolicy, StreamStopped, StreamWatch
from llmtrace_otel.proxy.upstream import UpstreamClient, UpstreamFailure, classify_exception
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.telemetry.recorder import CallRecorder
from llmtrace_otel.web.errors import ErrorReply, error_document

__all__ = ["ProxyContext", "ProxyHandler"]

_log = logging.getLogger(__name__)
_DEFAULT_SIGNAL = StreamSignal()
_CLIENT_GONE = "client_disconnected"
# When the proxy added stream_options.include_usage, OpenAI adds `"usage":null` to every
# chunk; the client did not ask for it, so it is removed again (compact JSON, as sent).
_USAGE_NULL = b',"usage":null'
# Every usage-only chunk has an empty choices list (compact as OpenAI sends it, or with a
# space as some compatible servers do); most events do not, and only those that do must be
# parsed before they are relayed.
_USAGE_CANDIDATES = (b'"choices":[]', b'"choices": []')
# http.route of proxied LLM API calls: the canonical path, or the API's suffix under any
# other prefix (Azure deployments, gateways), so the route stays low-cardinality.
_API_ROUTES = {
    "openai.chat_completions": ("/v1/chat/completions", "/*/chat/completions"),
    "openai.completions": ("/v1/completions", "/*/completions"),
    "openai.embeddings": ("/v1/embeddings", "/*/embeddings"),
    "openai.responses": ("/v1/responses", "/*/responses"),
    "anthropic.messages": ("/v1/messages", "/*/v1/messages"),
}


class InFlight:
    """Counts requests being proxied so shutdown can wait for them (per server)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True, slots=True)
class ProxyContext:
    """What every proxy request needs; built once per server."""

    router: Router
    upstream: UpstreamClient
    telemetry: Telemetry
    guards: GuardChain
    #: Largest request (and parsed response) body (``server.max_body_bytes``).
    max_body_bytes: int
    #: Ask OpenAI streams for usage and hide it from clients that did not (upstream.*).
    stream_include_usage: bool = True
    #: security.stream_scan (observe/stop); None when off.
    stream_scan: StreamScanPolicy | None = None
    in_flight: InFlight = field(default_factory=InFlight)


@stream_request_body
class ProxyHandler(RequestHandler):
    """Forwards every path not reserved by the proxy to the configured upstream."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

    def initialize(self, context: ProxyContext) -> None:
        self._ctx = context
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._task: asyncio.Task[None] | None = None
        # Stream state, kept here so a disconnect can still record what was received.
        self._accumulator: StreamAccumulator | None = None
        self._stream_complete = False
        self._guard_headers: list[tuple[str, str]] = []
        self._watch: StreamWatch | None = None  # security.stream_scan, per stream
        #: For the http.server.* metrics (proxy/http_metrics.py).
        self.http_route = "/*"
        self.response_body_size = 0

    def set_default_headers(self) -> None:
        # Relay the upstream's headers only: no Tornado Server/Content-Type defaults.
        self.clear_header("Server")
        self.clear_header("Content-Type")

    def compute_etag(self) -> None:
        return None  # never add an ETag the upstream did not send

    def prepare(self) -> None:
        length = self.request.headers.get("Content-Length")
        limit = self._ctx.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            self._too_large = True

    def data_received(self, chunk: bytes) -> None:
        if self._too_large:
            return
        self._size += len(chunk)
        if self._size > self._ctx.max_body_bytes:
            self._too_large = True
            self._chunks.clear()
        else:
            self._chunks.append(chunk)

    @property
    def request_body_size(self) -> int:
        return self._size

    def write(self, chunk: str | bytes | dict) -> None:  # type: ignore[type-arg]
        if isinstance(chunk, bytes):
            self.response_body_size += len(chunk)
        super().write(chunk)

    def on_connection_close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def get(self, *args: str) -> None:
        self._task = asyncio.current_task()  # type: ignore[assignment]
        in_flight = self._ctx.in_flight
        in_flight.count += 1
        try:
            await self._proxy()
        except asyncio.CancelledError:
            pass  # the client went away; _proxy has recorded it
        finally:
            in_flight.count -= 1

    head = post = delete = patch = put = options = get

    # -- the relay ---------------------------------------------------------------------

    async def _proxy(self) -> None:
        ctx = self._ctx
        request = self.request
        method = request.method or "GET"
        headers = request.headers
        route = ctx.router.route(method, request.path, headers)
        if route.adapter is not None:
            canonical, other = _API_ROUTES.get(route.adapter.api, ("/*", "/*"))
            self.http_route = canonical if request.path == canonical else other
        body = b"".join(self._chunks) if self._chunks else None
        issues: list[str] = []
        llm_request, readable = self._parse_request(route, body, issues)
        upstream_body = body
        edit_stream = False
        if (
            llm_request is not None
            and route.adapter is not None
            and body is not None
            and llm_request.stream
            and not llm_request.stream_usage_requested
            and ctx.stream_include_usage
        ):
            rewritten = route.adapter.request_with_stream_usage(body)
            if rewritten is not None:
                upstream_body, edit_stream = rewritten, True
        url = route.upstream.url_for(request.uri or "/")
        recorder = CallRecorder(
            ctx.telemetry,
            method=method,
            url=route.upstream.url_for(request.path),  # no query: it may hold keys
            api=route.adapter.api if route.adapter is not None else None,
            request=llm_request,
            provider=route.provider,
            server_address=route.upstream.host,
            server_port=route.upstream.port,
            parent=extract(headers),
            issues=issues,
        )
        if self._too_large:
            limit = ctx.max_body_bytes
            self._send_error(recorder, route, ErrorReply(
                413, "request_too_large",
                f"request body exceeds the proxy limit of {limit} bytes "
                f"(server.max_body_bytes)"))
            return
        if ctx.guards:
            call = CallInfo(method, request.path, headers,
                            route.adapter.api if route.adapter is not None else None,
                            route.provider, llm_request, request.remote_ip,
                            unparsed=readable if llm_request is None else None)
            try:
                outcome = await ctx.guards.check(call)
            except asyncio.CancelledError:
                recorder.finish(0, error_type=_CLIENT_GONE)
                raise
            if outcome.attributes:
                recorder.add_attributes(outcome.attributes)
            self._guard_headers = outcome.response_headers
            try:
                if outcome.reject is not None:
                    self._send_error(recorder, route, outcome.reject)
                    return
                await self._forward(route, llm_request, recorder, upstream_body, edit_stream, url)
            finally:
                ctx.guards.complete(outcome, call, CallResult(
                    recorder.status_code, recorder.response, recorder.error_type,
                    outcome.attributes))
            return
        await self._forward(route, llm_request, recorder, upstream_body, edit_stream, url)

    async def _forward(self, route: Route, llm_request: LLMRequest | None,
                       recorder: CallRecorder, upstream_body: bytes | None, edit_stream: bool,
                       url: str) -> None:
        ctx = self._ctx
        method = self.request.method or "GET"
        forwarded = request_headers(self.request.headers.get_all(), identity_encoding=edit_stream)
        if route.upstream.authorization is not None and "Authorization" not in self.request.headers:
            forwarded.append(("Authorization", route.upstream.authorization))
        forwarded.extend(recorder.trace_headers())
        response: aiohttp.ClientResponse | None = None
        try:
            try:
                response = await ctx.upstream.send(method, url, forwarded, upstream_body,
                                                   recorder)
            except UpstreamFailure as failure:
                ctx.telemetry.instruments.count_upstream_error(route.provider, failure.error.code)
                self._send_error(recorder, route, failure.error)
                return
            await self._relay_response(response, route, llm_request, recorder, edit_stream, url)
        except asyncio.CancelledError:
            status = response.status if response is not None else 0
            if self._watch is not None:  # scan what was relayed before the hang-up
                self._watch.close()
            partial = self._accumulator.result() if self._accumulator is not None else None
            # A client that hangs up after the terminal event ([DONE], message_stop) got
            # the whole answer; only an earlier hang-up is an error.
            recorder.finish(status, partial,
                            error_type=None if self._stream_complete else _CLIENT_GONE)
            raise
        finally:
            if response is not None:
                response.release()

    def _parse_request(self, route: Route, body: bytes | None, issues: list[str]
                       ) -> tuple[LLMRequest | None, bytes | None]:
        """The parsed request, and the body as it reads (its content-encoding undone, so a
        compressed request is parsed too); the body is None when it cannot be read."""
        if route.adapter is None:
            return None, None
        if not body:
            issues.append("request: empty body")
            return None, b""
        encoding = self.request.headers.get("Content-Encoding", "").strip().lower()
        try:
            plain = _decoded(body, encoding, limit=self._ctx.max_body_bytes)
        except DecodedTooLarge as exc:
            issues.append(f"request: {exc} (server.max_body_bytes)")
            return None, None
        if plain is None:
            issues.append(f"request: content-encoding {encoding!r} not decoded")
            return None, None
        try:
            return route.adapter.parse_request(plain), plain
        except ParseError as exc:
            issues.append(f"request: {exc}")
            return None, plain

    async def _relay_response(
        self,
        response: aiohttp.ClientResponse,
        route: Route,
        llm_request: LLMRequest | None,
        recorder: CallRecorder,
        edit_stream: bool,
        url: str,
    ) -> None:
        self.set_status(response.status, response.reason or "Unknown")
        for name, value in response_headers(response.headers.items()):
            self.add_header(name, value)
        for name, value in self._guard_headers:
            self.add_header(name, value)
        content_type = response.headers.get("Content-Type", "")
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        try:
            if content_type.startswith("text/event-stream"):
                await self._relay_stream(response, route, llm_request, recorder, edit_stream,
                                         encoding)
                return
            data = await self._read_body(response, recorder)
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = classify_exception(exc, url)
            self._ctx.telemetry.instruments.count_upstream_error(route.provider, error.code)
            if self.response_body_size == 0:
                self._send_error(recorder, route, error)  # nothing was sent to the client yet
                return
            recorder.finish(response.status, error_type=error.code)
            self._abort_connection()  # a large body was being relayed: cut, not truncated
            return
        await self._write_final(data or b"")
        parsed = self._parse_response(route, llm_request, data or b"", encoding, recorder)
        if response.status >= 400:
            self._ctx.telemetry.instruments.count_upstream_error(
                route.provider, f"http_{response.status}")
        recorder.finish(response.status, parsed)

    async def _read_body(self, response: aiohttp.ClientResponse,
                         recorder: CallRecorder) -> bytes | None:
        """The whole body when it is at most ``server.max_body_bytes`` (the common case:
        one write to the client, then parsing). A larger one is relayed as it arrives and
        not parsed (``None``), so an upstream cannot make the proxy hold unbounded bytes."""
        limit = self._ctx.max_body_bytes
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) <= limit:
            return await response.read()
        held: list[bytes] | None = []
        size = 0
        async for chunk in response.content.iter_any():
            if held is not None:
                size += len(chunk)
                if size <= limit:
                    held.append(chunk)
                    continue
                recorder.note(f"response: body over {limit} bytes (server.max_body_bytes) "
                              "relayed without parsing")
                for piece in held:
                    self.write(piece)
                held = None
            self.write(chunk)
            await self._flush_or_cancel()
        return b"".join(held) if held is not None else None

    async def _write_final(self, data: bytes) -> None:
        try:
            await self.finish(data)
        except StreamClosedError:
            raise asyncio.CancelledError() from None

    def _parse_response(self, route: Route, llm_request: LLMRequest | None, data: bytes,
                        encoding: str, recorder: CallRecorder) -> LLMResponse | None:
        if route.adapter is None or llm_request is None or not data:
            return None
        try:
            plain = _decoded(data, encoding, limit=self._ctx.max_body_bytes)
        except DecodedTooLarge as exc:
            recorder.note(f"response: {exc} (server.max_body_bytes)")
            return None
        if plain is None:
            recorder.note(f"response: content-encoding {encoding!r} not decoded for telemetry")
            return None
        try:
            return route.adapter.parse_response(plain)
        except ParseError as exc:
            recorder.note(f"response: {exc}")
            return None

    async def _relay_stream(
        self,
        response: aiohttp.ClientResponse,
        route: Route,
        llm_request: LLMRequest | None,
        recorder: CallRecorder,
        edit_stream: bool,
        encoding: str,
    ) -> None:
        adapter = route.adapter
        accumulator = (
            adapter.new_stream_accumulator()
            if adapter is not None and llm_request is not None else None
        )
        self._accumulator = accumulator
        decoder = SSEDecoder()
        inflater = None if edit_stream else _inflater(encoding)
        decodable = edit_stream or not encoding or encoding == "identity" or inflater is not None
        if self._ctx.stream_scan is not None and decodable and adapter is not None:
            self._watch = self._ctx.stream_scan.watch(
                adapter.api, llm_request, accumulator, recorder.span,
                appendable=inflater is None)
        if not decodable:
            recorder.note(f"stream: content-encoding {encoding!r} not decoded for telemetry")
        self._client_stream_nodelay()
        await self._flush_or_cancel()  # headers now, as the upstream sent them
        error_type: str | None = None
        try:
            async for chunk in response.content.iter_any():
                arrived = time.perf_counter()
                if edit_stream:
                    try:
                        events = decoder.feed(chunk)
                    except SSEEventTooLarge as exc:  # relay the rest as it comes, unparsed
                        recorder.note(f"stream: {exc}")
                        edit_stream = decodable = False
                        self.write(exc.unparsed)
                        await self._flush_or_cancel()
                        continue
                    await self._relay_edited(events, recorder, arrived)
                    continue
                self.write(chunk)
                await self._flush_or_cancel()  # bytes out first, parsing after
                if not decodable:
                    continue
                try:
                    for data in (chunk,) if inflater is None else inflate(inflater, chunk):
                        for event in decoder.feed(data):
                            self._account(event, recorder, arrived)
                except (SSEEventTooLarge, zlib.error) as exc:  # stop parsing, relay on
                    recorder.note(f"stream: {exc}")
                    decodable = False
            if edit_stream and decoder.pending:
                self.write(decoder.pending)  # an unterminated tail is relayed as it came
            if decodable:
                for event in decoder.flush():
                    self._account(event, recorder)
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = classify_exception(exc, str(response.url))
            self._ctx.telemetry.instruments.count_upstream_error(route.provider, error.code)
            error_type = error.code
        except StreamStopped as stop:
            await self._stop_stream(stop, response, recorder)
            return
        if self._watch is not None:
            self._watch.close()
        result = accumulator.result() if accumulator is not None else None
        if accumulator is not None:
            for problem in accumulator.problems:
                recorder.note(f"stream: {problem}")
        if error_type is not None:
            recorder.finish(response.status, result, error_type=error_type)
            self._abort_connection()
            return
        await self._write_final(b"")
        recorder.finish(response.status, result)

    async def _relay_edited(self, events: list[SSEEvent], recorder: CallRecorder,
                            arrived: float) -> None:
        """Relay the events of one network chunk minus the usage-only chunk the proxy asked
        for. Only an event that can be that chunk (``"choices":[]``) is parsed before it is
        relayed, and what precedes it is flushed first; the rest are parsed after the
        flush, so the client's first byte never waits for JSON parsing."""
        out: list[bytes] = []
        unparsed: list[SSEEvent] = []
        for event in events:
            raw = event.raw
            if _USAGE_CANDIDATES[0] in raw or _USAGE_CANDIDATES[1] in raw:
                if out:
                    self.write(b"".join(out))
                    out = []
                    await self._flush_or_cancel()
                for earlier in unparsed:  # keep the accumulator's order
                    self._account(earlier, recorder, arrived)
                unparsed = []
                if self._account(event, recorder, arrived).usage_only:
                    continue
            else:
                unparsed.append(event)
            out.append(event.raw.replace(_USAGE_NULL, b""))
        if out:
            self.write(b"".join(out))
            await self._flush_or_cancel()
        for event in unparsed:
            self._account(event, recorder, arrived)

    def _account(self, event: SSEEvent, recorder: CallRecorder,
                 arrived: float | None = None) -> StreamSignal:
        accumulator = self._accumulator
        signal = accumulator.feed(event) if accumulator is not None else _DEFAULT_SIGNAL
        if signal.terminal:
            self._stream_complete = True
        recorder.on_event(signal, arrived)
        if self._watch is not None:  # after the event was relayed; may raise StreamStopped
            self._watch.on_event()
        return signal

    async def _stop_stream(self, stop: StreamStopped, response: aiohttp.ClientResponse,
                           recorder: CallRecorder) -> None:
        """The stream scanner found what security.stream_scan=stop ends a stream for: close
        the upstream connection (cancelling the generation) and end the client's stream as
        the API ends a filtered one, or break it when no such event fits."""
        response.close()
        self._stream_complete = True  # what the client gets next is a complete response
        result = self._accumulator.result() if self._accumulator is not None else None
        if stop.final is None:
            recorder.finish(response.status, result)
            self._abort_connection()
            return
        self.write(stop.final)
        await self._write_final(b"")
        recorder.finish(response.status, result)

    async def _flush_or_cancel(self) -> None:
        try:
            await self.flush()
        except StreamClosedError:
            raise asyncio.CancelledError() from None

    def _client_stream_nodelay(self) -> None:
        """Send each relayed chunk at once (TCP_NODELAY) until the response is finished.

        Tornado leaves Nagle's algorithm on while a response is written and turns it off
        only in ``finish``: a chunk written while the headers (or the previous chunk) are
        not yet acknowledged waits for that ACK, which the client may delay. Tornado turns
        Nagle back on after ``finish`` for the connection's next request."""
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)

    def _abort_connection(self) -> None:
        """Upstream failed after headers were sent: the client must see a broken
        response, not a truncated one that looks complete."""
        mark_response_abandoned(self)
        if self.request.connection is not None:
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None:
                stream.close()

    def _send_error(self, recorder: CallRecorder, route: Route, error: ErrorReply) -> None:
        recorder.finish(error.status, error_type=error.code)
        self.clear()
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        if error.status == 413:
            self.set_header("Connection", "close")
        for name, value in (*self._guard_headers, *error.headers):
            self.add_header(name, value)
        self.finish(error_document(error, route.flavor))
