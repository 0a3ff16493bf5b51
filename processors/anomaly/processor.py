"""AnomalyProcessor: flags GenAI spans whose cost, tokens, latency or rate spike per tenant.

Runs after :class:`~processors.cost.CostProcessor` (it reads ``llmtrace.cost.usd``). For each
GenAI span it builds a :class:`Sample` (cost, input + output tokens, duration, error) keyed
by ``llmtrace.tenant.id`` and asks the :class:`AnomalyDetector`. Each anomaly becomes a
``llmtrace.anomaly`` span event (type, value, mean, stddev, score, samples), the span gets
``llmtrace.anomaly.types``, the ``llmtrace.anomalies`` counter is incremented
(``anomaly_type``, ``tenant``) and every listener is called (alerts).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.anomaly.detector import Anomaly, AnomalyConfig, AnomalyDetector, Sample
from llmtrace_processors.attributes import (
    LLMTRACE_AGENT_ID,
    LLMTRACE_ANOMALY_EVENT,
    LLMTRACE_ANOMALY_MEAN,
    LLMTRACE_ANOMALY_SAMPLES,
    LLMTRACE_ANOMALY_SCORE,
    LLMTRACE_ANOMALY_STDDEV,
    LLMTRACE_ANOMALY_TYPE,
    LLMTRACE_ANOMALY_TYPES,
    LLMTRACE_ANOMALY_VALUE,
    LLMTRACE_COST_USD,
    LLMTRACE_TENANT_ID,
)
from llmtrace_processors.chain import DropCounter, EnrichingSpanProcessor, Enrichment
from llmtrace_processors.cost.processor import DEFAULT_TENANT, read_usage

__all__ = ["ANOMALY_METRIC", "AnomalyListener", "AnomalyProcessor", "sample_of"]

_log = logging.getLogger(__name__)
_METER_NAME = "processors.anomaly"
#: Counter of anomalies; ``llmtrace_anomalies_total{anomaly_type, tenant}`` in Prometheus.
ANOMALY_METRIC = "llmtrace.anomalies"

#: Called with (tenant, agent or None, anomaly) for every anomaly found.
AnomalyListener = Callable[[str, str | None, Anomaly], None]


def _text(attributes: Mapping[str, AttributeValue], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) and value else None


def sample_of(span: ReadableSpan) -> Sample:
    attributes = span.attributes or {}
    cost = attributes.get(LLMTRACE_COST_USD)
    usage = read_usage(attributes)
    end = span.end_time or 0
    latency = (end - span.start_time) / 1e9 if span.start_time and end else None
    return Sample(
        time_s=end / 1e9,
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        tokens=usage.input_tokens + usage.output_tokens if usage is not None else None,
        latency_s=latency,
        error=ERROR_TYPE in attributes or span.status.status_code is StatusCode.ERROR,
    )


class AnomalyProcessor(EnrichingSpanProcessor):
    """Adds ``llmtrace.anomaly`` events to GenAI spans that spike for their tenant."""

    stage = "anomaly"

    def __init__(
        self,
        next_processor: SpanProcessor | None = None,
        *,
        config: AnomalyConfig | None = None,
        detector: AnomalyDetector | None = None,
        meter_provider: MeterProvider | None = None,
        tenant_label: Callable[[str], str] | None = None,
        on_drop: DropCounter | None = None,
    ) -> None:
        super().__init__(next_processor, on_drop=on_drop)
        self.detector = detector if detector is not None else AnomalyDetector(
            config or AnomalyConfig())
        self._label = tenant_label if tenant_label is not None else (lambda tenant: tenant)
        self._listeners: tuple[AnomalyListener, ...] = ()
        self._lock = threading.Lock()
        meter = get_meter(_METER_NAME, meter_provider=meter_provider)
        self._counter = meter.create_counter(
            ANOMALY_METRIC, unit="{anomaly}",
            description="Calls or rate windows far above their tenant's baseline.")

    def add_listener(self, listener: AnomalyListener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        attributes = span.attributes or {}
        tenant = _text(attributes, LLMTRACE_TENANT_ID) or DEFAULT_TENANT
        anomalies = self.detector.observe(tenant, sample_of(span))
        if not anomalies:
            return None
        agent = _text(attributes, LLMTRACE_AGENT_ID)
        label = self._label(tenant)
        events = []
        for anomaly in anomalies:
            self._counter.add(1, {"anomaly_type": anomaly.anomaly_type.value, "tenant": label})
            events.append(Event(LLMTRACE_ANOMALY_EVENT, {
                LLMTRACE_ANOMALY_TYPE: anomaly.anomaly_type.value,
                LLMTRACE_ANOMALY_VALUE: anomaly.value,
                LLMTRACE_ANOMALY_MEAN: anomaly.mean,
                LLMTRACE_ANOMALY_STDDEV: anomaly.stddev,
                LLMTRACE_ANOMALY_SCORE: anomaly.score,
                LLMTRACE_ANOMALY_SAMPLES: anomaly.samples,
            }, timestamp=span.end_time))
            for listener in self._listeners:
                try:
                    listener(tenant, agent, anomaly)
                except Exception:
                    _log.exception("anomaly listener failed")
                    self._on_drop(self.stage, "listener_error")
        return Enrichment(
            attributes={LLMTRACE_ANOMALY_TYPES: tuple(a.anomaly_type.value for a in anomalies)},
            events=events,
        )
