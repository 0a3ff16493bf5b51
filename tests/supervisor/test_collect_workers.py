"""``collect --workers 2``: OTLP over gRPC and HTTP into two workers, one store, one /health.

Each sender's connection lands on one worker (``SO_REUSEPORT``); whichever it is, every
span is analysed and stored once by the telemetry process, with its sender's resource, and
SIGTERM right after the export drains both workers and the pipeline.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.receiver.test_collect_cli import free_port, many_spans, wait_healthy
from tests.support.procfs import child_pids, is_running


def test_two_collect_workers_store_every_span_once_and_stop_cleanly(tmp_path: Path) -> None:
    ops, grpc_port, http_port = free_port(), free_port(), free_port()
    db = tmp_path / "collected.db"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LLMTRACE_", "OTEL_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmtrace_otel", "collect", "--workers", "2",
         "--port", str(ops), "--sqlite-path", str(db),
         "--receiver-grpc-endpoint", f"127.0.0.1:{grpc_port}",
         "--receiver-http-endpoint", f"127.0.0.1:{http_port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        health = wait_healthy(f"http://127.0.0.1:{ops}", proc)
        deadline = time.monotonic() + 20
        while health["components"]["workers"]["connected"] < 2:
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
            health = wait_healthy(f"http://127.0.0.1:{ops}", proc)
        workers = child_pids(proc.pid)
        assert len(workers) == 2
        # several senders (each exporter is one connection): both transports, both workers
        for _ in range(3):
            grpc = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
            assert grpc.export(many_spans(300)) is SpanExportResult.SUCCESS
            grpc.shutdown()
            http = HTTPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
            assert http.export(many_spans(300)) is SpanExportResult.SUCCESS
            http.shutdown()
        proc.send_signal(signal.SIGTERM)  # right away: spans may still be queued
        assert proc.wait(90) == 0, proc.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not any(is_running(pid) for pid in workers)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT service_name, resource FROM spans").fetchall()
    assert len(rows) == 1800
    # relayed by a worker, the spans keep their sender's resource (not the collector's)
    assert {service for service, _ in rows} == {"batch-app"}
    assert all(json.loads(resource)["service.name"] == "batch-app" for _, resource in rows)
