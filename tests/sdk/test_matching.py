"""Which requests are LLM calls: API shapes by path, hosts, proxies, bodies."""

from __future__ import annotations

import json

import pytest

from llmtrace_otel.config import ConfigError, load_settings
from llmtrace_otel.sdk.matching import CallMatcher, RequestLine

CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})


def line(url_host: str, path: str, method: str = "POST", scheme: str = "https",
         port: int | None = None) -> RequestLine:
    return RequestLine(method, scheme, url_host, port, path)


@pytest.mark.parametrize(("host", "path", "api", "provider"), [
    ("api.openai.com", "/v1/chat/completions", "openai.chat_completions", "openai"),
    ("api.openai.com", "/v1/responses", "openai.responses", "openai"),
    ("api.anthropic.com", "/v1/messages", "anthropic.messages", "anthropic"),
    ("my-res.openai.azure.com", "/openai/deployments/gpt4o/chat/completions",
     "openai.chat_completions", "azure.ai.openai"),
    ("gateway.internal", "/llm/openai/v1/embeddings", "openai.embeddings", "openai"),
    ("api.deepseek.com", "/anthropic/v1/messages", "anthropic.messages", "deepseek"),
])
def test_api_shapes_are_recognised_on_any_host(host: str, path: str, api: str,
                                               provider: str) -> None:
    matcher = CallMatcher()
    request = line(host, path)
    adapter = matcher.adapter_for(request, {})
    assert adapter is not None and adapter.api == api
    target = matcher.target(adapter, request, CHAT.encode())
    assert target is not None
    assert (target.provider, target.server_address, target.server_port) == (provider, host, 443)
    assert target.url == f"https://{host}{path}"


def test_not_llm_calls() -> None:
    matcher = CallMatcher()
    assert matcher.adapter_for(line("api.openai.com", "/v1/models", "GET"), {}) is None
    assert matcher.adapter_for(line("api.openai.com", "/v1/chat/completions", "GET"), {}) is None
    assert matcher.adapter_for(line("api.openai.com", "/v1/files"), {}) is None
    # OpenAI's thread messages are not Anthropic's /v1/messages.
    assert matcher.adapter_for(line("api.openai.com", "/v1/threads/t1/messages"), {}) is None
    adapter = matcher.adapter_for(line("api.openai.com", "/v1/chat/completions"), {})
    assert adapter is not None
    for body in (b"", b"not json", b"[1, 2]"):
        assert matcher.target(adapter, line("api.openai.com", "/v1/chat/completions"),
                              body) is None


def test_anthropic_header_claims_a_bare_messages_path() -> None:
    matcher = CallMatcher()
    request = line("llm.example.com", "/proxy/messages")
    assert matcher.adapter_for(request, {}) is None
    adapter = matcher.adapter_for(request, {"anthropic-version": "2023-06-01"})
    assert adapter is not None and adapter.api == "anthropic.messages"


def test_host_patterns() -> None:
    matcher = CallMatcher(["api.openai.com", "*.openai.azure.com"])
    assert matcher.host_allowed("api.openai.com")
    assert matcher.host_allowed("API.OpenAI.com.")
    assert matcher.host_allowed("eu.openai.azure.com")
    assert not matcher.host_allowed("openai.azure.com.evil.example")
    assert not matcher.host_allowed("api.anthropic.com")
    assert CallMatcher([]).host_allowed("anything.example")
    assert CallMatcher(["*"]).host_allowed("anything.example")


def test_proxy_urls() -> None:
    matcher = CallMatcher(proxy_urls=["http://127.0.0.1:8080", "https://gw.example.com/llm/"])
    assert matcher.is_proxy(line("127.0.0.1", "/v1/chat/completions", scheme="http",
                                 port=8080))
    assert not matcher.is_proxy(line("127.0.0.1", "/v1/chat/completions", scheme="http",
                                     port=8081))
    assert matcher.is_proxy(line("gw.example.com", "/llm/v1/messages"))
    assert not matcher.is_proxy(line("gw.example.com", "/llmx/v1/messages"))
    assert not matcher.is_proxy(line("gw.example.com", "/llm/v1/messages", scheme="http"))
    assert not CallMatcher().is_proxy(line("127.0.0.1", "/v1/chat/completions"))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("sdk_exporters", "sometimes", "sdk.exporters"),
    ("sdk_prometheus_port", 70000, "sdk.prometheus_port"),
    ("sdk_proxy_urls", "localhost:8080", "sdk.proxy_urls"),
    ("sdk_hosts", "https://api.openai.com", "sdk.hosts"),
])
def test_bad_sdk_settings_name_their_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, overrides={key: value})


def test_sdk_settings_from_the_environment() -> None:
    settings = load_settings(env={"LLMTRACE_SDK_HOSTS": "api.openai.com",
                                  "LLMTRACE_SDK_PROXY_URLS": "http://127.0.0.1:8080",
                                  "LLMTRACE_SDK_EXPORTERS": "on",
                                  "LLMTRACE_SDK_PROMETHEUS_PORT": "9464"})
    assert (settings.sdk_hosts, settings.sdk_proxy_urls, settings.sdk_exporters,
            settings.sdk_prometheus_port) == ("api.openai.com", "http://127.0.0.1:8080", "on",
                                              9464)
