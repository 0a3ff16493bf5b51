"""``collect --workers 2`` keeps each sender's resource: spans relayed through a worker are
stored under the sender's ``service.name``, as ``collect`` in one process stores them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.receiver.test_collect_cli import free_port, many_spans, wait_healthy


def test_spans_relayed_by_a_worker_keep_their_senders_resource(tmp_path: Path) -> None:
    ops, http_port = free_port(), free_port()
    db = tmp_path / "collected.db"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LLMTRACE_", "OTEL_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmtrace_otel", "collect", "--workers", "2",
         "--port", str(ops), "--sqlite-path", str(db), "--service-name", "the-collector",
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
        sender = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
        assert sender.export(many_spans(20)) is SpanExportResult.SUCCESS  # from "batch-app"
        sender.shutdown()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read().decode()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT service_name, resource FROM spans").fetchall()
    assert len(rows) == 20
    assert {service for service, _ in rows} == {"batch-app"}
    assert all(json.loads(resource)["service.name"] == "batch-app" for _, resource in rows)
