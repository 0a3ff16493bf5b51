"""Collector-mode throughput: GenAI spans/s that ``llmtrace-otel collect`` sustains.

One run: start ``llmtrace-otel collect`` as a subprocess (defaults: SQLite store on, cost
processor and content policy on; ``--forward`` adds the pipeline's OTLP exporter, pointed
at an OTLP sink in this process), warm it up, then send ``--requests`` export requests of
``--batch`` realistic GenAI spans each from ``--senders`` threads over gRPC or HTTP
(protobuf, pre-encoded so the load generator costs little), retrying on
RESOURCE_EXHAUSTED / 429 after the server's hint, as OTLP exporters do.

The clock starts at the first request and stops when every span is in the SQLite file
(``SELECT COUNT(*) FROM spans``): received, normalised, analysed and stored, not merely
accepted. The time at which the last request was accepted is reported too. Spans are a
mix of the four dialects the receiver normalises (latest semconv, the official openai-v2
instrumentation with message events, OpenLLMetry, OpenInference), a quarter each.

    .venv/bin/python bench/receiver_throughput.py [--transport grpc|http|both] [--runs 5]
        [--capture-content] [--forward] [--requests 300] [--batch 100] [--senders 4]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from genai_texts import Texts  # noqa: E402

from tests.support.procfs import child_pids  # noqa: E402

_ids = itertools.count(1)


def _v(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        out = AnyValue()
        out.array_value.values.extend(_v(item) for item in value)
        return out
    return AnyValue(string_value=str(value))


def _kvs(attributes: dict[str, object]) -> list[KeyValue]:
    return [KeyValue(key=key, value=_v(value)) for key, value in attributes.items()]


def _parts(role: str, text: str, **extra: object) -> dict[str, object]:
    return {"role": role, "parts": [{"type": "text", "content": text}], **extra}


def _latest(i: int, texts: Texts | None) -> tuple[dict[str, object], list[trace_pb2.Span.Event]]:
    attributes: dict[str, object] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 512, "server.address": "api.openai.com",
        "server.port": 443, "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{i}", "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 800 + i % 400, "gen_ai.usage.output_tokens": 120,
    }
    if texts is None:  # the original tiny corpus
        attributes["gen_ai.input.messages"] = json.dumps([_parts(
            "user", f"Summarise ticket {i} for the on-call engineer.")])
        attributes["gen_ai.output.messages"] = json.dumps([_parts(
            "assistant", "Disk full on db-3.", finish_reason="stop")])
        return attributes, []
    attributes["gen_ai.system_instructions"] = json.dumps(
        [{"type": "text", "content": texts.system(i)}])
    attributes["gen_ai.input.messages"] = json.dumps([_parts("user", texts.user(i))])
    attributes["gen_ai.output.messages"] = json.dumps([_parts(
        "assistant", texts.output(i), finish_reason="stop")])
    return attributes, []


def _openai_v2(i: int, texts: Texts | None
               ) -> tuple[dict[str, object], list[trace_pb2.Span.Event]]:
    attributes: dict[str, object] = {
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.openai.request.seed": 7,
        "server.address": "api.openai.com", "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.id": f"chatcmpl-v2-{i}", "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.openai.response.service_tier": "default",
        "gen_ai.usage.input_tokens": 1500, "gen_ai.usage.output_tokens": 90,
    }
    system = texts.system(i) if texts else "You are a careful assistant."
    user = texts.user(i) if texts else f"What changed in release {i}?"
    choice: dict[str, object] = {"gen_ai.system": "openai", "index": 0, "finish_reason": "stop"}
    if texts:
        choice["message"] = json.dumps({"role": "assistant", "content": texts.output(i)})
    events = [
        trace_pb2.Span.Event(time_unix_nano=1, name="gen_ai.system.message",
                             attributes=_kvs({"gen_ai.system": "openai", "content": system})),
        trace_pb2.Span.Event(time_unix_nano=2, name="gen_ai.user.message",
                             attributes=_kvs({"gen_ai.system": "openai", "content": user})),
        trace_pb2.Span.Event(time_unix_nano=3, name="gen_ai.choice", attributes=_kvs(choice)),
    ]
    return attributes, events


def _openllmetry(i: int, texts: Texts | None
                 ) -> tuple[dict[str, object], list[trace_pb2.Span.Event]]:
    attributes: dict[str, object] = {
        "llm.request.type": "chat", "gen_ai.system": "Anthropic",
        "gen_ai.request.model": "claude-3-5-sonnet-20241022", "llm.is_streaming": False,
        "gen_ai.usage.prompt_tokens": 300, "gen_ai.usage.completion_tokens": 40,
        "llm.usage.total_tokens": 340,
    }
    if texts is None:
        attributes.update({
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": f"Draft reply #{i}",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Dear customer",
        })
    else:
        attributes.update({
            "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": texts.system(i),
            "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": texts.user(i),
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": texts.output(i),
        })
    attributes["gen_ai.completion.0.finish_reason"] = "end_turn"
    return attributes, []


def _openinference(i: int, texts: Texts | None
                   ) -> tuple[dict[str, object], list[trace_pb2.Span.Event]]:
    attributes: dict[str, object] = {
        "openinference.span.kind": "LLM", "llm.system": "openai", "llm.provider": "openai",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}',
        "llm.token_count.prompt": 640, "llm.token_count.completion": 3,
        "llm.token_count.total": 643,
    }
    if texts is None:
        messages = [("user", f"Classify document {i}")]
        answer = "invoice"
    else:
        messages = [("system", texts.system(i)), ("user", texts.user(i))]
        answer = texts.output(i)
    for index, (role, text) in enumerate(messages):
        attributes[f"llm.input_messages.{index}.message.role"] = role
        attributes[f"llm.input_messages.{index}.message.content"] = text
    attributes["llm.output_messages.0.message.role"] = "assistant"
    attributes["llm.output_messages.0.message.content"] = answer
    return attributes, []


_DIALECTS = (_latest, _openai_v2, _openllmetry, _openinference)


def build_request(batch: int, texts: Texts | None = None) -> bytes:
    """One serialised export request of ``batch`` spans (``texts`` None: the tiny corpus)."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(_kvs({"service.name": "bench-app",
                                                    "deployment.environment.name": "bench"}))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench.genai"
    now = time.time_ns()
    for index in range(batch):
        n = next(_ids)
        attributes, events = _DIALECTS[index % 4](n, texts)
        scope.spans.append(trace_pb2.Span(
            trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"),
            name="chat", kind=trace_pb2.Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=now, end_time_unix_nano=now + 900_000_000,
            attributes=_kvs(attributes), events=events))
    return request.SerializeToString()


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds of ``pid`` itself and of its child processes (detector workers)."""
    return _cpu_s(pid), sum(_cpu_s(child) for child in child_pids(pid))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def count_spans(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


class Collect:
    def __init__(self, tmp: Path, forward_to: str | None, capture: bool,
                 extra: list[str] | None = None) -> None:
        self.ops, self.grpc, self.http = free_port(), free_port(), free_port()
        self.db = tmp / "bench.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTRACE_", "OTEL_"))}
        command = [str(ROOT / ".venv" / "bin" / "llmtrace-otel"), "collect",
                   "--port", str(self.ops), "--sqlite-path", str(self.db),
                   "--receiver-grpc-endpoint", f"127.0.0.1:{self.grpc}",
                   "--receiver-http-endpoint", f"127.0.0.1:{self.http}",
                   "--log-level", "WARNING"]
        if forward_to:
            command += ["--otlp-endpoint", forward_to, "--otlp-protocol", "grpc"]
        if capture:  # content is then translated to semconv JSON and stored, not only removed
            command += ["--capture-content"]
        command += extra or []
        self.log = (tmp / "collect.log").open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.ops}/health", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("llmtrace-otel collect did not become healthy")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.log.close()


def _grpc_sender(target: str, bodies: list[bytes], stats: dict[str, int]) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = TraceServiceStub(channel)
        for body in bodies:
            request = ExportTraceServiceRequest.FromString(body)
            while True:
                try:
                    stub.Export(request, timeout=30)
                    break
                except grpc.RpcError as error:
                    if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
                        raise
                    stats["refused"] += 1
                    time.sleep(0.05)


def _http_sender(port: int, bodies: list[bytes], stats: dict[str, int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-protobuf"}
    for body in bodies:
        while True:
            connection.request("POST", "/v1/traces", body, headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                break
            if response.status != 429:
                raise RuntimeError(f"HTTP {response.status}")
            stats["refused"] += 1
            time.sleep(0.05)
    connection.close()


def one_run(transport: str, args: argparse.Namespace, forward_to: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--security-workers", str(args.security_workers)] if args.security_workers else []
        collect = Collect(Path(tmp), forward_to, args.capture_content, extra)
        try:
            texts = None if args.corpus == "tiny" else Texts(args.corpus, unique=args.unique)
            warm = [build_request(args.batch, texts) for _ in range(10)]
            send = _grpc_sender if transport == "grpc" else _http_sender
            target: object = f"127.0.0.1:{collect.grpc}" if transport == "grpc" else collect.http
            send(target, warm, {"refused": 0})  # type: ignore[arg-type]
            while count_spans(collect.db) < 10 * args.batch:
                time.sleep(0.05)
            bodies = [build_request(args.batch, texts) for _ in range(args.requests)]
            shares = [bodies[i::args.senders] for i in range(args.senders)]
            stats = {"refused": 0}
            threads = [threading.Thread(target=send, args=(target, share, stats))
                       for share in shares]
            expected = (10 + args.requests) * args.batch
            main0, workers0 = cpu_split(collect.process.pid)
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            accepted_s = time.perf_counter() - start
            stored, last_change, previous = 0, time.perf_counter(), -1
            while stored < expected and time.perf_counter() - last_change < 5:
                stored = count_spans(collect.db)
                if stored != previous:
                    previous, last_change = stored, time.perf_counter()
                time.sleep(0.02)
            done_s = last_change - start
            main1, workers1 = cpu_split(collect.process.pid)
        finally:
            collect.stop()
    spans = args.requests * args.batch
    return {"transport": transport, "spans": spans, "stored": stored - 10 * args.batch,
            "accepted_s": accepted_s, "done_s": done_s, "spans_per_s": spans / done_s,
            "accept_rate": spans / accepted_s, "refused": stats["refused"],
            # CPU per 1,000 spans: load-independent, unlike the rates
            "main_ms": 1e6 * (main1 - main0) / spans,
            "workers_ms": 1e6 * (workers1 - workers0) / spans}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=["grpc", "http", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--capture-content", action="store_true",
                        help="run collect with telemetry.capture_content on")
    parser.add_argument("--corpus", choices=["realistic", "tiny"], default="realistic",
                        help="message texts: realistic lengths and mix (bench/genai_texts.py) "
                             "or the original one-line texts")
    parser.add_argument("--unique", action="store_true",
                        help="make every text unique (no findings-cache hits)")
    parser.add_argument("--security-workers", type=int, default=0,
                        help="run collect with security.workers = N (detector processes)")
    parser.add_argument("--forward", action="store_true",
                        help="also export over OTLP to a sink in this process")
    args = parser.parse_args()
    sink = None
    forward_to = None
    if args.forward:
        from tests.support.otlp_sink import OTLPSink

        sink = OTLPSink().start()
        forward_to = f"http://{sink.grpc_endpoint}"
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: 1-minute load average is {load:.2f}; numbers will be noisy")
    transports = ["grpc", "http"] if args.transport == "both" else [args.transport]
    results: dict[str, list[dict]] = {t: [] for t in transports}
    for run in range(args.runs):
        for transport in transports:
            result = one_run(transport, args, forward_to)
            results[transport].append(result)
            result["load"] = os.getloadavg()[0]
            print(f"run {run + 1} {transport}: {result['spans_per_s']:,.0f} spans/s end to end "
                  f"({result['stored']}/{result['spans']} stored, accepted at "
                  f"{result['accept_rate']:,.0f}/s, {result['refused']} refusals, "
                  f"load {result['load']:.2f}; CPU ms per 1,000 spans: collect "
                  f"{result['main_ms']:,.0f}, detector workers {result['workers_ms']:,.0f})",
                  flush=True)
    if sink is not None:
        sink.stop()
    print("\n| transport | median spans/s (stored) | min-max | median accept rate | "
          "stored/sent | refusals (median) | CPU ms/1k spans (collect + workers) | "
          "CPU-bound ceiling, 2 free cores |\n|---|---|---|---|---|---|---|---|")
    for transport, rows in results.items():
        rates = [row["spans_per_s"] for row in rows]
        main_ms = statistics.median(r["main_ms"] for r in rows)
        workers_ms = statistics.median(r["workers_ms"] for r in rows)
        # one process cannot use much more than one core (GIL), nor can each worker; all
        # of them share the two cores (the load generator's own CPU is left out)
        ceiling = min(1e6 / main_ms, 2e6 / (main_ms + workers_ms))
        if workers_ms:
            ceiling = min(ceiling, args.security_workers * 1e6 / workers_ms)
        print(f"| {transport} | {statistics.median(rates):,.0f} | {min(rates):,.0f}-"
              f"{max(rates):,.0f} | {statistics.median(r['accept_rate'] for r in rows):,.0f} | "
              f"{sum(r['stored'] for r in rows)}/{sum(r['spans'] for r in rows)} | "
              f"{statistics.median(r['refused'] for r in rows):.0f} | {main_ms:,.0f} + "
              f"{workers_ms:,.0f} | {ceiling:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
