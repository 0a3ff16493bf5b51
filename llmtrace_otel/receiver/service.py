"""The receiver proper, shared by both transports: auth, screening, queueing, metrics.

Transports (``grpc_server``, ``http``) only move bytes and translate :class:`Refused` into
their own status; everything that decides what happens to a request lives here, so gRPC
and HTTP behave the same by construction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmtrace_otel.receiver.calls import record_call
from llmtrace_otel.receiver.decode import Normaliser, screen
from llmtrace_otel.receiver.dialects import normalise
from llmtrace_otel.receiver.forward import OTLPForwarder
from llmtrace_otel.receiver.instruments import ReceiverInstruments
from llmtrace_otel.receiver.intake import SpanIntake
from llmtrace_otel.receiver.join import CallJoin
from llmtrace_otel.receiver.latest_names import emit_latest_genai_names
from llmtrace_otel.receiver.logs import record_count, strip_content
from llmtrace_otel.receiver.status import Refused
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.web.auth import BearerToken

__all__ = ["OTLPReceiver", "ReceiverConfig"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """What the receiver accepts and how much it holds (``receiver.*``)."""

    max_body_bytes: int = 32 * 1024 * 1024
    auth_token: str | None = None
    queue_size: int = 8192
    retry_after_s: float = 1.0
    #: OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental: received spans leave the
    #: normalisation with the latest GenAI names (``latest_names.py``).
    genai_latest: bool = False
    #: How long a call span waits for its log events or its twin (``receiver.join_wait_s``).
    join_wait_s: float = 1.0
    #: Content is exported as received (capture on, no redaction): dialect content without
    #: a semconv place is kept, and forwarded logs keep theirs.
    keep_content: bool = False


def _normaliser(config: ReceiverConfig, telemetry: Telemetry) -> Normaliser:
    """The dialect normalisation (content translated only when something reads it: capture
    or analysis; dialect content with no semconv place kept only when exported as received);
    with the latest GenAI conventions switched on, its result in the latest names."""
    translate = partial(normalise, content=telemetry.needs_content,
                        keep_foreign=config.keep_content)
    return emit_latest_genai_names(translate) if config.genai_latest else translate


class OTLPReceiver:
    """Takes OTLP export requests into the pipeline of ``telemetry``.

    ``forwarder`` is the metrics pass-through; without one, metric exports are refused
    with UNIMPLEMENTED / 404 and a message saying how to turn it on. Logs are always
    taken (their GenAI events join their spans) and forwarded, without content unless
    content is exported as received, when an OTLP endpoint is configured
    (``logs_forwarder``).
    """

    def __init__(self, config: ReceiverConfig, telemetry: Telemetry, *,
                 forwarder: OTLPForwarder | None = None,
                 logs_forwarder: OTLPForwarder | None = None) -> None:
        self.max_body_bytes = config.max_body_bytes
        self.instruments = ReceiverInstruments(telemetry.meter, telemetry.instruments)
        self._auth = BearerToken(config.auth_token, "receiver.auth_token")
        self.forwarder = forwarder
        self.logs_forwarder = logs_forwarder
        self._keep_content = config.keep_content
        join = CallJoin(wait_s=config.join_wait_s, content=telemetry.needs_content,
                        on_records=self.instruments.log_records)
        self.intake = SpanIntake(
            telemetry.head,
            max_spans=config.queue_size,
            retry_after_s=config.retry_after_s,
            normalise=_normaliser(config, telemetry),
            on_drop=self.instruments.dropped,
            on_normalise_error=lambda: telemetry.instruments.count_drop(
                "receiver.normalise", "processor_error"),
            join=join,
            on_records=self.instruments.log_records,
            # the proxy's call metrics, from each received call span
            on_span=partial(record_call, telemetry.instruments),
        )

    # -- auth ---------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> None:
        """Check ``Authorization: Bearer <token>`` when a token is configured."""
        problem = self._auth.problem(authorization)
        if problem is not None:
            raise Refused.unauthenticated(problem)

    # -- traces -------------------------------------------------------------------------

    def export_traces(self, request: ExportTraceServiceRequest, transport: str
                      ) -> ExportTraceServiceResponse:
        """Screen and queue one request; the response to send (maybe a partial success).

        Raises :class:`Refused` when the queue is full or the receiver is closing; the
        sender retries the whole request then, and no span of it was taken.
        """
        screened = screen(request)
        self.instruments.received(transport, screened.accepted + screened.rejected)
        if screened.rejected:
            self.instruments.dropped("invalid_span", screened.rejected)
        try:
            self.intake.submit(request, screened.accepted)
        except Refused as refused:
            self.instruments.dropped("queue_full" if refused.outcome == "busy" else "shutdown",
                                     screened.accepted)
            raise
        response = ExportTraceServiceResponse()
        if screened.rejected:
            response.partial_success.CopyFrom(ExportTracePartialSuccess(
                rejected_spans=screened.rejected, error_message=screened.error_message()))
            self.instruments.request(transport, "traces", "partial")
        else:
            self.instruments.request(transport, "traces", "ok")
        return response

    # -- logs ---------------------------------------------------------------------------

    def export_logs(self, request: ExportLogsServiceRequest, transport: str
                    ) -> ExportLogsServiceResponse | bytes:
        """Queue the GenAI events of one request for their spans; forward it when an OTLP
        endpoint is configured (the downstream's serialised answer then goes back).

        Raises :class:`Refused` when the queue is full or the receiver is closing (nothing
        of the request was taken or forwarded), or when forwarding failed.
        """
        records = record_count(request)
        self.instruments.received(transport, records, "logs")
        self.intake.submit(request, records)
        answer: ExportLogsServiceResponse | bytes = ExportLogsServiceResponse()
        if self.logs_forwarder is not None:
            forwarded = request
            if not self._keep_content:
                forwarded = ExportLogsServiceRequest()
                forwarded.CopyFrom(request)
                strip_content(forwarded)
            answer = self.logs_forwarder.forward(forwarded.SerializeToString())
        self.instruments.request(transport, "logs", "ok")
        return answer

    # -- metrics ------------------------------------------------------------------------

    def forward_metrics(self, payload: bytes, transport: str) -> bytes:
        """Forward a serialised ExportMetricsServiceRequest; the downstream's response."""
        if self.forwarder is None:
            raise Refused.unsupported(
                "this llmtrace-otel receiver does not accept metrics: enable the "
                "pass-through with receiver.forward_metrics=true and an OTLP endpoint"
            )
        response = self.forwarder.forward(payload)
        self.instruments.request(transport, "metrics", "ok")
        return response

    def refused(self, refused: Refused, transport: str, signal: str) -> None:
        """Count a request that ends in ``refused`` (called by the transports)."""
        self.instruments.request(transport, signal, refused.outcome)
        if refused.outcome not in ("busy", "shutdown"):
            _log.debug("OTLP %s request over %s refused: %s", signal, transport,
                       refused.message)

    # -- lifecycle ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        depth, capacity = self.intake.depth, self.intake.capacity
        return {"state": "saturated" if depth >= capacity * 0.9 else "ok",
                "depth": depth, "capacity": capacity}

    def close(self, timeout_s: float = 30.0) -> None:
        """Refuse new requests and hand every queued span to the pipeline."""
        self.intake.close(timeout_s)
        for forwarder in (self.forwarder, self.logs_forwarder):
            if forwarder is not None:
                forwarder.close()
