"""Provider names as other dialects spell them -> ``gen_ai.provider.name`` well-known values."""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiProviderNameValues as P,
)
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiSystemValues as S,
)

__all__ = ["openinference_provider", "provider_name"]

#: Lower-cased ``gen_ai.system`` / vendor values -> current provider names. Semconv's own
#: deprecated values first, then what OpenLLMetry and OpenInference write.
_ALIASES: dict[str, str] = {
    S.AZ_AI_OPENAI.value: P.AZURE_AI_OPENAI.value,
    S.AZ_AI_INFERENCE.value: P.AZURE_AI_INFERENCE.value,
    S.VERTEX_AI.value: P.GCP_VERTEX_AI.value,
    S.GEMINI.value: P.GCP_GEMINI.value,
    S.XAI.value: P.X_AI.value,
    "azure": P.AZURE_AI_OPENAI.value,  # OpenLLMetry's openai instrumentation on Azure
    "azure_openai": P.AZURE_AI_OPENAI.value,
    "aws": P.AWS_BEDROCK.value,
    "bedrock": P.AWS_BEDROCK.value,
    "google": P.GCP_GEN_AI.value,
    "vertexai": P.GCP_VERTEX_AI.value,
    "mistralai": P.MISTRAL_AI.value,
    "watsonx": P.IBM_WATSONX_AI.value,
}


def provider_name(value: str) -> str:
    """``"az.ai.openai"`` -> ``"azure.ai.openai"``, ``"Anthropic"`` -> ``"anthropic"``."""
    lowered = value.strip().lower()
    return _ALIASES.get(lowered, lowered)


def openinference_provider(provider: str | None, system: str | None) -> str | None:
    """OpenInference's ``llm.provider`` (who hosts) + ``llm.system`` (which API family)."""
    provider = (provider or "").strip().lower() or None
    system = (system or "").strip().lower() or None
    if provider == "azure":
        return P.AZURE_AI_OPENAI.value if system in (None, "openai") else (
            P.AZURE_AI_INFERENCE.value)
    if provider == "google" and system == "vertexai":
        return P.GCP_VERTEX_AI.value
    if provider is not None:
        return provider_name(provider)
    return provider_name(system) if system is not None else None
