"""Which API shape a request path is, and which ``gen_ai.provider.name`` a call gets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiProviderNameValues as _Provider,
)

from llmtrace_otel.providers.anthropic_messages import AnthropicMessagesAdapter
from llmtrace_otel.providers.base import APIAdapter
from llmtrace_otel.providers.openai_chat import OpenAIChatAdapter
from llmtrace_otel.providers.openai_completions import OpenAICompletionsAdapter
from llmtrace_otel.providers.openai_embeddings import OpenAIEmbeddingsAdapter
from llmtrace_otel.providers.openai_responses import OpenAIResponsesAdapter

__all__ = ["ADAPTERS", "detect_provider", "match_api"]

_CHAT = OpenAIChatAdapter()
_COMPLETIONS = OpenAICompletionsAdapter()
_EMBEDDINGS = OpenAIEmbeddingsAdapter()
_RESPONSES = OpenAIResponsesAdapter()
_ANTHROPIC = AnthropicMessagesAdapter()

#: Every adapter, once; they are stateless and shared by all calls.
ADAPTERS: tuple[APIAdapter, ...] = (_CHAT, _COMPLETIONS, _EMBEDDINGS, _RESPONSES, _ANTHROPIC)

# Path suffixes, checked in order ("/chat/completions" before "/completions"). Any prefix
# is allowed (Azure's /openai/deployments/{name}/..., gateways' /openai/...).
# Anthropic's is "/v1/messages" so that OpenAI's /v1/threads/{id}/messages does not match.
_SUFFIXES: tuple[tuple[str, APIAdapter], ...] = (
    ("/chat/completions", _CHAT),
    ("/completions", _COMPLETIONS),
    ("/embeddings", _EMBEDDINGS),
    ("/responses", _RESPONSES),
    ("/v1/messages", _ANTHROPIC),
)
_ANTHROPIC_HEADER = "anthropic-version"

_EXACT_HOSTS: Mapping[str, str] = MappingProxyType({
    "api.openai.com": _Provider.OPENAI.value,
    "api.anthropic.com": _Provider.ANTHROPIC.value,
    "models.inference.ai.azure.com": _Provider.AZURE_AI_INFERENCE.value,
    "api.deepseek.com": _Provider.DEEPSEEK.value,
    "api.groq.com": _Provider.GROQ.value,
    "api.mistral.ai": _Provider.MISTRAL_AI.value,
    "api.x.ai": _Provider.X_AI.value,
    "generativelanguage.googleapis.com": _Provider.GCP_GEMINI.value,
    "api.perplexity.ai": _Provider.PERPLEXITY.value,
})
_HOST_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".openai.azure.com", _Provider.AZURE_AI_OPENAI.value),
    (".cognitiveservices.azure.com", _Provider.AZURE_AI_OPENAI.value),
    (".services.ai.azure.com", _Provider.AZURE_AI_INFERENCE.value),
    ("aiplatform.googleapis.com", _Provider.GCP_VERTEX_AI.value),  # {region}-aiplatform...
)
_HOST_PREFIXES: tuple[tuple[str, str], ...] = (
    ("bedrock-runtime.", _Provider.AWS_BEDROCK.value),
    ("api.cohere.", _Provider.COHERE.value),  # api.cohere.com, api.cohere.ai
)
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")
_MAX_OVERRIDE = 64
#: The providers the GenAI conventions name: an override naming one is always kept.
_WELL_KNOWN = frozenset(p.value for p in _Provider)


def match_api(path: str, headers: Mapping[str, str] | None = None) -> APIAdapter | None:
    """The adapter for a request path (query string and prefix ignored), or None.

    ``headers`` (lower-case names, or a case-insensitive mapping) lets an Anthropic client's
    ``anthropic-version`` header claim a ``.../messages`` path that lacks the ``/v1``.
    """
    path = path.partition("?")[0].rstrip("/")
    for suffix, adapter in _SUFFIXES:
        if path.endswith(suffix):
            return adapter
    if headers is not None and path.endswith("/messages") and _ANTHROPIC_HEADER in headers:
        return _ANTHROPIC
    return None


def _override(value: str | None) -> str | None:
    if not value:
        return None
    token = value.strip().lower()
    if not token or len(token) > _MAX_OVERRIDE or not _TOKEN_CHARS.issuperset(token):
        return None  # untrusted header: never a free-form attribute value
    return token


def _host_provider(host: str) -> str | None:
    host = host.lower().rstrip(".")
    provider = _EXACT_HOSTS.get(host)
    if provider is not None:
        return provider
    for suffix, name in _HOST_SUFFIXES:
        if host.endswith(suffix):
            return name
    for prefix, name in _HOST_PREFIXES:
        if host.startswith(prefix):
            return name
    return None


def detect_provider(adapter: APIAdapter | None, upstream_host: str, override: str | None,
                    cap: Callable[[str], str] | None = None) -> str:
    """``gen_ai.provider.name`` for a call.

    A valid override (a lower-cased token of letters, digits, ``.``, ``_``, ``-``) wins;
    then a known upstream host (so DeepSeek's Anthropic-shaped endpoint is ``deepseek``);
    then the adapter's default (``anthropic`` for Messages, ``openai`` for the OpenAI
    shapes and for calls no adapter parses). The override comes from the client, so an
    override that is not a provider the conventions name goes through ``cap`` (the first
    few distinct ones are kept, later ones become ``_other``): a client cannot create
    metric series, /health entries or provider-health state without bound.
    """
    chosen = _override(override)
    if chosen is not None and cap is not None and chosen not in _WELL_KNOWN:
        chosen = cap(chosen)
    chosen = chosen or _host_provider(upstream_host)
    if chosen is not None:
        return chosen
    return adapter.default_provider if adapter is not None else _Provider.OPENAI.value
