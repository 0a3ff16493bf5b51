"""Replaying the recorded library exports (``fixtures/``) into a running ``collect``.

A fixture holds the OTLP requests one real library sent, in arrival order; :func:`replay`
sends them again, over OTLP/HTTP (as recorded: OTLP/JSON) or OTLP/gRPC (the same requests
as protobuf), traces and logs alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from llmtrace_otel.receiver import otlp_json
from tests.receiver.harness import RunningCollector
from tests.receiver.helpers import JSON, post

FIXTURES = Path(__file__).parent / "fixtures"
Transport = Literal["http", "grpc"]


@dataclass(frozen=True)
class Fixture:
    """One recorded file: ``openlit-1.45.0/default``."""

    name: str
    data: dict[str, Any]

    @property
    def library(self) -> str:
        return str(self.data["library"])

    @property
    def upstream_calls(self) -> list[dict[str, Any]]:
        return list(self.data["upstream_calls"])

    @property
    def exports(self) -> list[dict[str, Any]]:
        return list(self.data["exports"])

    def spans(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(scope, span) of every recorded span, as OTLP/JSON."""
        for export in self.exports:
            if export["signal"] != "traces":
                continue
            for resource_spans in export["body"]["resourceSpans"]:
                for scope_spans in resource_spans["scopeSpans"]:
                    for span in scope_spans["spans"]:
                        yield scope_spans.get("scope", {}), span

    def span_count(self) -> int:
        return sum(1 for _ in self.spans())


@cache
def _load(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text(encoding="utf-8")


def fixture(name: str) -> Fixture:
    return Fixture(name, json.loads(_load(name)))


def fixture_names() -> list[str]:
    return sorted(str(path.relative_to(FIXTURES).with_suffix(""))
                  for path in FIXTURES.glob("*/*.json"))


def replay(collector: RunningCollector, recorded: Fixture,
           transport: Transport = "http") -> None:
    """Send every recorded export, in order; each must be accepted in full."""
    channel = (grpc.insecure_channel(collector.grpc_endpoint) if transport == "grpc"
               else None)
    try:
        for export in recorded.exports:
            body = json.dumps(export["body"]).encode()
            signal = export["signal"]
            if channel is None:
                status, _, answer = post(f"{collector.http_url}/v1/{signal}", body, JSON)
                assert status == 200, (signal, status, answer)
                assert b"rejected" not in answer, answer
            elif signal == "traces":
                trace_service_pb2_grpc.TraceServiceStub(channel).Export(
                    otlp_json.parse_traces(body), timeout=10)
            else:
                logs_service_pb2_grpc.LogsServiceStub(channel).Export(
                    otlp_json.parse_logs(body), timeout=10)
    finally:
        if channel is not None:
            channel.close()
