"""Per-call cost of the tenancy guard on the request path (micro-benchmark).

Measures, on this machine, with the real objects the proxy uses:

* tenant resolution alone (``TenantResolver.resolve``): from the header, and from an API
  key (HMAC-SHA256);
* ``TenancyGuard.check`` with the in-memory backend: resolution + requests/s and tokens/min
  buckets + a daily hard budget, awaited on an asyncio loop as the proxy does;
* the same check against a real ``redis-server`` on loopback (one Lua script round trip).

Each figure is the median of ``--repeats`` batches (per-call time = batch time / batch
size) for the in-process ones, and the median of individually timed calls for Redis.
Run: ``.venv/bin/python bench/tenancy_guard.py`` (needs ``redis-server`` for the last row).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tornado.httputil import HTTPHeaders

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402

from llmtrace_otel.config import load_settings  # noqa: E402
from llmtrace_otel.guards import CallInfo, CallResult  # noqa: E402
from llmtrace_otel.providers.types import LLMResponse, Usage  # noqa: E402
from llmtrace_otel.proxy.routing import Router  # noqa: E402
from llmtrace_otel.tenancy.budgets import BudgetTracker  # noqa: E402
from llmtrace_otel.tenancy.guard import TenancyGuard  # noqa: E402
from llmtrace_otel.tenancy.identity import TenantResolver  # noqa: E402
from llmtrace_otel.tenancy.metrics import TenancyInstruments  # noqa: E402
from llmtrace_otel.tenancy.policy import PolicyBook  # noqa: E402
from llmtrace_otel.tenancy.state import MemoryBackend, StateBackend  # noqa: E402
from llmtrace_otel.wiring import default_policy  # noqa: E402
from llmtrace_processors.labels import BoundedLabels  # noqa: E402

BODY = json.dumps({"model": "gpt-4o-mini", "max_tokens": 256,
                   "messages": [{"role": "user", "content": "Hello"}]}).encode()


def _call(settings_router: Router, headers: HTTPHeaders) -> CallInfo:
    route = settings_router.route("POST", "/v1/chat/completions", headers)
    assert route.adapter is not None
    return CallInfo("POST", "/v1/chat/completions", headers, route.adapter.api, route.provider,
                    route.adapter.parse_request(BODY))


def _guard(backend: StateBackend, *, limits: bool = True) -> TenancyGuard:
    settings = load_settings(env={}, overrides={
        "requests_per_s": 1e6, "request_burst": 1e9, "tokens_per_min": 1e12,
        "budget_daily_hard_usd": 1e9} if limits else {})
    book = PolicyBook(default_policy(settings), settings.tenants)
    instruments = TenancyInstruments(MeterProvider().get_meter("bench"), BoundedLabels(100))
    budgets = BudgetTracker(book, backend, key_prefix="bench:", instruments=instruments) \
        if limits else None
    return TenancyGuard(TenantResolver("default", "secret"), book, backend, instruments,
                        key_prefix="bench:", budgets=budgets)


def _batches(fn, batch: int, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn(batch)
        times.append((time.perf_counter_ns() - start) / batch)
    return statistics.median(times) / 1000  # µs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--redis-calls", type=int, default=5_000)
    options = parser.parse_args()
    settings = load_settings(env={})
    router = Router(settings.upstream_url, settings.anthropic_upstream_url)
    header_call = HTTPHeaders({"X-LLMTrace-Tenant-ID": "team-a", "Authorization": "Bearer sk"})
    key_call = HTTPHeaders({"Authorization": "Bearer sk-live-0123456789abcdef"})
    resolver = TenantResolver("default", "secret")
    rows: list[tuple[str, float]] = []

    def resolve(headers: HTTPHeaders):  # type: ignore[no-untyped-def]
        def run(n: int) -> None:
            for _ in range(n):
                resolver.resolve(headers)
        return run

    rows.append(("tenant resolution, X-LLMTrace-Tenant-ID header",
                 _batches(resolve(header_call), options.batch, options.repeats)))
    rows.append(("tenant resolution, API key (HMAC-SHA256)",
                 _batches(resolve(key_call), options.batch, options.repeats)))

    loop = asyncio.new_event_loop()
    call = _call(router, key_call)
    plain = _guard(MemoryBackend(), limits=False)
    guard = _guard(MemoryBackend())

    async def plain_checks(n: int) -> None:
        for _ in range(n):
            await plain.check(call)

    async def checks(n: int) -> None:
        for _ in range(n):
            verdict = await guard.check(call)
            assert verdict is not None and verdict.reject is None

    rows.append(("guard check, no limits configured (the default: resolution + attributes)",
                 _batches(lambda n: loop.run_until_complete(plain_checks(n)), options.batch,
                          options.repeats)))

    rows.append(("guard check, memory backend (resolve + 2 buckets + daily budget)",
                 _batches(lambda n: loop.run_until_complete(checks(n)), options.batch,
                          options.repeats)))
    result = CallResult(200, LLMResponse(usage=Usage(input_tokens=12, output_tokens=6)), None)

    def completions(n: int) -> None:
        for _ in range(n):
            plain.on_complete(call, result)

    rows.append(("on_complete, no limits (per-tenant request and token counters)",
                 _batches(completions, options.batch, options.repeats)))

    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not installed: Redis row skipped", file=sys.stderr)
    else:
        from llmtrace_otel.tenancy.redis_state import RedisBackend

        port = _free_port()
        with tempfile.TemporaryDirectory() as workdir:
            server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                       "--dir", workdir, "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL)
            try:
                backend = RedisBackend(f"redis://127.0.0.1:{port}/0")
                redis_guard = _guard(backend)

                async def timed(n: int) -> list[float]:
                    deadline = time.monotonic() + 10
                    while True:
                        try:
                            await backend.ping()
                            break
                        except Exception:
                            if time.monotonic() > deadline:
                                raise
                            backend._down_until = 0.0
                            await asyncio.sleep(0.05)
                    for _ in range(200):  # warm-up: connection, script cache
                        await redis_guard.check(call)
                    samples = []
                    for _ in range(n):
                        start = time.perf_counter_ns()
                        verdict = await redis_guard.check(call)
                        samples.append((time.perf_counter_ns() - start) / 1000)
                        assert verdict is not None and verdict.reject is None
                    await backend.aclose()
                    return samples

                async def pings(n: int) -> list[float]:
                    client = backend._connect()
                    out = []
                    for _ in range(n):
                        start = time.perf_counter_ns()
                        await client.ping()
                        out.append((time.perf_counter_ns() - start) / 1000)
                    return out

                samples = loop.run_until_complete(timed(options.redis_calls))
                backend._client = None
                reference = loop.run_until_complete(pings(options.redis_calls))
                loop.run_until_complete(backend.aclose())
                rows.append(("guard check, Redis backend (one Lua round trip, loopback)",
                             statistics.median(samples)))
                rows.append(("  ... p99", sorted(samples)[int(len(samples) * 0.99)]))
                rows.append(("reference: redis.asyncio PING round trip, same client settings",
                             statistics.median(reference)))
            finally:
                server.terminate()
                server.wait(10)
    loop.close()
    print("| measurement | per call (µs, median) |")
    print("|---|---|")
    for label, micros in rows:
        print(f"| {label} | {micros:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
