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

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmtrace_otel.receiver.decode import screen
from llmtrace_otel.receiver.dialects import normalise
from llmtrace_otel.receiver.forward import MetricsForwarder
from llmtrace_otel.receiver.instruments import ReceiverInstruments
from llmtrace_otel.receiver.intake import SpanIntake
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


class OTLPReceiver:
    """Takes OTLP export requests into the pipeline of ``telemetry``.

    ``forwarder`` is the metrics pass-through; without one, metric exports are refused
    with UNIMPLEMENTED / 404 and a message saying how to turn it on.
    """

    def __init__(self, config: ReceiverConfig, telemetry: Telemetry, *,
                 forwarder: MetricsForwarder | None = None) -> None:
        self.max_body_bytes = config.max_body_bytes
        self.instruments = ReceiverInstruments(telemetry.meter, telemetry.instruments)
        self._auth = BearerToken(config.auth_token, "receiver.auth_token")
        self.forwarder = forwarder
        self.intake = SpanIntake(
            telemetry.head,
            max_spans=config.queue_size,
            retry_after_s=config.retry_after_s,
            # Content is translated only when something reads it (capture or analysis).
            normalise=partial(normalise, content=telemetry.needs_content),
            on_drop=self.instruments.dropped,
            on_normalise_error=lambda: telemetry.instruments.count_drop(
                "receiver.normalise", "processor_error"),
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
        if self.forwarder is not None:
            self.forwarder.close()
