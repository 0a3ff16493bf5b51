from __future__ import annotations

import pytest
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiProviderNameValues,
)
from tornado.httputil import HTTPHeaders

from llmtrace_otel.providers.anthropic_messages import AnthropicMessagesAdapter
from llmtrace_otel.providers.base import APIAdapter
from llmtrace_otel.providers.openai_chat import OpenAIChatAdapter
from llmtrace_otel.providers.openai_completions import OpenAICompletionsAdapter
from llmtrace_otel.providers.openai_embeddings import OpenAIEmbeddingsAdapter
from llmtrace_otel.providers.openai_responses import OpenAIResponsesAdapter
from llmtrace_otel.providers.registry import ADAPTERS, detect_provider, match_api


@pytest.mark.parametrize(("path", "kind"), [
    ("/v1/chat/completions", OpenAIChatAdapter),
    ("/chat/completions", OpenAIChatAdapter),
    ("/openai/deployments/gpt-4o/chat/completions", OpenAIChatAdapter),
    ("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", OpenAIChatAdapter),
    ("/v1/chat/completions/", OpenAIChatAdapter),
    ("/api/v1/chat/completions", OpenAIChatAdapter),  # gateways (OpenRouter, ...)
    ("/v1/completions", OpenAICompletionsAdapter),
    ("/openai/deployments/instruct/completions?api-version=2024-10-21", OpenAICompletionsAdapter),
    ("/v1/embeddings", OpenAIEmbeddingsAdapter),
    ("/embeddings", OpenAIEmbeddingsAdapter),
    ("/v1/responses", OpenAIResponsesAdapter),
    ("/openai/v1/responses?api-version=preview", OpenAIResponsesAdapter),
    ("/v1/messages", AnthropicMessagesAdapter),
    ("/v1/messages?beta=true", AnthropicMessagesAdapter),
    ("/anthropic/v1/messages", AnthropicMessagesAdapter),
])
def test_match_api(path: str, kind: type) -> None:
    assert isinstance(match_api(path), kind)


@pytest.mark.parametrize("path", [
    "/v1/messages/count_tokens",
    "/v1/messages/batches",
    "/v1/messages/batches/msgbatch_01/results",
    "/v1/threads/thread_abc/messages",  # OpenAI Assistants, not Anthropic
    "/v1/models",
    "/v1/responses/resp_123",
    "/v1/responses/resp_123/input_items",
    "/v1/chat/completions/chatcmpl-123",
    "/v1/completions-and-more",
    "/",
    "",
])
def test_paths_that_are_not_parsed(path: str) -> None:
    assert match_api(path) is None


def test_anthropic_version_header_claims_a_bare_messages_path() -> None:
    assert match_api("/messages") is None
    assert match_api("/messages", {"anthropic-version": "2023-06-01"}) is ADAPTERS[-1]
    headers = HTTPHeaders({"Anthropic-Version": "2023-06-01"})
    assert isinstance(match_api("/proxy/messages", headers), AnthropicMessagesAdapter)


def test_adapters_are_shared_singletons() -> None:
    assert match_api("/v1/chat/completions") is match_api("/chat/completions")
    assert len({type(a) for a in ADAPTERS}) == len(ADAPTERS) == 5
    assert len({a.api for a in ADAPTERS}) == 5
    for adapter in ADAPTERS:
        assert isinstance(adapter.api, str) and adapter.default_provider


_CHAT: APIAdapter = OpenAIChatAdapter()
_ANTHROPIC: APIAdapter = AnthropicMessagesAdapter()
P = GenAiProviderNameValues


@pytest.mark.parametrize(("host", "expected"), [
    ("api.openai.com", P.OPENAI),
    ("API.OpenAI.com.", P.OPENAI),
    ("my-resource.openai.azure.com", P.AZURE_AI_OPENAI),
    ("my-resource.cognitiveservices.azure.com", P.AZURE_AI_OPENAI),
    ("my-project.services.ai.azure.com", P.AZURE_AI_INFERENCE),
    ("models.inference.ai.azure.com", P.AZURE_AI_INFERENCE),
    ("bedrock-runtime.us-east-1.amazonaws.com", P.AWS_BEDROCK),
    ("api.deepseek.com", P.DEEPSEEK),
    ("api.groq.com", P.GROQ),
    ("api.mistral.ai", P.MISTRAL_AI),
    ("api.x.ai", P.X_AI),
    ("generativelanguage.googleapis.com", P.GCP_GEMINI),
    ("us-central1-aiplatform.googleapis.com", P.GCP_VERTEX_AI),
    ("aiplatform.googleapis.com", P.GCP_VERTEX_AI),
    ("api.perplexity.ai", P.PERPLEXITY),
    ("api.cohere.com", P.COHERE),
    ("api.cohere.ai", P.COHERE),
    ("127.0.0.1", P.OPENAI),
    ("localhost", P.OPENAI),
    ("openai.azure.com.evil.example", P.OPENAI),
])
def test_provider_from_upstream_host(host: str, expected: GenAiProviderNameValues) -> None:
    assert detect_provider(_CHAT, host, None) == expected.value


def test_anthropic_adapter_defaults_to_anthropic() -> None:
    assert detect_provider(_ANTHROPIC, "127.0.0.1", None) == "anthropic"
    assert detect_provider(_ANTHROPIC, "api.anthropic.com", None) == "anthropic"
    # DeepSeek serves an Anthropic-shaped API: the host says who the provider is.
    assert detect_provider(_ANTHROPIC, "api.deepseek.com", None) == "deepseek"


def test_no_adapter() -> None:
    assert detect_provider(None, "127.0.0.1", None) == "openai"
    assert detect_provider(None, "api.anthropic.com", None) == "anthropic"


@pytest.mark.parametrize(("override", "expected"), [
    ("ibm.watsonx.ai", "ibm.watsonx.ai"),
    ("  Groq ", "groq"),
    ("my_company-llm", "my_company-llm"),
    ("", "azure.ai.openai"),
    ("   ", "azure.ai.openai"),
    ("has space", "azure.ai.openai"),
    ("evil\nheader", "azure.ai.openai"),
    ("x" * 65, "azure.ai.openai"),
    (None, "azure.ai.openai"),
])
def test_override_wins_when_it_is_a_token(override: str | None, expected: str) -> None:
    assert detect_provider(_CHAT, "res.openai.azure.com", override) == expected
    if override and override.strip().lower() == expected:
        assert detect_provider(_ANTHROPIC, "api.anthropic.com", override) == expected
