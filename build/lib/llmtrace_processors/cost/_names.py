"""How a model name as reported on a span maps to names in a price table.

Three steps, each tried only when the one before found nothing (see docs/pricing.md):

1. **Exact** name, case-insensitive (and, when the provider is known, the LiteLLM-style
   provider-qualified key such as ``azure/gpt-4o``).
2. **Normalized** names: routing prefixes dropped (``openai/``, ``models/``,
   ``openrouter/anthropic/``, Bedrock's ``us.anthropic.``) and snapshot suffixes stripped
   one at a time from the end (``-2024-07-18``, ``-20241022``, ``@20240620``, ``-05-06``,
   ``-0613``, ``-001``, ``-latest``, Bedrock ``-v2:0`` / ``:0``), each result tried exactly.
3. **Qualified prefix**: the longest table name ``K`` such that the name is ``K-rest``
   and *every* ``-``-separated token of ``rest`` is a qualifier that never names a
   different model: ``preview``, ``latest``, or a snapshot number of 3+ digits.

Step 3 is an allow-list on purpose: a wrong price is worse than no price (unpriced calls
are counted and visible). So ``gpt-4.1`` never matches ``gpt-4`` (boundary is ``.``, not
``-``), ``gpt-4o`` never matches ``gpt-4`` (boundary ``o``), ``o1-mini`` never matches
``o1`` (``mini`` is not a qualifier) and ``claude-opus-4-5`` never matches
``claude-opus-4`` (``5`` is a version, not a snapshot number).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType

__all__ = ["normalize", "prefix_candidates", "provider_keys", "variants"]

# Bedrock model ids: optional cross-region inference prefix, then "<vendor>."
_VENDOR_DOT_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|au|ca|jp|us-gov|global)\.)?"
    r"(?:anthropic|meta|mistral|cohere|amazon|ai21|deepseek|openai|google|qwen|writer)\."
)

# Snapshot/version suffixes that name a dated build of the same model. Order matters:
# a full date is stripped as one unit before its shorter tails could match.
_SNAPSHOT_SUFFIXES: tuple[re.Pattern[str], ...] = (
    re.compile(r"-v\d+:\d+$"),  # Bedrock: -v2:0
    re.compile(r":\d+$"),  # Bedrock: :0
    re.compile(r"[-@]\d{4}-\d{2}-\d{2}$"),  # OpenAI: -2024-07-18
    re.compile(r"[-@]\d{8}$"),  # Anthropic: -20241022, Vertex: @20240620
    re.compile(r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$"),  # Gemini previews: -05-06
    re.compile(r"-\d{4}$"),  # OpenAI -0613, Mistral -2411
    re.compile(r"-0\d{2}$"),  # Gemini -001
    re.compile(r"-latest$"),
)

# Tokens allowed after a table name in the prefix step (see module docstring).
_QUALIFIER = re.compile(r"^(?:preview|latest|\d{3,})$")

# Semconv provider name -> LiteLLM routing prefixes, for provider-qualified keys.
_PROVIDER_ROUTES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "openai": ("openai",),
        "anthropic": ("anthropic",),
        "azure.ai.openai": ("azure",),
        "az.ai.openai": ("azure",),
        "azure.ai.inference": ("azure_ai",),
        "az.ai.inference": ("azure_ai",),
        "aws.bedrock": ("bedrock", "bedrock_converse"),
        "gcp.vertex_ai": ("vertex_ai",),
        "vertex_ai": ("vertex_ai",),
        "gcp.gemini": ("gemini",),
        "gemini": ("gemini",),
        "gcp.gen_ai": ("gemini", "vertex_ai"),
        "mistral_ai": ("mistral",),
        "deepseek": ("deepseek",),
        "groq": ("groq",),
        "x_ai": ("xai",),
        "perplexity": ("perplexity",),
        "cohere": ("cohere",),
        "ibm.watsonx.ai": ("watsonx",),
    }
)


def normalize(name: str) -> str:
    """Case-folded, trimmed model name: the form table keys are stored in."""
    return name.strip().lower()


def provider_keys(name: str, provider: str | None) -> tuple[str, ...]:
    """Provider-qualified keys to try before ``name`` (LiteLLM tables use them)."""
    if not provider or "/" in name:
        return ()
    provider = normalize(provider)
    routes = _PROVIDER_ROUTES.get(provider, (provider,))
    return tuple(f"{route}/{name}" for route in routes)


def _strip_routing(name: str) -> str:
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    return _VENDOR_DOT_PREFIX.sub("", name, count=1)


def _strip_one_suffix(name: str) -> str | None:
    for pattern in _SNAPSHOT_SUFFIXES:
        stripped = pattern.sub("", name, count=1)
        if stripped != name and stripped:
            return stripped
    return None


def variants(name: str) -> Iterator[str]:
    """Names to try exactly, in order: as given, routing stripped, snapshots stripped.

    ``name`` must already be :func:`normalize` d. Consecutive duplicates are skipped.
    """
    yield name
    current = _strip_routing(name)
    if current != name:
        yield current
    while (stripped := _strip_one_suffix(current)) is not None:
        current = stripped
        yield current


def prefix_candidates(name: str) -> Iterator[str]:
    """Table names that may price ``name`` by the qualified-prefix rule, longest first."""
    tokens = name.split("-")
    for cut in range(len(tokens) - 1, 0, -1):
        if all(_QUALIFIER.match(token) for token in tokens[cut:]):
            yield "-".join(tokens[:cut])
        else:
            # Tokens are checked from the cut to the end; once a non-qualifier is in the
            # remainder, every shorter prefix has it too.
            return
