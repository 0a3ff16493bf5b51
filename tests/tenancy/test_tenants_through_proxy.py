"""Tenant identification and rate limits, through the running proxy with the real SDKs."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path

import anthropic
import openai
import pytest

from llmtrace_processors.attributes import (
    LLMTRACE_AGENT_ID,
    LLMTRACE_TENANT_ID,
    LLMTRACE_TENANT_SOURCE,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy
from tests.tenancy.support import MESSAGES, Clock, chat, client, metric, settle, use_clock


def test_tenant_from_header_key_or_default_on_spans_sqlite_and_never_upstream(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, tenant_key_secret="s3cret",
                       default_tenant="anonymous") as proxy:
        chat(proxy, tenant="team-a", agent="planner")
        chat(proxy, api_key="sk-live-abc")
        chat(proxy, api_key="sk-live-abc")
        client(proxy, api_key="sk-live-abc").models.list()  # not an LLM call: resolved too
        body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
        no_key = urllib.request.Request(f"{proxy.url}/v1/chat/completions", data=body,
                                        headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(no_key, timeout=10) as response:  # no key at all
            assert response.status == 200
        spans = proxy.spans(5)
    by_tenant = [(s.attributes or {}).get(LLMTRACE_TENANT_ID) for s in spans]
    sources = [(s.attributes or {}).get(LLMTRACE_TENANT_SOURCE) for s in spans]
    key_tenant = by_tenant[1]
    assert by_tenant[0] == "team-a" and (spans[0].attributes or {})[LLMTRACE_AGENT_ID] == "planner"
    assert key_tenant is not None and key_tenant.startswith("key-") and len(key_tenant) == 20
    assert by_tenant[2] == key_tenant == by_tenant[3]  # stable for the same key
    assert "sk-live-abc" not in key_tenant
    assert by_tenant[4] == "anonymous"
    assert sources == ["header", "api_key", "api_key", "api_key", "default"]
    # The X-LLMTrace-* headers never reach the upstream; the client's key does.
    first = upstream.requests[0]
    assert not any(name.startswith("x-llmtrace-") for name in first.headers)
    assert first.headers["authorization"] == "Bearer sk-test"
    # SQLite has the tenant and agent columns filled, and never the key.
    db = sqlite3.connect(tmp_path / "spans.db")
    rows = db.execute("SELECT tenant_id, agent_id, attributes FROM spans "
                      "ORDER BY start_time_ns").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("team-a", "planner"), (key_tenant, None),
                                            (key_tenant, None), (key_tenant, None),
                                            ("anonymous", None)]
    assert not any("sk-live-abc" in r[2] for r in rows)


def test_same_key_same_tenant_across_instances_only_with_a_secret(upstream: FakeUpstream,
                                                                  tmp_path: Path) -> None:
    ids = []
    for secret in ("s3cret", "s3cret", None):
        with running_proxy(upstream.url, tmp_path, tenant_key_secret=secret) as proxy:
            chat(proxy, api_key="sk-same")
            ids.append((proxy.only_span().attributes or {})[LLMTRACE_TENANT_ID])
    assert ids[0] == ids[1] != ids[2]


def test_invalid_tenant_header_is_a_clear_400(upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        with pytest.raises(openai.BadRequestError) as caught:
            chat(proxy, tenant="bad tenant id!")
        body = caught.value.body
        assert body["code"] == "invalid_tenant_id"  # type: ignore[index]
        assert "X-LLMTrace-Tenant-ID must be 1-128 characters" in body["message"]  # type: ignore[index]
        with pytest.raises(openai.BadRequestError):
            chat(proxy, tenant="ok", agent="x" * 200)
        proxy.spans(2)
    assert upstream.requests == []


def test_requests_per_second_429_with_headers_then_recovery(upstream: FakeUpstream,
                                                             tmp_path: Path) -> None:
    clock = Clock()
    with running_proxy(upstream.url, tmp_path, requests_per_s=1, request_burst=2) as proxy:
        use_clock(proxy, clock)
        first = chat(proxy, tenant="team-a")
        assert first.headers["x-ratelimit-limit"] == "2"
        assert first.headers["x-ratelimit-remaining"] == "1"
        assert first.headers["x-ratelimit-reset"] == "1"
        chat(proxy, tenant="team-a")
        with pytest.raises(openai.RateLimitError) as caught:
            chat(proxy, tenant="team-a")
        response = caught.value.response
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-ratelimit-limit"] == "2"
        assert response.headers["x-ratelimit-remaining"] == "0"
        assert response.headers["x-ratelimit-reset"] == "2"
        assert caught.value.body["code"] == "rate_limited"  # type: ignore[index]
        assert "team-a is over its limit of 1 requests/s" in caught.value.body["message"]  # type: ignore[index]
        chat(proxy, tenant="team-b")  # another tenant has its own bucket
        clock.advance(1.0)  # one token refilled
        assert chat(proxy, tenant="team-a").parse().choices[0].message.content
        settle(proxy, 5)
        assert metric(proxy, "llmtrace_rate_limited_total", tenant="team-a",
                      limit="requests") == 1.0
        refused = [s for s in proxy.spans(5) if (s.attributes or {}).get("error.type")]
    assert len(refused) == 1 and refused[0].attributes["http.response.status_code"] == 429  # type: ignore[index]


def test_anthropic_clients_get_their_429_shape(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, requests_per_s=0.001, request_burst=1) as proxy:
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-x", max_retries=0,
                                     default_headers={"X-LLMTrace-Tenant-ID": "t"})
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=MESSAGES)
        with pytest.raises(anthropic.RateLimitError) as caught:
            claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=10,
                                   messages=MESSAGES)
        assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
        assert int(caught.value.response.headers["retry-after"]) == 1000


def test_tokens_per_minute_reserve_max_tokens_and_reconcile_from_usage(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    """The fake upstream reports 12 + 6 = 18 tokens per call."""
    clock = Clock()
    with running_proxy(upstream.url, tmp_path, tokens_per_min=100) as proxy:
        use_clock(proxy, clock)
        first = chat(proxy, tenant="t", max_tokens=90)  # 90 reserved: 10 left
        assert first.headers["x-ratelimit-limit"] == "100"
        assert first.headers["x-ratelimit-remaining"] == "10"
        settle(proxy, 1)  # reconciled: 90 reserved, 18 used -> 82 left
        second = chat(proxy, tenant="t", max_tokens=80)  # fits only after the refund
        assert second.headers["x-ratelimit-remaining"] == "2"
        settle(proxy, 2)  # 64 left
        with pytest.raises(openai.RateLimitError) as caught:
            chat(proxy, tenant="t", max_tokens=70)
        # 6 tokens short at 100/60 tokens per second: 3.6 s -> 4
        assert caught.value.response.headers["retry-after"] == "4"
        assert "over its limit of 100 tokens/min" in caught.value.body["message"]  # type: ignore[index]
        clock.advance(3.61)  # 64 + 6 tokens refilled
        assert chat(proxy, tenant="t", max_tokens=70).headers["x-ratelimit-remaining"] == "0"
        settle(proxy, 4)  # 0 + 70 reserved - 18 used = 52
        # without max_tokens nothing is reserved up front; usage is still charged after
        assert chat(proxy, tenant="t").headers["x-ratelimit-remaining"] == "52"
        settle(proxy, 5)
        assert chat(proxy, tenant="t").headers["x-ratelimit-remaining"] == "34"
        settle(proxy, 6)
        assert metric(proxy, "llmtrace_rate_limited_total", tenant="t", limit="tokens") == 1.0
        assert metric(proxy, "llmtrace_tenant_tokens_total", tenant="t",
                      direction="input") == 12 * 5


def test_per_tenant_overrides_from_the_tenants_section(upstream: FakeUpstream,
                                                       tmp_path: Path) -> None:
    clock = Clock()
    tenants = {"vip": {"requests_per_s": 100, "request_burst": 3}}
    with running_proxy(upstream.url, tmp_path, requests_per_s=0.01, request_burst=1,
                       tenants=tenants) as proxy:
        use_clock(proxy, clock)
        for _ in range(3):
            chat(proxy, tenant="vip")
        chat(proxy, tenant="other")
        with pytest.raises(openai.RateLimitError):
            chat(proxy, tenant="other")
        with pytest.raises(openai.RateLimitError):
            chat(proxy, tenant="vip")


def test_tenant_metric_labels_are_capped_with_other(upstream: FakeUpstream,
                                                    tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, metric_tenants=1, requests_per_s=1000) as proxy:
        for tenant in ("first", "second", "third"):
            chat(proxy, tenant=tenant)
        settle(proxy, 3)
        assert metric(proxy, "llmtrace_tenant_requests_total", tenant="first") == 1
        assert metric(proxy, "llmtrace_tenant_requests_total", tenant="_other") == 2
        assert metric(proxy, "llmtrace_tenant_requests_total", tenant="second") == 0
        assert metric(proxy, "llmtrace_cost_usd_total", tenant="_other") > 0
        assert metric(proxy, "llmtrace_cost_usd_total", tenant="third") == 0


def test_concurrent_calls_never_exceed_the_in_memory_limit(upstream: FakeUpstream,
                                                           tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def status(_: int) -> int:
        try:
            chat(proxy, tenant="burst")
            return 200
        except openai.RateLimitError:
            return 429

    with running_proxy(upstream.url, tmp_path, requests_per_s=0.001,
                       request_burst=12) as proxy, ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(status, range(50)))
    assert statuses.count(200) == 12 and statuses.count(429) == 38
