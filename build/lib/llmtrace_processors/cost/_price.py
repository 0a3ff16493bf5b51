"""Value types of cost analysis: a model's prices, a call's token usage, the cost breakdown.

Prices are USD per one million tokens. Token counts follow the GenAI semantic
conventions: ``input_tokens`` is the *total* input including cached tokens, and
``output_tokens`` the total output including reasoning tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CostBreakdown", "ModelPrice", "PriceFileError", "TokenUsage"]

_PER_TOKENS = 1_000_000


class PriceFileError(ValueError):
    """A price file (or mapping) that cannot be used, naming where and what is wrong."""

    def __init__(self, origin: str, message: str, *, entry: str | None = None) -> None:
        where = f"price file {origin}" if entry is None else f"price file {origin}, entry {entry!r}"
        super().__init__(f"{where}: {message}")
        self.origin = origin
        self.entry = entry


def _check_price(name: str, value: float | None, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number (USD per 1M tokens), got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """List prices of one model in USD per 1M tokens.

    ``cache_read`` and ``cache_write`` default to the input price and ``reasoning`` to
    the output price when not set (None).
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    provider: str | None = None

    def __post_init__(self) -> None:
        _check_price("input", self.input, optional=False)
        _check_price("output", self.output, optional=False)
        _check_price("cache_read", self.cache_read, optional=True)
        _check_price("cache_write", self.cache_write, optional=True)
        _check_price("reasoning", self.reasoning, optional=True)

    @property
    def cache_read_price(self) -> float:
        return self.input if self.cache_read is None else self.cache_read

    @property
    def cache_write_price(self) -> float:
        return self.input if self.cache_write is None else self.cache_write

    @property
    def reasoning_price(self) -> float:
        return self.output if self.reasoning is None else self.reasoning

    def cost(self, usage: TokenUsage) -> CostBreakdown:
        """The cost of ``usage`` at these prices.

        Uncached input is ``input - cache_read - cache_creation`` clamped at 0, and
        non-reasoning output is ``output - reasoning`` clamped at 0.
        """
        cached = usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        uncached = max(0, usage.input_tokens - cached)
        visible_output = max(0, usage.output_tokens - usage.reasoning_output_tokens)
        return CostBreakdown(
            input_usd=uncached * self.input / _PER_TOKENS,
            cache_read_usd=usage.cache_read_input_tokens * self.cache_read_price / _PER_TOKENS,
            cache_creation_usd=(
                usage.cache_creation_input_tokens * self.cache_write_price / _PER_TOKENS
            ),
            output_usd=(
                visible_output * self.output + usage.reasoning_output_tokens * self.reasoning_price
            )
            / _PER_TOKENS,
        )


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one call, in semconv meaning (totals include the detail counts)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "reasoning_output_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class CostBreakdown:
    """USD cost of one call, by part. ``output_usd`` includes reasoning tokens."""

    input_usd: float
    cache_read_usd: float
    cache_creation_usd: float
    output_usd: float

    @property
    def total_usd(self) -> float:
        return self.input_usd + self.cache_read_usd + self.cache_creation_usd + self.output_usd
