"""Metrics over OTLP: forwarded unchanged when configured, refused clearly when not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GRPCMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HTTPMetricExporter,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc import (
    MetricsServiceStub,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult, MetricsData
from opentelemetry.sdk.resources import Resource

from tests.receiver.harness import RunningCollector, running_collector
from tests.receiver.helpers import JSON, PROTOBUF, post
from tests.support.otlp_sink import OTLPSink


def app_metrics(name: str) -> MetricsData:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": "shop"}),
                             metric_readers=[reader])
    provider.get_meter("shop.orders").create_counter(name, unit="{order}").add(
        3, {"region": "eu"})
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


@pytest.fixture(scope="module")
def sink() -> Iterator[OTLPSink]:
    with OTLPSink() as running:
        yield running


@pytest.fixture(scope="module")
def forwarding(sink: OTLPSink, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[RunningCollector]:
    with running_collector(tmp_path_factory.mktemp("fwd"), sqlite_enabled=False,
                           receiver_forward_metrics=True, otlp_protocol="grpc",
                           otlp_endpoint=f"http://{sink.grpc_endpoint}") as running:
        yield running


def test_not_configured_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with running_collector(tmp_path, sqlite_enabled=False) as collector:
        request = encode_metrics(app_metrics("orders")).SerializeToString()
        status, _, body = post(f"{collector.http_url}/v1/metrics", request)
        assert status == 404
        assert "receiver.forward_metrics=true" in Status.FromString(body).message
        with grpc.insecure_channel(collector.grpc_endpoint) as channel, pytest.raises(
                grpc.RpcError) as caught:
            MetricsServiceStub(channel).Export(
                ExportMetricsServiceRequest.FromString(request), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
        assert "does not accept metrics" in caught.value.details()  # type: ignore[attr-defined]
        exporter = GRPCMetricExporter(endpoint=collector.grpc_endpoint, insecure=True)
        assert exporter.export(app_metrics("orders")) is MetricExportResult.FAILURE
        exporter.shutdown()


def test_forwarded_from_grpc_http_and_json_senders(forwarding: RunningCollector,
                                                   sink: OTLPSink) -> None:
    grpc_exporter = GRPCMetricExporter(endpoint=forwarding.grpc_endpoint, insecure=True)
    assert grpc_exporter.export(app_metrics("orders.grpc")) is MetricExportResult.SUCCESS
    http_exporter = HTTPMetricExporter(endpoint=f"{forwarding.http_url}/v1/metrics")
    assert http_exporter.export(app_metrics("orders.http")) is MetricExportResult.SUCCESS
    request = encode_metrics(app_metrics("orders.json"))
    from google.protobuf import json_format

    status, headers, body = post(f"{forwarding.http_url}/v1/metrics",
                                 json_format.MessageToJson(request).encode(), JSON)
    assert status == 200 and headers["content-type"] == JSON and json.loads(body) == {}
    sink.wait_for_metric_names({"orders.grpc", "orders.http", "orders.json"})
    received = {metric.name: metric for metric in sink.metrics()}
    for name in ("orders.grpc", "orders.http", "orders.json"):
        metric = received[name]
        assert metric.transport == "grpc"  # our forwarder speaks the pipeline's protocol
        assert metric.resource["service.name"] == "shop"
        assert metric.scope_name == "shop.orders"
        assert metric.unit == "{order}"
        [point] = metric.data_points
        assert point.value == 3 and point.attributes == {"region": "eu"}
    grpc_exporter.shutdown()
    http_exporter.shutdown()


def test_downstream_failure_reaches_the_sender(forwarding: RunningCollector,
                                               sink: OTLPSink) -> None:
    request = encode_metrics(app_metrics("orders.fail")).SerializeToString()
    sink.fail_next(1, grpc.StatusCode.UNAVAILABLE, signal="metrics")
    status, headers, body = post(f"{forwarding.http_url}/v1/metrics", request, PROTOBUF)
    assert status == 503 and headers["retry-after"] == "1"
    assert "forwarding metrics failed" in Status.FromString(body).message
    sink.fail_next(1, grpc.StatusCode.INVALID_ARGUMENT, signal="metrics")
    with grpc.insecure_channel(forwarding.grpc_endpoint) as channel, pytest.raises(
            grpc.RpcError) as caught:
        MetricsServiceStub(channel).Export(ExportMetricsServiceRequest.FromString(request),
                                           timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]


def test_forward_over_http_protobuf(sink: OTLPSink, tmp_path: Path) -> None:
    with running_collector(tmp_path, sqlite_enabled=False, receiver_forward_metrics=True,
                           otlp_protocol="http/protobuf", otlp_endpoint=sink.http_endpoint
                           ) as collector:
        exporter = GRPCMetricExporter(endpoint=collector.grpc_endpoint, insecure=True)
        assert exporter.export(app_metrics("orders.via_http")) is MetricExportResult.SUCCESS
        exporter.shutdown()
    sink.wait_for_metric_names({"orders.via_http"})
    assert next(m for m in sink.metrics() if m.name == "orders.via_http").transport == "http"


def test_forward_needs_an_endpoint(tmp_path: Path) -> None:
    from llmtrace_otel.config import ConfigError

    needs = r"receiver.forward_metrics \(flag --receiver-forward-metrics\): needs an OTLP endpoint"
    with pytest.raises(ConfigError, match=needs), running_collector(
            tmp_path, receiver_forward_metrics=True):
        pass
