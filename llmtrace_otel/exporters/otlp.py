"""OTLP export: where spans and metrics go, and the SDK exporters that send them.

:class:`OtlpTarget` is the resolved choice (``otlp.endpoint`` / ``otlp.protocol``, else
the standard ``OTEL_EXPORTER_OTLP_*`` variables, which the SDK exporters read themselves).
With gRPC the endpoint is used as given; with ``http/protobuf`` a configured base URL gets
the per-signal path (``/v1/traces``, ``/v1/metrics``), as the OTLP exporter spec says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.util.re import parse_env_headers

__all__ = ["OtlpTarget"]

GRPC = "grpc"


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    """Where OTLP goes: an endpoint set here (None: the ``OTEL_EXPORTER_OTLP_*`` variables)
    and the protocol (``grpc`` or ``http/protobuf``)."""

    endpoint: str | None
    protocol: str = GRPC

    def endpoint_for(self, signal: str) -> str | None:
        """The configured endpoint for ``traces``/``metrics``/``logs``; None: from env."""
        if self.endpoint is None or self.protocol == GRPC:
            return self.endpoint
        return self.endpoint.rstrip("/") + f"/v1/{signal}"

    def span_exporter(self) -> SpanExporter:
        endpoint = self.endpoint_for("traces")
        if self.protocol == GRPC:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            return OTLPSpanExporter(endpoint=endpoint)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )
        return HTTPSpanExporter(endpoint=endpoint)

    def metric_exporter(self) -> MetricExporter:
        """The OTLP metric exporter (the assembly puts it in a periodic reader)."""
        endpoint = self.endpoint_for("metrics")
        if self.protocol == GRPC:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )
            return OTLPMetricExporter(endpoint=endpoint)
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HTTPMetricExporter,
        )
        return HTTPMetricExporter(endpoint=endpoint)

    def resolved(self, signal: str, env: Mapping[str, str] | None = None
                 ) -> tuple[str, dict[str, str]] | None:
        """The endpoint URL and headers for ``signal`` as the SDK exporters would use them
        (configured endpoint, else ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``, else
        ``OTEL_EXPORTER_OTLP_ENDPOINT``); None when no endpoint is known."""
        env = os.environ if env is None else env
        upper = signal.upper()
        endpoint = self.endpoint_for(signal)
        if endpoint is None and env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"):
            endpoint = env[f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT"]
        elif endpoint is None and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            endpoint = OtlpTarget(env["OTEL_EXPORTER_OTLP_ENDPOINT"],
                                  self.protocol).endpoint_for(signal)
        if endpoint is None:
            return None
        headers = parse_env_headers(env.get(f"OTEL_EXPORTER_OTLP_{upper}_HEADERS")
                                    or env.get("OTEL_EXPORTER_OTLP_HEADERS") or "",
                                    liberal=True)
        return endpoint, dict(headers)
