"""Prices and token counts are checked where they enter: a wrong one would be a wrong bill.

The value types of cost analysis (``ModelPrice``, ``TokenUsage``) refuse what cannot be a
price or a count, whether built in code or read from a price file; every price a model
may have (input, output, cache read/write, reasoning) is checked, not only the two that
every model has.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest import approx

from llmtrace_processors.cost import ModelPrice, PriceFileError, PriceTable, TokenUsage

COUNTS = ("input_tokens", "output_tokens", "cache_read_input_tokens",
          "cache_creation_input_tokens", "reasoning_output_tokens")
OPTIONAL_PRICES = ("cache_read", "cache_write", "reasoning")


@pytest.mark.parametrize("field", COUNTS)
@pytest.mark.parametrize("bad", [-1, True, 1.5, "12", None])
def test_a_token_count_must_be_a_whole_number_of_at_least_zero(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=f"{field} must be an int >= 0, got {bad!r}"):
        TokenUsage(**{field: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", COUNTS)
def test_counts_default_to_zero_and_zero_costs_nothing(field: str) -> None:
    usage = TokenUsage()
    assert getattr(usage, field) == 0
    assert ModelPrice(input=3.0, output=15.0).cost(usage).total_usd == 0.0
    assert getattr(TokenUsage(**{field: 0}), field) == 0  # zero itself is a valid count


@pytest.mark.parametrize("field", ["input", "output"])
@pytest.mark.parametrize("bad", [None, -0.01, float("inf"), float("nan"), True, "2.5"])
def test_input_and_output_prices_are_required_numbers(field: str, bad: object) -> None:
    prices: dict[str, object] = {"input": 1.0, "output": 2.0, field: bad}
    with pytest.raises(ValueError, match=f"^{field} must be"):
        ModelPrice(**prices)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", OPTIONAL_PRICES)
@pytest.mark.parametrize("bad", [-0.5, float("inf"), float("nan"), False, "1"])
def test_optional_prices_are_checked_when_given(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        ModelPrice(input=1.0, output=2.0, **{field: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", OPTIONAL_PRICES)
def test_an_optional_price_of_zero_is_free_not_unset(field: str) -> None:
    price = ModelPrice(input=1.0, output=2.0, **{field: 0})
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000,
                       cache_read_input_tokens=200_000, cache_creation_input_tokens=300_000,
                       reasoning_output_tokens=400_000)
    cost = price.cost(usage)
    part = {"cache_read": cost.cache_read_usd, "cache_write": cost.cache_creation_usd,
            "reasoning": cost.output_usd - 600_000 * 2.0 / 1e6}[field]
    assert part == 0.0


@pytest.mark.parametrize("field", OPTIONAL_PRICES)
def test_a_price_file_with_a_negative_optional_price_is_refused_naming_it(
        tmp_path: Path, field: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"my-model": {"input": 1, "output": 2,
                                                        field: -1}}}))
    with pytest.raises(PriceFileError) as caught:
        PriceTable.from_file(path)
    assert f"entry 'my-model': {field} must be a finite number >= 0, got -1" in str(caught.value)


def test_every_part_of_a_bill_at_its_own_price() -> None:
    price = ModelPrice(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75, reasoning=20.0)
    cost = price.cost(TokenUsage(input_tokens=10_000, output_tokens=2_000,
                                 cache_read_input_tokens=4_000,
                                 cache_creation_input_tokens=1_000,
                                 reasoning_output_tokens=500))
    assert cost.input_usd == approx(5_000 * 3.0 / 1e6)  # 10,000 - 4,000 read - 1,000 written
    assert cost.cache_read_usd == approx(4_000 * 0.3 / 1e6)
    assert cost.cache_creation_usd == approx(1_000 * 3.75 / 1e6)
    assert cost.output_usd == approx((1_500 * 15.0 + 500 * 20.0) / 1e6)
    assert cost.total_usd == approx(0.015 + 0.0012 + 0.00375 + 0.0325)


# -- the resolution cache (docs/pricing.md: a bounded LRU per table, default 4096) --------


def test_the_cache_keeps_the_most_recently_used_resolutions() -> None:
    table = PriceTable({"a": ModelPrice(1, 1), "b": ModelPrice(2, 2), "c": ModelPrice(3, 3)},
                       cache_size=2)
    a, b = table.resolve("a"), table.resolve("b")
    assert table.resolve("a") is a  # a hit, and now the most recent
    table.resolve("c")  # evicts the least recently used: b, not a
    assert table.resolve("a") is a
    again = table.resolve("b")
    assert again == b and again is not b


@pytest.mark.parametrize(("size", "cached"), [(0, False), (1, True)])
def test_a_cache_of_size_zero_is_off_and_of_one_holds_one(size: int, cached: bool) -> None:
    table = PriceTable({"a": ModelPrice(1, 1)}, cache_size=size)
    first = table.resolve("a")
    assert (table.resolve("a") is first) is cached


def test_a_negative_cache_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_size must be >= 0, got -1"):
        PriceTable({}, cache_size=-1)


def test_the_default_cache_holds_4096_resolutions() -> None:
    table = PriceTable({"a": ModelPrice(1, 1)})
    for index in range(4097):
        table.resolve(f"unknown-{index}")
    assert len(table._cache) == 4096


def test_an_alias_to_a_model_without_prices_is_refused() -> None:
    with pytest.raises(ValueError, match="alias 'gpt-x' points at 'gpt-y', which has no prices"):
        PriceTable({"gpt-4o": ModelPrice(1, 1)}, aliases={"gpt-x": "gpt-y"})


def test_membership_is_by_model_name_only() -> None:
    table = PriceTable({"gpt-4o": ModelPrice(1, 1)}, aliases={"gpt-4o-chat": "gpt-4o"})
    assert "GPT-4o" in table and "gpt-4o-chat" in table
    assert "gpt-5" not in table and 42 not in table and None not in table
