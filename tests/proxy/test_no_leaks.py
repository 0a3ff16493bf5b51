"""Upstream credentials, client query keys and client-made label values stay bounded and
out of answers, spans and logs (issue: trust, items 5 and 6)."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

import openai

from tests.support.expectations import metric_value
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy


def _with_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://svc-user:UPSTREAM-SECRET@{rest}"


def test_url_credentials_are_basic_auth_never_recorded(upstream: FakeUpstream,
                                                       tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(_with_credentials(upstream.url), tmp_path) as proxy:
        # A client with its own Authorization: it wins (before: 500 from the HTTP client).
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-client", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "hi"}])
        # A client without one, on a path relayed as plain HTTP, with a key in its query.
        with urllib.request.urlopen(f"{proxy.url}/v1/models?key=QUERY-KEY", timeout=10) as r:
            assert r.status == 200
        spans = proxy.spans(2)
    first, second = upstream.requests
    assert first.headers["authorization"] == "Bearer sk-client"
    expected = "Basic " + base64.b64encode(b"svc-user:UPSTREAM-SECRET").decode()
    assert second.headers["authorization"] == expected
    assert second.query == "key=QUERY-KEY"  # relayed unchanged
    recorded = json.dumps([dict(s.attributes or {}) for s in spans])
    assert "UPSTREAM-SECRET" not in recorded and "QUERY-KEY" not in recorded
    assert f'"url.full": "{upstream.url}/v1/models"' in recorded
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("spans.db*"))
    assert b"UPSTREAM-SECRET" not in stored and b"QUERY-KEY" not in stored


def test_client_provider_names_are_bounded(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, metrics_max_providers=3) as proxy:
        for n in range(8):
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0,
                                   default_headers={"X-LLMTrace-Provider": f"made-up-{n}"})
            client.chat.completions.create(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": "hi"}])
        named = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0,
                              default_headers={"X-LLMTrace-Provider": "groq"})
        named.chat.completions.create(model="gpt-4o-mini",
                                      messages=[{"role": "user", "content": "hi"}])
        spans = proxy.spans(9)
        text = proxy.metrics_text()
        health = proxy.server.health()
    providers = [(s.attributes or {})["gen_ai.provider.name"] for s in spans]
    assert providers == ["made-up-0", "made-up-1", "made-up-2", *["_other"] * 5, "groq"]
    assert metric_value(text, "llmtrace_requests_total", provider="_other", model="gpt-4o-mini",
                        status_code="200") == 5
    assert "made-up-3" not in text
    assert set(health["providers"]) == {"made-up-0", "made-up-1", "made-up-2", "_other", "groq"}
