"""Pass-through: received OTLP metric (and log) requests go on to the OTLP endpoint.

Metric request bytes are forwarded as they arrived (protobuf; JSON is converted first),
with no decoding, re-aggregation or enrichment: our processors work on spans. Log requests
are forwarded after their GenAI events lost their content when content is not exported
(``receiver/logs.py``). The downstream answer comes back to the sender: its partial
success, or its failure mapped onto the sender's transport (so an unavailable backend makes
the sender retry, as it should).

The endpoint and protocol are the pipeline's own (``otlp.endpoint`` / ``otlp.protocol``,
else ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``), and
``OTEL_EXPORTER_OTLP_HEADERS`` / ``OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`` are sent along.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

import grpc

from llmtrace_otel.receiver.status import HTTP_STATUS_OF, Refused, grpc_code_of

__all__ = ["METRICS_EXPORT_METHOD", "OTLPForwarder"]

METRICS_EXPORT_METHOD = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
_METHODS = {"metrics": METRICS_EXPORT_METHOD,
            "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export"}
_PROTOBUF = "application/x-protobuf"
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})


def _failed(signal: str, code: grpc.StatusCode, http_status: int, detail: str) -> Refused:
    retry = 1.0 if code in _RETRYABLE else None
    return Refused(code, http_status, f"forwarding {signal} failed: {detail}", "forward_failed",
                   retry)


class OTLPForwarder:
    """Sends serialised ``Export<Signal>ServiceRequest`` bytes to one OTLP endpoint."""

    def __init__(self, endpoint: str, protocol: str, headers: Mapping[str, str] | None = None,
                 timeout_s: float = 10.0, *, signal: str = "metrics") -> None:
        self.signal = signal
        self.endpoint = endpoint
        self.protocol = protocol
        self._headers = dict(headers or {})
        self._timeout_s = timeout_s
        self._channel: grpc.Channel | None = None
        if protocol == "grpc":
            parts = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
            target = parts.netloc
            self._channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials())
                             if parts.scheme == "https" else grpc.insecure_channel(target))
            # No serialisers: the request bytes travel as they are.
            self._call = self._channel.unary_unary(_METHODS[signal])

    def forward(self, payload: bytes) -> bytes:
        """Forward one request; the downstream's serialised response, or :class:`Refused`."""
        if self._channel is not None:
            return self._forward_grpc(payload)
        return self._forward_http(payload)

    def _forward_grpc(self, payload: bytes) -> bytes:
        metadata = tuple((key.lower(), value) for key, value in self._headers.items())
        try:
            response: bytes = self._call(payload, timeout=self._timeout_s, metadata=metadata)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
            details = error.details() if hasattr(error, "details") else str(error)
            raise _failed(self.signal, code, HTTP_STATUS_OF.get(code, 500),
                          f"{self.endpoint} answered {code.name}: {details}") from None
        return response

    def _forward_http(self, payload: bytes) -> bytes:
        request = urllib.request.Request(
            self.endpoint, data=payload, method="POST",
            headers={**self._headers, "Content-Type": _PROTOBUF},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body: bytes = response.read()
                return body if response.headers.get("Content-Type", "").startswith(
                    _PROTOBUF) else b""
        except urllib.error.HTTPError as error:
            raise _failed(self.signal, grpc_code_of(error.code), error.code,
                          f"{self.endpoint} answered HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            raise _failed(self.signal, grpc.StatusCode.UNAVAILABLE, 503,
                          f"{self.endpoint} unreachable: {error}") from None

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
