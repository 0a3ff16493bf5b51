"""OTLP/HTTP: ``POST /v1/traces``, ``/v1/logs`` and ``/v1/metrics`` as Tornado handlers.

Both encodings of the spec: ``application/x-protobuf`` and ``application/json`` (OTLP/JSON,
hex ids); the response uses the request's encoding, errors included (a
``google.rpc.Status`` body). ``Content-Encoding: gzip`` (and ``deflate``) bodies are
inflated with a bound, so a small compressed body cannot expand past
``server.max_body_bytes``. A full queue answers 429 with ``Retry-After``; a receiver that
is shutting down answers 503.

The same handlers serve ``llmtrace-otel collect``'s own listener and, with
``receiver.on_proxy``, the proxy's listener (:func:`otlp_routes`).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tornado.ioloop import IOLoop
from tornado.web import RequestHandler

from llmtrace_otel.providers.content_encoding import inflater
from llmtrace_otel.receiver import otlp_json
from llmtrace_otel.receiver.service import OTLPReceiver
from llmtrace_otel.receiver.status import Refused

__all__ = ["LOGS_PATH", "METRICS_PATH", "OTLP_PATHS", "TRACES_PATH", "OTLPHTTPHandler",
           "otlp_routes"]

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
METRICS_PATH = "/v1/metrics"
#: Every OTLP/HTTP path of the receiver (they take bodies up to server.max_body_bytes).
OTLP_PATHS = (TRACES_PATH, LOGS_PATH, METRICS_PATH)
_TRANSPORT = "http"
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The request body without its Content-Encoding, never longer than ``limit``."""
    if encoding in ("", "identity"):
        return body
    decoder = inflater(encoding)
    if decoder is None:
        raise Refused.bad_request(f"unsupported Content-Encoding {encoding!r} "
                                  "(gzip, deflate or none)", 415)
    try:
        data = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Refused.bad_request(f"body is not valid {encoding}: {exc}") from None
    if len(data) > limit or decoder.unconsumed_tail:
        raise Refused.bad_request(f"decompressed body exceeds {limit} bytes", 413)
    return data


class OTLPHTTPHandler(RequestHandler):
    """One OTLP signal (``traces``, ``logs`` or ``metrics``) at its spec path."""

    SUPPORTED_METHODS = ("POST",)  # type: ignore[assignment]

    def initialize(self, receiver: OTLPReceiver, signal: str) -> None:
        self._receiver = receiver
        self._signal = signal
        self._json = False

    def check_xsrf_cookie(self) -> None:  # an API, not a form
        return None

    async def post(self) -> None:
        try:
            response = await self._handle()
        except Refused as refused:
            self._receiver.refused(refused, _TRANSPORT, self._signal)
            self._reply_refused(refused)
            return
        self._reply(200, response)

    async def _handle(self) -> bytes:
        receiver = self._receiver
        media_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        self._json = media_type == _JSON
        receiver.authenticate(self.request.headers.get("Authorization"))
        if media_type not in (_PROTOBUF, _JSON):
            raise Refused.bad_request(
                f"Content-Type must be {_PROTOBUF} or {_JSON}, got {media_type or 'none'!r}",
                415)
        body = self.request.body
        if len(body) > receiver.max_body_bytes:
            raise Refused.bad_request(f"body exceeds {receiver.max_body_bytes} bytes", 413)
        encoding = self.request.headers.get("Content-Encoding", "").strip().lower()
        if self._signal == "metrics" and receiver.forwarder is None:
            receiver.forward_metrics(body, _TRANSPORT)  # raises the clear refusal
        # Inflating, parsing and screening run off the event loop: on the proxy's port the
        # loop relays LLM traffic, and a large OTLP/JSON body takes milliseconds to parse.
        loop = IOLoop.current()
        return await loop.run_in_executor(None, self._process, body, encoding)

    def _process(self, body: bytes, encoding: str) -> bytes:
        receiver = self._receiver
        body = _inflate(body, encoding, receiver.max_body_bytes)
        if self._signal == "traces":
            return self._encode(receiver.export_traces(self._traces(body), _TRANSPORT))
        if self._signal == "logs":
            logs_answer = receiver.export_logs(self._logs(body), _TRANSPORT)
            if isinstance(logs_answer, bytes):  # the downstream's, as protobuf
                parsed = ExportLogsServiceResponse()
                parsed.ParseFromString(logs_answer)
                logs_answer = parsed
            return self._encode(logs_answer)
        answer = receiver.forward_metrics(self._metrics(body), _TRANSPORT)
        if not self._json:
            return answer or ExportMetricsServiceResponse().SerializeToString()
        response = ExportMetricsServiceResponse()
        response.ParseFromString(answer)
        return otlp_json.message_to_json(response)

    def _traces(self, body: bytes) -> ExportTraceServiceRequest:
        try:
            if self._json:
                return otlp_json.parse_traces(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            return request
        except (otlp_json.OTLPJSONError, DecodeError) as exc:
            raise Refused.bad_request(f"cannot decode the traces request: {exc}") from None

    def _logs(self, body: bytes) -> ExportLogsServiceRequest:
        try:
            if self._json:
                return otlp_json.parse_logs(body)
            request = ExportLogsServiceRequest()
            request.ParseFromString(body)
            return request
        except (otlp_json.OTLPJSONError, DecodeError) as exc:
            raise Refused.bad_request(f"cannot decode the logs request: {exc}") from None

    def _metrics(self, body: bytes) -> bytes:
        """The request as protobuf bytes: as received, or converted from OTLP/JSON."""
        if not self._json:
            return body
        try:
            return otlp_json.parse_metrics(body).SerializeToString()
        except otlp_json.OTLPJSONError as exc:
            raise Refused.bad_request(f"cannot decode the metrics request: {exc}") from None

    def _encode(self, message: Message) -> bytes:
        return otlp_json.message_to_json(message) if self._json else message.SerializeToString()

    def _reply(self, status: int, body: bytes, headers: dict[str, Any] | None = None) -> None:
        self.set_status(status)
        self.set_header("Content-Type", _JSON if self._json else _PROTOBUF)
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(body)

    def _reply_refused(self, refused: Refused) -> None:
        headers: dict[str, Any] = {}
        if refused.retry_after_s is not None:  # delay-seconds: a whole number
            headers["Retry-After"] = str(max(1, math.ceil(refused.retry_after_s)))
        if refused.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        status = Status(code=refused.code.value[0], message=refused.message)
        self._reply(refused.http_status, self._encode(status), headers)


def otlp_routes(receiver: OTLPReceiver) -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado routes for the OTLP/HTTP paths, served by ``receiver``."""
    return [
        (TRACES_PATH, OTLPHTTPHandler, {"receiver": receiver, "signal": "traces"}),
        (LOGS_PATH, OTLPHTTPHandler, {"receiver": receiver, "signal": "logs"}),
        (METRICS_PATH, OTLPHTTPHandler, {"receiver": receiver, "signal": "metrics"}),
    ]
