"""The call page of a proxy emitting the latest GenAI conventions, in headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
)

from llmtrace_processors.genai_latest import GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS
from tests.support.fake_upstream import SCENARIO_HEADER, FakeUpstream, usage_for
from tests.support.openapi_check import call
from tests.support.proxy_harness import running_proxy


def test_the_call_page_shows_the_latest_names_and_the_cache_writes(
        upstream: FakeUpstream, tmp_path: Path, page: Any) -> None:
    with running_proxy(upstream.url, tmp_path,
                       semconv_stability_opt_in="gen_ai_latest_experimental") as proxy:
        anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0,
                            default_headers={SCENARIO_HEADER: "cache"}).messages.create(
            model="claude-haiku-4-5", max_tokens=16,
            messages=[{"role": "user", "content": "hi"}])
        proxy.spans(1)
        item = call(proxy.url, "/api/v1/traces").body["items"][0]
        page.goto(f"{proxy.url}/ui/calls/{item['span_id']}")
        page.wait_for_selector("#attributes")
        usage = usage_for("anthropic", "cache")
        assert f"{usage.cached_tokens:,} / {usage.cache_creation_tokens:,}" in \
            page.locator("dl.facts").inner_text()
        keys = page.locator("#attributes th").all_inner_texts()
        assert GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS in keys
        assert GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS not in keys
        assert not page.page_errors
