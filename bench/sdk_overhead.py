"""Per-call overhead of the SDK instrumentation: instrumented vs not, in one process.

The fake upstream of the tests (tests/support/fake_upstream.py) runs in a child process, so
its Tornado loop does not share the client's GIL. The client process times sequential calls
with ``time.perf_counter_ns`` in four arms, interleaved in blocks (off, standalone,
attached, off-again, ... in a rotating order) so drift of the machine hits every arm alike:

- ``off``: not instrumented;
- ``standalone``: ``LLMTraceInstrumentor().instrument()`` with no application providers:
  our pipeline (analysis queue, cost, SQLite exporter to a temporary file);
- ``attached``: instrumented on an application ``TracerProvider`` (BatchSpanProcessor to an
  exporter that discards) and ``MeterProvider`` (no reader).

Workloads: the real ``openai`` SDK (chat, non-streaming; chat, streamed and read to the end),
a bare ``httpx2.Client.post`` of the same chat request, and that post answered by an
in-memory ``httpx2.MockTransport`` (no network, no upstream: the instrumentation's own CPU
cost on the calling thread). Each block re-instruments (not
timed) and warms up. The overhead is the median of the arm minus the median of ``off``.

    .venv/bin/python bench/sdk_overhead.py [--calls 1500] [--block 100] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
import openai  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from llmtrace_otel.config import load_settings  # noqa: E402
from llmtrace_otel.sdk import LLMTraceInstrumentor  # noqa: E402
from tests.support.fake_upstream import chat_completion  # noqa: E402

ARMS = ("off", "standalone", "attached")
MESSAGES = [{"role": "user", "content": "Say hello."}]
BODY = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
_UPSTREAM = (
    "import sys\n"
    "from tests.support.fake_upstream import FakeUpstream\n"
    "with FakeUpstream() as up:\n"
    "    print(up.url, flush=True)\n"
    "    sys.stdin.read()\n"
)


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Arm:
    """One instrumentation set-up, turned on and off per block."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self._workdir = workdir
        self._app: TracerProvider | None = None
        self._meters: MeterProvider | None = None
        self._blocks = 0

    def __enter__(self) -> Arm:
        if self.name == "off":
            return self
        self._blocks += 1
        settings = load_settings(env={}, overrides={
            "sqlite_path": str(self._workdir / f"{self.name}-{self._blocks}.db")})
        kwargs: dict[str, Any] = {"settings": settings}
        if self.name == "attached":
            self._app = TracerProvider(shutdown_on_exit=False)
            self._app.add_span_processor(BatchSpanProcessor(_Discard()))
            self._meters = MeterProvider(shutdown_on_exit=False)
            kwargs.update(tracer_provider=self._app, meter_provider=self._meters)
        LLMTraceInstrumentor().instrument(**kwargs)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.name == "off":
            return
        LLMTraceInstrumentor().uninstrument()
        if self._app is not None and self._meters is not None:
            self._app.shutdown()
            self._meters.shutdown()
            self._app = self._meters = None


def workloads(url: str) -> dict[str, Callable[[], object]]:
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-bench", max_retries=0)
    raw = httpx2.Client(base_url=url)
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    def chat() -> object:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    def stream() -> object:
        return sum(1 for _ in client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True))

    def bare() -> object:
        return raw.post("/v1/chat/completions", content=BODY, headers=headers).content

    # No network at all: what the instrumentation costs the calling thread in CPU.
    canned = json.dumps(chat_completion({"model": "gpt-4o-mini"}, "ok")).encode()
    local = httpx2.Client(base_url="https://api.openai.com", transport=httpx2.MockTransport(
        lambda request: httpx2.Response(200, content=canned,
                                        headers={"content-type": "application/json"})))

    def in_memory() -> object:
        return local.post("/v1/chat/completions", content=BODY, headers=headers).content

    return {"openai chat": chat, "openai chat, streamed": stream, "httpx2 POST chat": bare,
            "httpx2 POST chat, in-memory transport": in_memory}


def time_calls(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def measure(url: str, calls: int, block: int, warmup: int) -> dict[str, dict[str, list[float]]]:
    work = workloads(url)
    samples: dict[str, dict[str, list[float]]] = {w: {a: [] for a in ARMS} for w in work}
    rounds = max(1, calls // block)
    with tempfile.TemporaryDirectory(prefix="llmtrace-sdk-bench-") as tmp:
        arms = [Arm(name, Path(tmp)) for name in ARMS]
        for index in range(rounds):
            shift = index % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                with arm:
                    for name, call in work.items():
                        time_calls(call, warmup)
                        samples[name][arm.name].extend(time_calls(call, block))
            print(f"  round {index + 1}/{rounds}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return samples


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(samples: dict[str, dict[str, list[float]]]) -> tuple[str, dict[str, Any]]:
    lines = [
        "| workload | off median (µs) | standalone median | attached median "
        "| overhead standalone (µs) | overhead attached (µs) | p90 off / standalone / attached |",
        "|---|---|---|---|---|---|---|",
    ]
    data: dict[str, Any] = {}
    for name, arms in samples.items():
        med = {arm: statistics.median(values) for arm, values in arms.items()}
        p90 = {arm: _p(values, 0.9) for arm, values in arms.items()}
        data[name] = {"median_us": med, "p90_us": p90, "n": len(arms["off"]),
                      "overhead_us": {a: med[a] - med["off"] for a in ARMS[1:]}}
        lines.append(
            f"| {name} | {med['off']:.0f} | {med['standalone']:.0f} | {med['attached']:.0f} "
            f"| {med['standalone'] - med['off']:+.0f} | {med['attached'] - med['off']:+.0f} "
            f"| {p90['off']:.0f} / {p90['standalone']:.0f} / {p90['attached']:.0f} |")
    return "\n".join(lines), data


def breakdown(repeat: int = 3000) -> str:
    """Medians of the parts of one non-streamed call's telemetry, called directly."""
    from opentelemetry.propagate import inject

    from llmtrace_otel.providers.types import Usage
    from llmtrace_otel.sdk.attach import build_sdk_telemetry
    from llmtrace_otel.sdk.call import ObservedCall
    from llmtrace_otel.sdk.instrumentor import sdk_parts
    from llmtrace_otel.sdk.matching import CallMatcher, RequestLine
    from llmtrace_otel.telemetry.instruments import CallOutcome

    with tempfile.TemporaryDirectory(prefix="llmtrace-sdk-parts-") as tmp:
        telemetry = build_sdk_telemetry(*sdk_parts(load_settings(env={}, overrides={
            "sqlite_path": str(Path(tmp) / "parts.db")})))
        matcher = CallMatcher()
        line = RequestLine("POST", "https", "api.openai.com", None, "/v1/chat/completions")
        adapter = matcher.adapter_for(line, {})
        assert adapter is not None
        target = matcher.target(adapter, line, BODY)
        assert target is not None
        answer = json.dumps(chat_completion({"model": "gpt-4o-mini"}, "ok")).encode()
        outcome = CallOutcome("openai", "chat", "gpt-4o-mini", "gpt-4o-mini-2024-07-18",
                              "api.openai.com", 443, 200, 0.1, usage=Usage(12, 6))

        def whole() -> None:
            call = ObservedCall(telemetry, target, "POST")
            call.inject(httpx2.Headers())
            call.complete(200, answer)

        def span_only() -> None:
            ObservedCall(telemetry, target, "POST").recorder.span.end()

        parts: list[tuple[str, Callable[[], object]]] = [
            ("recognise + parse the request", lambda: matcher.target(adapter, line, BODY)),
            ("parse the response", lambda: adapter.parse_response(answer)),
            ("span start + end (no attributes of the response)", span_only),
            ("trace context into the headers", lambda: inject(httpx2.Headers())),
            ("metrics of one call", lambda: telemetry.instruments.record(outcome)),
            ("the whole call side (start, inject, parse, end, metrics)", whole),
        ]
        rows = ["| part | median (µs) |", "|---|---|"]
        for name, part in parts:
            rows.append(f"| {name} | {statistics.median(time_calls(part, repeat)[200:]):.1f} |")
        telemetry.shutdown()
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1500, help="timed calls per arm")
    parser.add_argument("--block", type=int, default=100, help="calls per arm per block")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per block")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: 1-minute load average is {load:.2f}; numbers will be noisy",
              file=sys.stderr)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMTRACE_"))}
    env["PYTHONPATH"] = str(ROOT)
    upstream = subprocess.Popen([sys.executable, "-c", _UPSTREAM], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert upstream.stdout is not None
        url = upstream.stdout.readline().strip()
        if not url.startswith("http://"):
            print("the fake upstream did not start", file=sys.stderr)
            return 1
        samples = measure(url, args.calls, args.block, args.warmup)
    finally:
        if upstream.stdin is not None:
            upstream.stdin.close()
        upstream.wait(10)
    table, data = report(samples)
    print(table)
    print()
    print(breakdown())
    output = args.output or ROOT / "bench" / "results" / f"sdk-overhead-{int(time.time())}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"load_average_1m": load, "calls_per_arm": args.calls,
                                  "block": args.block, "results": data}, indent=2))
    print(f"raw results: {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
