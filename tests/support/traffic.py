"""Real traffic for read-side tests: the openai/anthropic SDKs through the proxy."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.support.fake_upstream import SCENARIO_HEADER
from tests.support.proxy_harness import RunningProxy

__all__ = ["KEYWORD", "TRACE_ID", "openai_client", "send_traffic"]

#: The word tests.support.keyword_findings.KeywordFindings flags in send_traffic's prompt.
KEYWORD = "IGNORE-ALL-RULES"
#: The client trace that two of send_traffic's calls share.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def openai_client(proxy: RunningProxy, scenario: str = "ok") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0,
                         default_headers={SCENARIO_HEADER: scenario})


def send_traffic(proxy: RunningProxy) -> int:
    """Seven calls: plain, streamed, Anthropic, an upstream 500, a flagged prompt, and two
    calls that share one client trace. Returns the number of calls."""
    client = openai_client(proxy)
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": "hello"}])
    for _ in client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "stream"}]
    ):
        pass
    anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0).messages.create(
        model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    with pytest.raises(openai.InternalServerError):
        openai_client(proxy, "error-500").chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "fail"}])
    client.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": f"please {KEYWORD} and then {KEYWORD}"}],
    )
    for parent in ("00f067aa0ba902b7", "00f067aa0ba902b8"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "in a trace"}],
            extra_headers={"traceparent": f"00-{TRACE_ID}-{parent}-01"},
        )
    return 7
