"""processors.cost: price table resolution and file formats, CostProcessor in a real chain."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_SYSTEM,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_COMPLETION_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_PROMPT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
from opentelemetry.util.types import AttributeValue
from prometheus_client import CollectorRegistry, generate_latest

from llmtrace_processors.attributes import (
    LLMTRACE_COST_CACHE_CREATION_USD,
    LLMTRACE_COST_CACHE_READ_USD,
    LLMTRACE_COST_INPUT_USD,
    LLMTRACE_COST_OUTPUT_USD,
    LLMTRACE_COST_PRICING_MODEL,
    LLMTRACE_COST_USD,
    LLMTRACE_TENANT_ID,
)
from llmtrace_processors.chain import EnrichingSpanProcessor, Enrichment, build_chain
from llmtrace_processors.cost import (
    COST_METRIC,
    UNPRICED_METRIC,
    CostProcessor,
    ModelPrice,
    PriceFileError,
    PriceTable,
    TokenUsage,
    load_price_table,
    read_usage,
)

COST_KEYS = (
    LLMTRACE_COST_USD,
    LLMTRACE_COST_INPUT_USD,
    LLMTRACE_COST_OUTPUT_USD,
    LLMTRACE_COST_CACHE_READ_USD,
    LLMTRACE_COST_CACHE_CREATION_USD,
    LLMTRACE_COST_PRICING_MODEL,
)


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12, abs=1e-15)


@pytest.fixture(scope="module")
def builtin() -> PriceTable:
    return PriceTable.builtin()


def small_table(*names: str) -> PriceTable:
    """A table with distinct prices per name, so a wrong match cannot hide."""
    return PriceTable(
        {name: ModelPrice(input=i + 1.0, output=i + 2.0) for i, name in enumerate(names)}
    )


# -- resolution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "model", "match"),
    [
        ("gpt-4o", "gpt-4o", "exact"),
        ("GPT-4o", "gpt-4o", "exact"),
        ("  gpt-4.1 ", "gpt-4.1", "exact"),
        ("gpt-4", "gpt-4", "exact"),
        ("o1-mini", "o1-mini", "exact"),
        ("gpt-4.1-mini", "gpt-4.1-mini", "exact"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13", "exact"),  # its own, higher price
        ("gpt-4-1106-preview", "gpt-4-turbo", "exact"),  # alias
        ("claude-sonnet-4-0", "claude-sonnet-4", "exact"),  # alias
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "normalized"),
        ("gpt-4o-2024-08-06", "gpt-4o", "normalized"),
        ("gpt-4.1-2025-04-14", "gpt-4.1", "normalized"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", "normalized"),
        ("o1-mini-2024-09-12", "o1-mini", "normalized"),
        ("o3-mini-2025-01-31", "o3-mini", "normalized"),
        ("gpt-4-0613", "gpt-4", "normalized"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo", "normalized"),
        ("gpt-5-chat-latest", "gpt-5-chat", "normalized"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet", "normalized"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet", "normalized"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet", "normalized"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet", "normalized"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5", "normalized"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5", "normalized"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet", "normalized"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", "normalized"),
        ("openai/gpt-4o", "gpt-4o", "normalized"),
        ("anthropic/claude-3-7-sonnet-20250219", "claude-3-7-sonnet", "normalized"),
        ("openrouter/anthropic/claude-sonnet-4", "claude-sonnet-4", "normalized"),
        ("models/gemini-1.5-pro-002", "gemini-1.5-pro", "normalized"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash", "normalized"),
        ("mistral-large-latest", "mistral-large", "normalized"),
        ("mistral-large-2411", "mistral-large", "normalized"),
        ("o1-preview", "o1", "prefix"),
        ("o1-preview-2024-09-12", "o1", "prefix"),
        ("gpt-4-turbo-preview", "gpt-4-turbo", "prefix"),
        ("gemini-2.5-pro-preview-05-06", "gemini-2.5-pro", "prefix"),
    ],
)
def test_builtin_resolution(builtin: PriceTable, requested: str, model: str, match: str) -> None:
    resolved = builtin.resolve(requested)
    assert resolved is not None, requested
    assert (resolved.model, resolved.match, resolved.requested) == (model, match, requested)
    assert resolved.price == builtin.get(model)


@pytest.mark.parametrize(
    "requested",
    [
        "gpt-4o-audio-preview",  # audio pricing differs
        "gpt-4o-mini-search-preview",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",  # fine-tuned: different price
        "llama-3.3-70b-instruct",
        "gemini-2.0-flash-thinking-exp-1219",
        "my-azure-deployment",
        "",
        "   ",
    ],
)
def test_builtin_unknown_is_none(builtin: PriceTable, requested: str) -> None:
    assert builtin.resolve(requested) is None


@pytest.mark.parametrize(
    ("table_names", "requested"),
    [
        (("gpt-4",), "gpt-4.1"),  # "." is not a boundary
        (("gpt-4",), "gpt-4o"),
        (("gpt-4",), "gpt-4o-mini"),
        (("gpt-4",), "gpt-4-32k"),
        (("gpt-4",), "gpt-4.1-2025-04-14"),
        (("o1",), "o1-mini"),
        (("o1",), "o1-pro"),
        (("o1",), "o1-mini-2024-09-12"),
        (("gpt-4.1",), "gpt-4.1-mini"),
        (("gpt-4.1",), "gpt-4.1-nano-2025-04-14"),
        (("gpt-3.5-turbo",), "gpt-3.5-turbo-instruct"),
        (("gpt-3.5-turbo",), "gpt-3.5-turbo-16k"),
        (("claude-opus-4",), "claude-opus-4-5"),  # a version, not a snapshot
        (("claude-opus-4",), "claude-opus-4-1-20250805"),
        (("claude-3",), "claude-3-5-sonnet"),
        (("gemini-2.0-flash",), "gemini-2.0-flash-lite"),
        (("gemini-1.5-flash",), "gemini-1.5-flash-8b"),
        (("gpt-5",), "gpt-5-codex"),
        (("deepseek",), "deepseek-chat"),
    ],
)
def test_prefix_never_matches_a_different_model(
    table_names: tuple[str, ...], requested: str
) -> None:
    assert small_table(*table_names).resolve(requested) is None


@pytest.mark.parametrize(
    ("table_names", "requested", "model"),
    [
        (("gpt-4", "gpt-4.1", "gpt-4o"), "gpt-4.1", "gpt-4.1"),
        (("gpt-4", "gpt-4o"), "gpt-4o-2024-11-20", "gpt-4o"),
        (("o1", "o1-mini"), "o1-mini", "o1-mini"),
        (("gpt-4", "gpt-4-turbo"), "gpt-4-turbo-preview", "gpt-4-turbo"),  # longest wins
        (("gpt-4",), "gpt-4-0613", "gpt-4"),
        (("o1",), "o1-preview", "o1"),
    ],
)
def test_prefix_and_snapshot_matches(
    table_names: tuple[str, ...], requested: str, model: str
) -> None:
    resolved = small_table(*table_names).resolve(requested)
    assert resolved is not None and resolved.model == model


def test_resolution_is_cached_per_instance_and_bounded() -> None:
    table = PriceTable({"gpt-4o": ModelPrice(2.5, 10)}, cache_size=2)
    first = table.resolve("gpt-4o-2024-08-06")
    assert table.resolve("gpt-4o-2024-08-06") is first
    for name in ("a", "b", "c", "d"):
        assert table.resolve(name) is None
    assert len(table._cache) == 2  # bounded, misses included
    other = PriceTable({"gpt-4o": ModelPrice(2.5, 10)})
    assert len(other._cache) == 0  # not shared between tables


def test_builtin_table_is_dated_and_consistent(builtin: PriceTable) -> None:
    assert isinstance(builtin.as_of, date)
    assert len(builtin) >= 60
    for name in builtin:
        price = builtin.get(name)
        assert price is not None and price.provider, name
        if price.provider == "anthropic":
            assert price.cache_read == pytest.approx(price.input * 0.1), name
            assert price.cache_write == pytest.approx(price.input * 1.25), name
    for required in (
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o1-mini",
        "o3", "o3-mini", "o4-mini", "gpt-4-turbo", "gpt-4", "gpt-3.5-turbo", "gpt-5",
        "gpt-5-mini", "gpt-5-nano", "text-embedding-3-small", "text-embedding-3-large",
        "text-embedding-ada-002", "claude-3-5-haiku", "claude-3-5-sonnet", "claude-3-7-sonnet",
        "claude-sonnet-4", "claude-opus-4", "claude-opus-4-1", "claude-3-opus",
        "claude-3-haiku", "claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5",
        "gemini-1.5-pro", "gemini-1.5-flash", "gemini-2.0-flash", "gemini-2.5-pro",
        "gemini-2.5-flash", "mistral-large", "mistral-small", "codestral", "deepseek-chat",
        "deepseek-reasoner",
    ):  # fmt: skip
        assert required in builtin, required


# -- cost arithmetic -------------------------------------------------------------------


def test_model_price_defaults_and_cost() -> None:
    price = ModelPrice(input=2.0, output=8.0)
    assert (price.cache_read_price, price.cache_write_price, price.reasoning_price) == (2, 2, 8)
    cost = price.cost(TokenUsage(input_tokens=1000, output_tokens=100))
    assert cost.input_usd == approx(0.002)
    assert cost.output_usd == approx(0.0008)
    assert cost.total_usd == approx(0.0028)


def test_cost_clamps_uncached_input_and_visible_output() -> None:
    price = ModelPrice(input=1.0, output=1.0, cache_read=0.5, reasoning=2.0)
    cost = price.cost(
        TokenUsage(
            input_tokens=100,
            output_tokens=10,
            cache_read_input_tokens=300,
            reasoning_output_tokens=50,
        )
    )
    assert cost.input_usd == 0.0
    assert cost.cache_read_usd == approx(300 * 0.5 / 1e6)
    assert cost.output_usd == approx(50 * 2.0 / 1e6)


@pytest.mark.parametrize(
    "kwargs",
    [{"input": -1, "output": 1}, {"input": 1, "output": float("nan")}, {"input": "1", "output": 1}],
)
def test_model_price_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ModelPrice(**kwargs)  # type: ignore[arg-type]


def test_read_usage() -> None:
    assert read_usage({GEN_AI_REQUEST_MODEL: "gpt-4o"}) is None
    assert read_usage({GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 5}) is None
    assert read_usage({GEN_AI_USAGE_INPUT_TOKENS: 7}) == TokenUsage(input_tokens=7)
    legacy = read_usage({GEN_AI_USAGE_PROMPT_TOKENS: 3, GEN_AI_USAGE_COMPLETION_TOKENS: 4.0})
    assert legacy == TokenUsage(input_tokens=3, output_tokens=4)
    current_wins = read_usage({GEN_AI_USAGE_INPUT_TOKENS: 9, GEN_AI_USAGE_PROMPT_TOKENS: 3})
    assert current_wins == TokenUsage(input_tokens=9)
    assert read_usage({GEN_AI_USAGE_INPUT_TOKENS: -1, GEN_AI_USAGE_OUTPUT_TOKENS: True}) is None


def test_a_count_of_zero_is_usage_and_wins_over_a_legacy_key() -> None:
    # A call that reported 0 tokens was used and costs $0: it is not "without usage", and
    # its 0 is not replaced by a stale legacy count.
    assert read_usage({GEN_AI_USAGE_INPUT_TOKENS: 0, GEN_AI_USAGE_OUTPUT_TOKENS: 0}) == \
        TokenUsage()
    assert read_usage({GEN_AI_USAGE_INPUT_TOKENS: 0, GEN_AI_USAGE_PROMPT_TOKENS: 50,
                       GEN_AI_USAGE_OUTPUT_TOKENS: 0.0}) == TokenUsage()


# -- files -----------------------------------------------------------------------------

LITELLM_SAMPLE: dict[str, object] = {
    "sample_spec": {
        "max_tokens": "LEGACY parameter. set to max_output_tokens if provider specifies it.",
        "input_cost_per_token": 0.0000,
        "output_cost_per_token": 0.000,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "mode": "one of: chat, embedding, completion, image_generation, ...",
        "supports_function_calling": True,
    },
    "gpt-4o": {
        "max_tokens": 16384,
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-06,
        "litellm_provider": "openai",
        "mode": "chat",
        "supports_vision": True,
    },
    "azure/gpt-4o": {
        "input_cost_per_token": 2.75e-06,
        "output_cost_per_token": 1.1e-05,
        "litellm_provider": "azure",
        "mode": "chat",
    },
    "claude-3-5-sonnet-20241022": {
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_read_input_token_cost": 3e-07,
        "litellm_provider": "anthropic",
        "mode": "chat",
    },
    "o1": {
        "input_cost_per_token": 1.5e-05,
        "output_cost_per_token": 6e-05,
        "output_cost_per_reasoning_token": 6e-05,
        "cache_read_input_token_cost": 7.5e-06,
        "litellm_provider": "openai",
        "mode": "chat",
    },
    "text-embedding-3-small": {
        "input_cost_per_token": 2e-08,
        "output_cost_per_token": 0.0,
        "litellm_provider": "openai",
        "mode": "embedding",
    },
    "dall-e-3": {
        "input_cost_per_pixel": 4.0054321e-08,
        "output_cost_per_pixel": 0.0,
        "litellm_provider": "openai",
        "mode": "image_generation",
    },
    "whisper-1": {
        "input_cost_per_second": 0.0001,
        "output_cost_per_second": 0.0001,
        "litellm_provider": "openai",
        "mode": "audio_transcription",
    },
}


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_litellm_file(tmp_path: Path) -> None:
    table = PriceTable.from_file(write_json(tmp_path / "model_prices.json", LITELLM_SAMPLE))
    assert sorted(table) == [
        "azure/gpt-4o",
        "claude-3-5-sonnet-20241022",
        "gpt-4o",
        "o1",
        "text-embedding-3-small",
    ]
    assert table.get("gpt-4o") == ModelPrice(
        input=2.5, output=10.0, cache_read=1.25, provider="openai"
    )
    assert table.get("claude-3-5-sonnet-20241022") == ModelPrice(
        input=3.0, output=15.0, cache_read=0.3, cache_write=3.75, provider="anthropic"
    )
    assert table.get("o1") == ModelPrice(
        input=15.0, output=60.0, cache_read=7.5, reasoning=60.0, provider="openai"
    )
    assert table.get("text-embedding-3-small") == ModelPrice(
        input=0.02, output=0.0, provider="openai"
    )
    # Provider-qualified keys win when the span's provider says so.
    azure = table.resolve("gpt-4o", "azure.ai.openai")
    assert azure is not None and azure.model == "azure/gpt-4o"
    openai = table.resolve("gpt-4o", "openai")
    assert openai is not None and openai.model == "gpt-4o"
    dated = table.resolve("gpt-4o-2024-08-06", "azure.ai.openai")
    assert dated is not None and dated.model == "azure/gpt-4o"
    snapshot = table.resolve("claude-3-5-sonnet-20241022", "anthropic")
    assert snapshot is not None and snapshot.model == "claude-3-5-sonnet-20241022"


def test_our_format_yaml_with_aliases(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "version: 1\n"
        "as_of: 2026-11-01\n"  # unquoted: YAML reads a date
        "models:\n"
        "  Acme-Large:\n"
        "    input: 4\n"
        "    output: 12.5\n"
        "    cache_read: 0.4\n"
        "    provider: acme\n"
        "    aliases: [acme-l, acme-large-v1]\n",
        encoding="utf-8",
    )
    table = PriceTable.from_file(path)
    assert table.as_of == date(2026, 11, 1)
    assert table.get("acme-large") == ModelPrice(4, 12.5, cache_read=0.4, provider="acme")
    resolved = table.resolve("ACME-L")
    assert resolved is not None and resolved.model == "acme-large"


def test_user_file_overrides_and_extends_builtin(tmp_path: Path, builtin: PriceTable) -> None:
    path = write_json(
        tmp_path / "prices.json",
        {
            "version": 1,
            "as_of": "2099-01-01",
            "models": {
                "gpt-4o": {"input": 1.0, "output": 2.0, "provider": "openai"},
                "claude-sonnet-4": {"input": 9.0, "output": 9.0},
                "in-house-7b": {"input": 0.01, "output": 0.02, "aliases": ["ih7"]},
            },
        },
    )
    table = load_price_table(path)
    assert table.as_of == date(2099, 1, 1)
    assert table.sources[-1] == str(path)
    over = table.resolve("gpt-4o-2024-08-06")
    assert over is not None and over.price.input == 1.0
    assert table.get("in-house-7b") == table.get("ih7") == ModelPrice(0.01, 0.02)
    assert table.get("gpt-4.1") == builtin.get("gpt-4.1")  # untouched builtin entry
    alias = table.resolve("claude-sonnet-4-0")  # builtin alias follows the override
    assert alias is not None and alias.price.input == 9.0
    assert builtin.get("gpt-4o") == ModelPrice(2.5, 10.0, cache_read=1.25, provider="openai")


def test_merge_user_alias_replaces_builtin_entry() -> None:
    base = PriceTable({"x": ModelPrice(1, 1), "y": ModelPrice(2, 2)}, aliases={"x-alt": "x"})
    user = PriceTable({"z": ModelPrice(3, 3)}, aliases={"x": "z"})
    merged = base.merged_with(user)
    assert merged.get("x") == ModelPrice(3, 3)
    assert merged.get("x-alt") == ModelPrice(3, 3)
    assert merged.get("y") == ModelPrice(2, 2)


def test_merge_with_litellm_file(tmp_path: Path) -> None:
    table = load_price_table(write_json(tmp_path / "litellm.json", LITELLM_SAMPLE))
    resolved = table.resolve("o1-2024-12-17")
    assert resolved is not None and resolved.price.reasoning == 60.0
    assert table.get("claude-opus-4-5") is not None  # builtin still there


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must be a mapping at the top level"),
        ('{"prices": {}}', "is not a recognized price table"),
        ('{"models": {"m": {"input": 1}}}', "entry 'm': missing 'output'"),
        ('{"models": {"m": {"input": -1, "output": 1}}}', "entry 'm': input must be"),
        ('{"models": {"m": {"input": "cheap", "output": 1}}}', "entry 'm': input must be"),
        ('{"models": {"m": {"input": 1, "output": 1, "cache_reads": 1}}}', "'cache_reads'"),
        ('{"models": {"m": [1, 2]}}', "entry 'm': must be a mapping"),
        ('{"models": {"m": {"input": 1, "output": 1}}, "modles": {}}', "'modles'"),
        ('{"as_of": "Nov 2026", "models": {}}', "'as_of' must be an ISO date"),
        (
            '{"models": {"a": {"input": 1, "output": 1}, "b": {"input": 1, "output": 1,'
            ' "aliases": ["a"]}}}',
            "alias 'a' is also a model entry",
        ),
        (
            '{"gpt-x": {"input_cost_per_token": "lots", "litellm_provider": "openai"}}',
            "entry 'gpt-x': 'input_cost_per_token' must be a number",
        ),
        (
            '{"gpt-x": {"input_cost_per_token": -1e-6, "litellm_provider": "openai"}}',
            "entry 'gpt-x': 'input_cost_per_token' must be >= 0",
        ),
    ],
)
def test_bad_files_name_the_file_and_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PriceFileError) as caught:
        PriceTable.from_file(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n", encoding="utf-8")
    with pytest.raises(PriceFileError, match="is not valid YAML"):
        PriceTable.from_file(bad)
    with pytest.raises(PriceFileError, match="cannot be read"):
        PriceTable.from_file(tmp_path / "missing.json")


# -- the processor in a real chain -----------------------------------------------------


@dataclass
class Pipeline:
    provider: TracerProvider
    exporter: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def emit(self, attributes: Mapping[str, AttributeValue], name: str = "chat") -> ReadableSpan:
        self.exporter.clear()
        with self.provider.get_tracer("test").start_as_current_span(name, attributes=attributes):
            pass
        assert self.provider.force_flush(5000)
        (span,) = self.exporter.get_finished_spans()
        return span

    def counter(self, name: str) -> dict[frozenset[tuple[str, object]], float]:
        data = self.metrics.get_metrics_data()
        points: dict[frozenset[tuple[str, object]], float] = {}
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            points[frozenset(point.attributes.items())] = point.value  # type: ignore[union-attr]
        return points


class Raising(EnrichingSpanProcessor):
    stage = "boom"

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        raise RuntimeError("analysis exploded")


def make_pipeline(
    background: bool,
    *,
    prices: PriceTable | None = None,
    before: tuple[EnrichingSpanProcessor, ...] = (),
    drops: list[tuple[str, str]] | None = None,
    resource: Resource | None = None,
) -> Iterator[Pipeline]:
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource or Resource.create({}), shutdown_on_exit=False)
    cost = CostProcessor(prices=prices, meter_provider=meter_provider)
    provider.add_span_processor(
        build_chain(
            [*before, cost],
            [SimpleSpanProcessor(exporter)],
            background=background,
            on_drop=None if drops is None else lambda stage, reason: drops.append((stage, reason)),
        )
    )
    yield Pipeline(provider, exporter, metrics)
    provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture(params=[False, True], ids=["sync", "background"])
def pipeline(request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    yield from make_pipeline(request.param)


def genai(model: str, provider: str = "openai", **usage: int) -> dict[str, AttributeValue]:
    keys = {
        "input": GEN_AI_USAGE_INPUT_TOKENS,
        "output": GEN_AI_USAGE_OUTPUT_TOKENS,
        "cache_read": GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        "cache_creation": GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        "reasoning": GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    }
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: "chat",
        GEN_AI_PROVIDER_NAME: provider,
        GEN_AI_REQUEST_MODEL: model,
    }
    attributes.update({keys[k]: v for k, v in usage.items()})
    return attributes


def test_openai_span_priced(pipeline: Pipeline) -> None:
    attributes = genai("gpt-4o", input=1200, output=300, cache_read=200)
    attributes[GEN_AI_RESPONSE_MODEL] = "gpt-4o-2024-08-06"
    attributes[LLMTRACE_TENANT_ID] = "acme"
    span = pipeline.emit(attributes)
    got = span.attributes or {}
    # gpt-4o: input 2.50, cached input 1.25, output 10.00 per 1M
    assert got[LLMTRACE_COST_INPUT_USD] == approx(1000 * 2.5 / 1e6)  # 0.0025
    assert got[LLMTRACE_COST_CACHE_READ_USD] == approx(200 * 1.25 / 1e6)  # 0.00025
    assert got[LLMTRACE_COST_CACHE_CREATION_USD] == 0.0
    assert got[LLMTRACE_COST_OUTPUT_USD] == approx(300 * 10.0 / 1e6)  # 0.003
    assert got[LLMTRACE_COST_USD] == approx(0.00575)
    assert got[LLMTRACE_COST_PRICING_MODEL] == "gpt-4o"
    for key, value in attributes.items():  # originals kept
        assert got[key] == value
    assert pipeline.counter(COST_METRIC) == {
        frozenset({("tenant", "acme"), ("model", "gpt-4o")}): approx(0.00575)
    }


def test_anthropic_span_with_cache_tokens(pipeline: Pipeline) -> None:
    # Semconv: input_tokens is the total, including cache reads and cache writes.
    attributes = genai(
        "claude-sonnet-4-20250514",
        provider="anthropic",
        input=10_000,
        cache_read=6_000,
        cache_creation=3_000,
        output=500,
    )
    got = pipeline.emit(attributes).attributes or {}
    # claude-sonnet-4: input 3.00, cache read 0.30, cache write 3.75, output 15.00 per 1M
    uncached = 1_000 * 3.00 / 1e6  # 0.003
    read = 6_000 * 0.30 / 1e6  # 0.0018
    write = 3_000 * 3.75 / 1e6  # 0.01125
    output = 500 * 15.00 / 1e6  # 0.0075
    assert got[LLMTRACE_COST_INPUT_USD] == approx(uncached)
    assert got[LLMTRACE_COST_CACHE_READ_USD] == approx(read)
    assert got[LLMTRACE_COST_CACHE_CREATION_USD] == approx(write)
    assert got[LLMTRACE_COST_OUTPUT_USD] == approx(output)
    assert got[LLMTRACE_COST_USD] == approx(0.02355)
    assert got[LLMTRACE_COST_PRICING_MODEL] == "claude-sonnet-4"
    assert pipeline.counter(COST_METRIC) == {
        frozenset({("tenant", "default"), ("model", "claude-sonnet-4")}): approx(0.02355)
    }


def test_reasoning_tokens_priced_as_output_by_default(pipeline: Pipeline) -> None:
    got = pipeline.emit(genai("o3-mini", input=100, output=1000, reasoning=800)).attributes or {}
    # o3-mini: input 1.10, output 4.40; reasoning tokens are output tokens
    assert got[LLMTRACE_COST_OUTPUT_USD] == approx(1000 * 4.40 / 1e6)
    assert got[LLMTRACE_COST_USD] == approx((100 * 1.10 + 1000 * 4.40) / 1e6)


@pytest.mark.parametrize("background", [False, True])
def test_reasoning_tokens_with_own_price(background: bool) -> None:
    prices = PriceTable({"thinker": ModelPrice(input=1.0, output=4.0, reasoning=8.0)})
    for pipeline in make_pipeline(background, prices=prices):
        got = pipeline.emit(genai("thinker", input=0, output=1000, reasoning=600)).attributes
        assert got is not None
        assert got[LLMTRACE_COST_OUTPUT_USD] == approx((400 * 4.0 + 600 * 8.0) / 1e6)
        assert got[LLMTRACE_COST_USD] == approx(0.0064)


def test_legacy_usage_and_system_attributes(pipeline: Pipeline) -> None:
    span = pipeline.emit(
        {
            GEN_AI_SYSTEM: "openai",
            GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            GEN_AI_USAGE_PROMPT_TOKENS: 1000,
            GEN_AI_USAGE_COMPLETION_TOKENS: 1000,
        }
    )
    got = span.attributes or {}
    assert got[LLMTRACE_COST_USD] == approx((1000 * 0.15 + 1000 * 0.60) / 1e6)


def test_request_model_used_when_response_model_unknown(pipeline: Pipeline) -> None:
    attributes = genai("gpt-4.1", input=1000)
    attributes[GEN_AI_RESPONSE_MODEL] = "my-private-deployment-name"
    got = pipeline.emit(attributes).attributes or {}
    assert got[LLMTRACE_COST_PRICING_MODEL] == "gpt-4.1"
    assert got[LLMTRACE_COST_USD] == approx(1000 * 2.0 / 1e6)


def test_non_genai_span_untouched(pipeline: Pipeline) -> None:
    attributes: dict[str, AttributeValue] = {
        "http.request.method": "GET",
        GEN_AI_USAGE_INPUT_TOKENS: 10,  # usage alone does not make a GenAI span
        GEN_AI_REQUEST_MODEL: "gpt-4o",
    }
    span = pipeline.emit(attributes, name="GET /health")
    assert dict(span.attributes or {}) == attributes
    assert pipeline.counter(COST_METRIC) == {}


def test_span_without_usage_gets_no_cost(pipeline: Pipeline) -> None:
    attributes = genai("gpt-4o")
    span = pipeline.emit(attributes)
    assert dict(span.attributes or {}) == attributes
    assert not any(key in (span.attributes or {}) for key in COST_KEYS)


def test_unknown_model_not_priced_but_counted(pipeline: Pipeline) -> None:
    attributes = genai("mystery-model-9000", provider="acme", input=10, output=10)
    span = pipeline.emit(attributes)
    assert dict(span.attributes or {}) == attributes
    pipeline.emit(genai("mystery-model-9000", provider="acme", input=1))
    assert pipeline.counter(UNPRICED_METRIC) == {frozenset({("provider", "acme")}): 2}
    assert pipeline.counter(COST_METRIC) == {}


def test_already_priced_span_is_not_repriced(pipeline: Pipeline) -> None:
    attributes = genai("gpt-4o", input=1000, output=1000)
    attributes[LLMTRACE_COST_USD] = 123.0
    span = pipeline.emit(attributes)
    assert dict(span.attributes or {}) == attributes
    assert pipeline.counter(COST_METRIC) == {}


@pytest.mark.parametrize("background", [False, True])
def test_tenant_from_resource(background: bool) -> None:
    resource = Resource.create({LLMTRACE_TENANT_ID: "team-r"})
    for pipeline in make_pipeline(background, resource=resource):
        pipeline.emit(genai("gpt-4o", input=1000))
        assert pipeline.counter(COST_METRIC) == {
            frozenset({("tenant", "team-r"), ("model", "gpt-4o")}): approx(0.0025)
        }


@pytest.mark.parametrize("background", [False, True])
def test_raising_processor_before_cost_does_not_stop_export(background: bool) -> None:
    drops: list[tuple[str, str]] = []
    for pipeline in make_pipeline(background, before=(Raising(),), drops=drops):
        span = pipeline.emit(genai("gpt-4o", input=1000, output=100))
        got = span.attributes or {}
        assert got[LLMTRACE_COST_USD] == approx((1000 * 2.5 + 100 * 10.0) / 1e6)
        assert drops == [("boom", "processor_error")]


def test_prometheus_series_name_and_labels() -> None:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    meter_provider = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        build_chain(
            [CostProcessor(meter_provider=meter_provider)],
            [SimpleSpanProcessor(exporter)],
            background=False,
        )
    )
    tracer = provider.get_tracer("test")
    attributes = genai("gpt-4o", input=1000, output=500)
    attributes[LLMTRACE_TENANT_ID] = "acme"
    for _ in range(2):
        with tracer.start_as_current_span("chat gpt-4o", attributes=attributes):
            pass
    with tracer.start_as_current_span("chat x", attributes=genai("unknown-x", input=1)):
        pass
    text = generate_latest(registry).decode()
    lines = [line for line in text.splitlines() if line.startswith("llmtrace_cost")]
    (cost_line,) = [line for line in lines if line.startswith("llmtrace_cost_usd_total{")]
    assert 'tenant="acme"' in cost_line and 'model="gpt-4o"' in cost_line
    assert float(cost_line.rsplit(" ", 1)[1]) == approx(2 * 0.0075)
    assert "# TYPE llmtrace_cost_usd_total counter" in text
    (unpriced,) = [line for line in lines if line.startswith("llmtrace_cost_unpriced_total{")]
    assert 'provider="openai"' in unpriced and unpriced.endswith(" 1.0")
    provider.shutdown()
    meter_provider.shutdown()


def test_default_prices_are_builtin() -> None:
    processor = CostProcessor()
    assert processor.prices.get("gpt-4o") == PriceTable.builtin().get("gpt-4o")
