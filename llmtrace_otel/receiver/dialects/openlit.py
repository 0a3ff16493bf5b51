"""OpenLIT's own keys -> the latest GenAI semantic conventions.

OpenLIT writes mostly semconv keys (older ones, handled by :mod:`genai_legacy`, before
1.4x), plus:

* ``gen_ai.request.is_stream`` (1.3x) -> ``gen_ai.request.stream``;
* ``gen_ai.server.time_to_first_token`` (seconds): on a stream, the time to its first
  chunk -> ``gen_ai.response.time_to_first_chunk``. OpenLIT sets it on every span, and
  without a stream it is the whole call's duration, which the span has already: then it
  stays as it is.
* on Anthropic spans, ``gen_ai.usage.input_tokens`` as Anthropic counts it, without the
  cached tokens (1.45: 12 input tokens next to 1,024 read from and 512 written to the
  cache). Semconv counts them in, as the proxy does, so they are added.

Left as sent: ``gen_ai.usage.cost`` (OpenLIT's own price, from its price list),
``gen_ai.client.token.usage``, ``gen_ai.server.time_per_output_token``,
``telemetry.sdk.name``.
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GenAiProviderNameValues,
)

from llmtrace_otel.receiver.dialects._draft import Draft

__all__ = ["DIALECT", "TRIGGER_KEYS", "apply"]

DIALECT = "openlit"

# OpenLIT's keys (openlit/semcov), spelled once here.
IS_STREAM = "gen_ai.request.is_stream"
TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
SDK_NAME = "telemetry.sdk.name"
_OPENLIT = "openlit"

TRIGGER_KEYS: frozenset[str] = frozenset({IS_STREAM, TIME_TO_FIRST_TOKEN})


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _anthropic_input(draft: Draft) -> None:
    attributes = draft.attributes
    if (attributes.get(SDK_NAME) != _OPENLIT
            or attributes.get(GEN_AI_PROVIDER_NAME) != GenAiProviderNameValues.ANTHROPIC.value):
        return
    cached = (_int(attributes.get(GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS))
              + _int(attributes.get(GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)))
    if cached and GEN_AI_USAGE_INPUT_TOKENS in attributes:
        attributes[GEN_AI_USAGE_INPUT_TOKENS] = (
            _int(attributes[GEN_AI_USAGE_INPUT_TOKENS]) + cached)
        draft.changed = True


def apply(draft: Draft) -> None:
    draft.rename(IS_STREAM, GEN_AI_REQUEST_STREAM)
    if draft.attributes.get(GEN_AI_REQUEST_STREAM) is True:
        draft.rename(TIME_TO_FIRST_TOKEN, GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    _anthropic_input(draft)
