"""Names of the current GenAI conventions that the processors do not read (yet).

The conventions (open-telemetry/semantic-conventions-genai) renamed
``gen_ai.usage.cache_creation.input_tokens`` to ``gen_ai.usage.cache_write.input_tokens``;
the ``anthropic`` SDK's own spans already send the new name. The cost processor, the
metrics and the store read the name we emit, so the new one is renamed to it here: without
this, cache writes would be priced at the input rate.
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
)

from llmtrace_otel.receiver.dialects._draft import Draft
from llmtrace_processors.genai_latest import GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS

__all__ = ["DIALECT", "TRIGGER_KEYS", "apply"]

DIALECT = "genai_latest"

_RENAMES: dict[str, str] = {
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
}
TRIGGER_KEYS: frozenset[str] = frozenset(_RENAMES)


def apply(draft: Draft) -> None:
    for old, new in _RENAMES.items():
        draft.rename(old, new)
