"""Collector mode: an OTLP receiver that runs our processors on GenAI spans from any source.

OTLP/gRPC and OTLP/HTTP (protobuf and JSON, gzip) in; received spans are normalised to the
latest GenAI semantic conventions and handed, with their original ids, times, resource,
scope, events, links and status, to the same processor chain and exporters as the proxy's
own spans. See docs/collector.md.
"""

from __future__ import annotations

from llmtrace_otel.receiver.collector import CollectorServer
from llmtrace_otel.receiver.grpc_server import GRPCReceiver
from llmtrace_otel.receiver.http import otlp_routes
from llmtrace_otel.receiver.service import OTLPReceiver
from llmtrace_otel.receiver.status import Refused

__all__ = ["CollectorServer", "GRPCReceiver", "OTLPReceiver", "Refused", "otlp_routes"]
