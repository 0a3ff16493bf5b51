"""OTLP/gRPC: the TraceService, LogsService and MetricsService on a grpcio server.

Traces and logs use the generated servicers (grpcio deserialises the request;
``grpc-encoding: gzip`` is handled by grpcio). Metrics use a generic handler without
(de)serialisers, so the pass-through forwards the bytes exactly as they arrived.

Refusals carry the retry delay the way both kinds of OTLP exporters read it: a
``google.rpc.RetryInfo`` in the ``grpc-status-details-bin`` trailer (a ``google.rpc.Status``
with details, read by the Go exporters) and in ``google.rpc.retryinfo-bin`` (read by the
Python exporters).
"""

from __future__ import annotations

import collections
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from llmtrace_otel.receiver.service import OTLPReceiver
from llmtrace_otel.receiver.status import Refused
from llmtrace_otel.web.server import ListenError

__all__ = ["GRPCReceiver"]

_log = logging.getLogger(__name__)
_TRANSPORT = "grpc"
_METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"


class _AbortStatus(
    collections.namedtuple("_AbortStatus", ("code", "details", "trailing_metadata")),
    grpc.Status,
):
    """What ``ServicerContext.abort_with_status`` needs (as grpcio-status builds it)."""


def _abort(context: grpc.ServicerContext, refused: Refused) -> None:
    trailers: list[tuple[str, bytes]] = []
    status = Status(code=refused.code.value[0], message=refused.message)
    if refused.retry_after_s is not None:
        delay = Duration()
        delay.FromNanoseconds(int(refused.retry_after_s * 1e9))
        info = RetryInfo(retry_delay=delay)
        packed = AnyProto()
        packed.Pack(info)
        status.details.append(packed)
        trailers.append(("google.rpc.retryinfo-bin", info.SerializeToString()))
    trailers.append(("grpc-status-details-bin", status.SerializeToString()))
    context.abort_with_status(_AbortStatus(refused.code, refused.message, tuple(trailers)))


def _authorization(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802 - name fixed by the generated servicer
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        try:
            self._receiver.authenticate(_authorization(context))
            return self._receiver.export_traces(request, _TRANSPORT)
        except Refused as refused:
            self._receiver.refused(refused, _TRANSPORT, "traces")
            _abort(context, refused)
            raise  # not reached: abort raises


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OTLPReceiver) -> None:
        self._receiver = receiver

    def Export(  # noqa: N802 - name fixed by the generated servicer
        self,
        request: logs_service_pb2.ExportLogsServiceRequest,
        context: grpc.ServicerContext,
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        try:
            self._receiver.authenticate(_authorization(context))
            answer = self._receiver.export_logs(request, _TRANSPORT)
        except Refused as refused:
            self._receiver.refused(refused, _TRANSPORT, "logs")
            _abort(context, refused)
            raise  # not reached: abort raises
        if isinstance(answer, bytes):  # the downstream's answer
            return logs_service_pb2.ExportLogsServiceResponse.FromString(answer)
        return answer


def _metrics_handler(receiver: OTLPReceiver) -> grpc.GenericRpcHandler:
    def export(payload: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            receiver.authenticate(_authorization(context))
            return receiver.forward_metrics(payload, _TRANSPORT)
        except Refused as refused:
            receiver.refused(refused, _TRANSPORT, "metrics")
            _abort(context, refused)
            raise

    return grpc.method_handlers_generic_handler(
        _METRICS_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
    )


class GRPCReceiver:
    """A grpcio server answering OTLP on ``host:port`` (port 0: any free port)."""

    def __init__(self, receiver: OTLPReceiver, host: str, port: int, *,
                 max_workers: int = 8, idle_timeout_s: float = 75.0,
                 reuse_port: bool = False) -> None:
        """At most ``max_workers`` export calls run at once and 8 times as many wait (more
        get RESOURCE_EXHAUSTED, which OTLP senders retry); an idle connection is closed
        after ``idle_timeout_s`` (``server.idle_timeout_s``). ``reuse_port``: a relay
        worker's listener on a port its parent holds (``SO_REUSEPORT``)."""
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="llmtrace-grpc"),
            options=[
                ("grpc.max_receive_message_length", receiver.max_body_bytes),
                ("grpc.so_reuseport", 1 if reuse_port else 0),
                ("grpc.max_connection_idle_ms", int(idle_timeout_s * 1000)),
            ],
            maximum_concurrent_rpcs=max_workers * 8,
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(receiver), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            _LogsService(receiver), self._server)
        self._server.add_generic_rpc_handlers((_metrics_handler(receiver),))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise ListenError(f"cannot listen on {address} for OTLP/gRPC: the port is in use or "
                              "the address is not one of this machine; choose another with "
                              "--receiver-grpc-endpoint / receiver.grpc_endpoint")
        self.address = address

    def start(self) -> int:
        self._server.start()
        return self.port

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting; let running calls finish within ``grace_s``."""
        self._server.stop(grace_s).wait(grace_s + 1)
