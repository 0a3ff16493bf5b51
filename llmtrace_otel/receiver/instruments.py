"""The receiver's own metrics; rejected spans also go to ``llmtrace_telemetry_dropped_total``.

* ``llmtrace_receiver_spans_total{transport}``: spans in every decoded trace request,
  accepted or not (``grpc`` / ``http``).
* ``llmtrace_receiver_log_records_total{transport}``: log records in every logs request.
* ``llmtrace_receiver_log_events_total{outcome}``: what became of received log records:
  ``joined`` (a GenAI event put on its span), ``unjoined`` (a GenAI event whose span did
  not come within ``PENDING_TTL_S`` or had already gone on: its content was not analysed),
  ``not_genai`` (any other record: only forwarded).
* ``llmtrace_receiver_requests_total{transport,signal,outcome}``: every export request;
  ``outcome`` is ``ok``, ``partial``, ``busy``, ``shutdown``, ``unauthenticated``,
  ``bad_request``, ``unsupported`` or ``forward_failed``.
* ``llmtrace_telemetry_dropped_total{stage="receiver",reason}``: spans not taken into the
  pipeline: ``invalid_span`` (malformed ids: a partial success), ``queue_full`` and
  ``shutdown`` (the sender was told to retry), ``decode_error`` (accepted, then failed to
  convert: a bug, logged).
"""

from __future__ import annotations

from opentelemetry.metrics import Meter

from llmtrace_otel.telemetry.instruments import ProxyInstruments

__all__ = ["STAGE", "ReceiverInstruments"]

STAGE = "receiver"


class ReceiverInstruments:
    def __init__(self, meter: Meter, shared: ProxyInstruments) -> None:
        self._shared = shared
        self._spans = meter.create_counter(
            "llmtrace.receiver.spans", unit="{span}",
            description="Spans received over OTLP, accepted or not.",
        )
        self._records = meter.create_counter(
            "llmtrace.receiver.log_records", unit="{record}",
            description="Log records received over OTLP.",
        )
        self._events = meter.create_counter(
            "llmtrace.receiver.log_events", unit="{record}",
            description="Received log records by what became of them (joined to a span...).",
        )
        self._requests = meter.create_counter(
            "llmtrace.receiver.requests", unit="{request}",
            description="OTLP export requests received, by outcome.",
        )

    def received(self, transport: str, items: int, signal: str = "traces") -> None:
        if items:
            counter = self._spans if signal == "traces" else self._records
            counter.add(items, {"transport": transport})

    def log_records(self, outcome: str, records: int) -> None:
        if records:
            self._events.add(records, {"outcome": outcome})

    def request(self, transport: str, signal: str, outcome: str) -> None:
        self._requests.add(1, {"transport": transport, "signal": signal, "outcome": outcome})

    def dropped(self, reason: str, spans: int = 1) -> None:
        for _ in range(spans):
            self._shared.count_drop(STAGE, reason)
