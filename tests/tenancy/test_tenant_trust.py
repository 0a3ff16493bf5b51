"""A client cannot pick its own tenant (issue: trust, item 1).

Reproduced as the review did: with a limit of 1 request/s and a burst of 2, one key alone
gets 200 200 429 429; before the fix the same key with a fresh X-LLMTrace-Tenant-ID per call
got only 200s, and sending the victim's tenant id spent the victim's limit.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import openai
import pytest

from llmtrace_processors.attributes import (
    LLMTRACE_TENANT_HEADER_IGNORED,
    LLMTRACE_TENANT_ID,
    LLMTRACE_TENANT_SOURCE,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy
from tests.tenancy.support import chat


def test_a_fresh_tenant_header_per_call_does_not_escape_the_limit(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, requests_per_s=0.001, request_burst=2,
                       tenant_header_trusted_from="") as proxy:  # the default: nobody
        statuses = []
        for n in range(4):
            try:
                chat(proxy, api_key="sk-attacker", tenant=f"fresh-{n}")
                statuses.append(200)
            except openai.RateLimitError:
                statuses.append(429)
        assert statuses == [200, 200, 429, 429]
        spans = proxy.spans(4)
    attributes = [s.attributes or {} for s in spans]
    assert {a[LLMTRACE_TENANT_ID] for a in attributes} == {attributes[0][LLMTRACE_TENANT_ID]}
    assert str(attributes[0][LLMTRACE_TENANT_ID]).startswith("key-")
    assert all(a[LLMTRACE_TENANT_SOURCE] == "api_key" for a in attributes)
    assert all(a[LLMTRACE_TENANT_HEADER_IGNORED] is True for a in attributes)


def test_naming_the_victims_tenant_does_not_spend_its_limit(upstream: FakeUpstream,
                                                          tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, requests_per_s=0.001, request_burst=2,
                       tenant_header_trusted_from="") as proxy:
        assert chat(proxy, api_key="sk-victim").headers["x-ratelimit-remaining"] == "1"
        victim = str((proxy.only_span().attributes or {})[LLMTRACE_TENANT_ID])
        for _ in range(3):  # the attacker sends the victim's tenant id
            with contextlib.suppress(openai.RateLimitError):
                chat(proxy, api_key="sk-attacker", tenant=victim)
        assert chat(proxy, api_key="sk-victim").status_code == 200  # its own second call


def test_a_trusted_gateway_names_tenants_and_keys_map_to_tenants(upstream: FakeUpstream,
                                                                 tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, tenant_header_trusted_from="") as proxy:
        chat(proxy, api_key="sk-team-a")
        key_id = str((proxy.only_span().attributes or {})[LLMTRACE_TENANT_ID])
    tenants = {"team-a": {"key_ids": [key_id]}}
    with running_proxy(upstream.url, tmp_path, tenants=tenants,
                       tenant_header_trusted_from="127.0.0.0/8") as proxy:
        chat(proxy, api_key="sk-team-a")  # its key is mapped to team-a
        chat(proxy, api_key="sk-other", tenant="from-gateway")  # a trusted caller names it
        first, second = proxy.spans(2)
    assert (first.attributes or {})[LLMTRACE_TENANT_ID] == "team-a"
    assert (second.attributes or {})[LLMTRACE_TENANT_ID] == "from-gateway"
    assert (second.attributes or {})[LLMTRACE_TENANT_SOURCE] == "header"


@pytest.mark.parametrize(("tenants", "message"), [
    ({"a": {"key_ids": ["sk-raw-key"]}}, "is not a key id"),
    ({"a": {"key_ids": ["key-0123456789abcdef"]}, "b": {"key_ids": ["key-0123456789abcdef"]}},
     "already mapped to tenant 'a'"),
])
def test_bad_key_mappings_are_refused(tenants: dict, message: str) -> None:  # type: ignore[type-arg]
    from llmtrace_otel.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, overrides={"tenants": tenants})
