"""Helpers for the tenancy tests through the running proxy."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import openai
from prometheus_client.parser import text_string_to_metric_families

from llmtrace_otel.tenancy.guard import TenancyGuard
from tests.support.fake_upstream import SCENARIO_HEADER
from tests.support.proxy_harness import RunningProxy

MESSAGES = [{"role": "user", "content": "Hi"}]
#: 2030-06-12 12:00:00 UTC, a Wednesday (in the future: Redis expires keys on real time).
NOON = 1_907_496_000.0


@dataclass
class Clock:
    now: float = NOON

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def tenancy_guard(proxy: RunningProxy) -> TenancyGuard:
    guards = proxy.server.context.guards.guards
    return next(g for g in guards if isinstance(g, TenancyGuard))


def use_clock(proxy: RunningProxy, clock: Clock) -> TenancyGuard:
    guard = tenancy_guard(proxy)
    guard.clock = clock
    if guard.budgets is not None:
        guard.budgets.clock = clock
    return guard


def settle(proxy: RunningProxy, spans: int = 0) -> None:
    """Wait until ``spans`` spans were exported and their spend and token reconciliation
    were written (both happen after the client has its answer)."""
    proxy.spans(spans)
    guard = tenancy_guard(proxy)
    asyncio.run_coroutine_threadsafe(guard.drain(), proxy.loop).result(10)


def client(proxy: RunningProxy, *, tenant: str | None = None, agent: str | None = None,
           api_key: str = "sk-test", scenario: str = "ok") -> openai.OpenAI:
    headers = {SCENARIO_HEADER: scenario}
    if tenant is not None:
        headers["X-LLMTrace-Tenant-ID"] = tenant
    if agent is not None:
        headers["X-LLMTrace-Agent-ID"] = agent
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=api_key, max_retries=0,
                         timeout=10, default_headers=headers)


def chat(proxy: RunningProxy, **kwargs: Any) -> Any:
    max_tokens = kwargs.pop("max_tokens", None)
    extra = {"max_tokens": max_tokens} if max_tokens is not None else {}
    return client(proxy, **kwargs).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, **extra)


def metric(proxy: RunningProxy, name: str, **labels: str) -> float:
    """Value of one sample on /metrics (0 when absent)."""
    for family in text_string_to_metric_families(proxy.metrics_text()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
