"""Upstream base URLs as providers document them (with /v1, or a path prefix) just work."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from llmtrace_otel.proxy.routing import Upstream
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy

MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(("base", "target", "expected"), [
    ("http://h:1", "/v1/chat/completions", "http://h:1/v1/chat/completions"),
    # Ollama, vLLM, LM Studio: http://localhost:11434/v1
    ("http://h:1/v1", "/v1/chat/completions?x=1", "http://h:1/v1/chat/completions?x=1"),
    # OpenRouter: https://openrouter.ai/api/v1
    ("https://openrouter.ai/api/v1", "/v1/chat/completions",
     "https://openrouter.ai/api/v1/chat/completions"),
    # a client whose base URL has no /v1 of its own
    ("http://h/v1", "/chat/completions", "http://h/v1/chat/completions"),
    # Azure OpenAI: the SDK sends /openai/deployments/<name>/... itself
    ("https://r.openai.azure.com/openai", "/openai/deployments/d/chat/completions?api-version=2",
     "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2"),
])
def test_the_shared_part_of_base_and_request_path_is_used_once(base: str, target: str,
                                                               expected: str) -> None:
    assert Upstream.parse(base).url_for(target) == expected


def test_an_upstream_url_ending_in_v1_reaches_the_right_path(upstream: FakeUpstream,
                                                             tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(f"{upstream.url}/v1", tmp_path) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert answer.choices[0].message.content
        client.models.list()  # relayed as plain HTTP: its span names the URL it went to
        spans = proxy.spans(2)
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions", "/v1/models"]
    plain = next(s for s in spans if s.name == "GET")
    assert (plain.attributes or {})["url.full"] == f"{upstream.url}/v1/models"
