"""``llmtrace-otel collect`` as a user runs it: spans in over OTLP, SIGTERM, all stored."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.receiver.helpers import post_json


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"collect exited early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("collect did not become healthy")


def many_spans(count: int) -> list:  # type: ignore[type-arg]
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "batch-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("app")
    for index in range(count):
        with tracer.start_as_current_span("chat gpt-4o-mini", attributes={
            "gen_ai.system": "openai", "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.prompt_tokens": 10 + index,
            "gen_ai.usage.completion_tokens": 5,
        }):
            pass
    return list(memory.get_finished_spans())


def test_collect_stores_every_accepted_span_across_sigterm(tmp_path: Path) -> None:
    ops, grpc_port, http_port = free_port(), free_port(), free_port()
    db = tmp_path / "collected.db"
    env = {**os.environ, "LLMTRACE_SQLITE_PATH": str(db), "LLMTRACE_LOGGING_FORMAT": "json",
           "LLMTRACE_RECEIVER_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmtrace_otel", "collect", "--port", str(ops),
         "--receiver-http-endpoint", f"127.0.0.1:{http_port}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        health = wait_healthy(f"http://127.0.0.1:{ops}", proc)
        assert health["status"] == "healthy"
        assert health["components"]["receiver_queue"]["capacity"] == 8192
        spans = many_spans(2000)
        exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        status, _, body = post_json(f"http://127.0.0.1:{http_port}/v1/traces",
                                    json.loads((Path(__file__).parent / "payloads" /
                                                "openinference.json").read_text()))
        assert (status, body) == (200, {})
        proc.send_signal(signal.SIGTERM)  # right away: spans are still queued
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any("OTLP/gRPC port" in line.get("message", "") for line in lines), stderr
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT COUNT(*) FROM spans").fetchone()
    assert stored == 2000 + 5
    listing = subprocess.run(
        [sys.executable, "-m", "llmtrace_otel", "traces", "--db", str(db), "--json",
         "--limit", "500", "--model", "gpt-4o-mini", "--since", "30d"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["items"]
    chats = [row for row in rows if row["name"] == "chat gpt-4o-mini"]
    assert len(chats) == 500  # one page of the 2,000 (the CLI pages at 500)
    assert {row["provider"] for row in chats} == {"openai"}  # normalised from gen_ai.system
    assert all(row["input_tokens"] >= 10 and row["cost_usd"] > 0 for row in chats)
