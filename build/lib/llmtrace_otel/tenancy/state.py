"""Where limits and spend live: the :class:`StateBackend` protocol and the in-memory backend.

One call's admission is one backend operation (:meth:`StateBackend.admit`): read the
spend of the budget windows that have a hard limit and, only if none is exhausted, take
from every token bucket (requests/s, tokens/min) at once, all or nothing. The Redis
backend (:mod:`llmtrace_otel.tenancy.redis_state`) does the same in one Lua script, so
several proxy instances enforce one limit without read-modify-write races.

Token buckets: ``capacity`` tokens, refilled continuously at ``rate_per_s``; a call that
costs ``cost`` passes when the bucket holds at least that much. :meth:`adjust` charges
or refunds afterwards (tokens/min reconciled from usage); a bucket may go into debt,
which later calls wait out.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Admission",
    "Bucket",
    "BucketState",
    "MemoryBackend",
    "SpendKey",
    "SpendTotals",
    "StateBackend",
    "StateUnavailable",
    "refill",
]


class StateUnavailable(Exception):
    """The shared state could not be reached (Redis down, timeout)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    capacity: float
    rate_per_s: float
    cost: float


@dataclass(frozen=True, slots=True)
class BucketState:
    remaining: float  # after this call (negative: in debt)
    retry_after_s: float  # 0 when the call fits; else until ``cost`` is available
    full_in_s: float  # until the bucket is full again


@dataclass(frozen=True, slots=True)
class SpendKey:
    key: str
    hard_usd: float | None  # checked at admission; None: read only
    expires_at: float  # epoch seconds: the window's end plus a margin


@dataclass(frozen=True, slots=True)
class SpendTotals:
    usd: float = 0.0
    calls: int = 0
    unpriced: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    spend: tuple[float, ...]  # per spend key given to admit
    budget_ok: bool  # no hard limit reached
    buckets: tuple[BucketState, ...]  # empty when the budget refused

    @property
    def allowed(self) -> bool:
        return self.budget_ok and all(b.retry_after_s == 0 for b in self.buckets)


class StateBackend(Protocol):
    """Shared state of the limits; every method is one atomic operation."""

    @property
    def name(self) -> str: ...

    async def admit(self, buckets: Sequence[Bucket], spend: Sequence[SpendKey],
                    now: float) -> Admission: ...

    async def adjust(self, bucket: Bucket, delta: float, now: float) -> None:
        """Take ``delta`` more tokens (negative: give back), capped at capacity."""
        ...

    async def add_spend(self, keys: Sequence[SpendKey], usd: float | None,
                        now: float) -> tuple[float, ...]:
        """Add one call (``usd`` None: unpriced) to each key; return the new USD totals."""
        ...

    async def read_spend(self, keys: Sequence[str], now: float) -> tuple[SpendTotals, ...]: ...

    async def aclose(self) -> None: ...


def refill(tokens: float | None, stamp: float, capacity: float, rate: float,
           now: float) -> tuple[float, float]:
    """A bucket's (tokens, stamp) at ``now``; an unknown bucket starts full."""
    if tokens is None:
        return capacity, now
    if now > stamp:
        return min(capacity, tokens + (now - stamp) * rate), now
    return tokens, stamp


def _bucket_state(tokens: float, cost: float, capacity: float, rate: float,
                 allowed: bool) -> BucketState:
    after = tokens - cost if allowed else tokens
    retry = 0.0 if tokens >= cost else (cost - tokens) / rate
    return BucketState(after, retry, max(0.0, capacity - after) / rate)


_SWEEP_EVERY = 4096


class MemoryBackend:
    """State in this process (the default): exact, fast, not shared between instances."""

    name = "memory"

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float, float, float]] = {}  # tokens, stamp, cap, rate
        self._spend: dict[str, tuple[float, int, int, float]] = {}  # usd, calls, unpriced, expiry
        self._lock = threading.Lock()
        self._ops = 0

    async def admit(self, buckets: Sequence[Bucket], spend: Sequence[SpendKey],
                    now: float) -> Admission:
        with self._lock:
            self._tick(now)
            totals = tuple(self._usd(s.key, now) for s in spend)
            budget_ok = all(s.hard_usd is None or total < s.hard_usd
                            for s, total in zip(spend, totals, strict=True))
            if not budget_ok:
                return Admission(totals, False, ())
            current = []
            for b in buckets:
                held = self._buckets.get(b.key)
                tokens, stamp = refill(held[0] if held else None, held[1] if held else now,
                                       b.capacity, b.rate_per_s, now)
                current.append((tokens, stamp))
            allowed = all(tokens >= b.cost for (tokens, _), b in zip(current, buckets,
                                                                     strict=True))
            states = []
            for (tokens, stamp), b in zip(current, buckets, strict=True):
                state = _bucket_state(tokens, b.cost, b.capacity, b.rate_per_s, allowed)
                self._buckets[b.key] = (state.remaining, stamp, b.capacity, b.rate_per_s)
                states.append(state)
            return Admission(totals, True, tuple(states))

    async def adjust(self, bucket: Bucket, delta: float, now: float) -> None:
        with self._lock:
            held = self._buckets.get(bucket.key)
            tokens, stamp = refill(held[0] if held else None, held[1] if held else now,
                                   bucket.capacity, bucket.rate_per_s, now)
            self._buckets[bucket.key] = (min(bucket.capacity, tokens - delta), stamp,
                                         bucket.capacity, bucket.rate_per_s)

    async def add_spend(self, keys: Sequence[SpendKey], usd: float | None,
                        now: float) -> tuple[float, ...]:
        with self._lock:
            self._tick(now)
            totals = []
            for key in keys:
                held = self._spend.get(key.key)
                if held is None or held[3] <= now:
                    held = (0.0, 0, 0, key.expires_at)
                total = held[0] + (usd or 0.0)
                self._spend[key.key] = (total, held[1] + 1, held[2] + (usd is None), held[3])
                totals.append(total)
            return tuple(totals)

    async def read_spend(self, keys: Sequence[str], now: float) -> tuple[SpendTotals, ...]:
        with self._lock:
            out = []
            for key in keys:
                held = self._spend.get(key)
                out.append(SpendTotals() if held is None or held[3] <= now
                           else SpendTotals(held[0], held[1], held[2]))
            return tuple(out)

    async def aclose(self) -> None:
        return None

    def _usd(self, key: str, now: float) -> float:
        held = self._spend.get(key)
        return 0.0 if held is None or held[3] <= now else held[0]

    def _tick(self, now: float) -> None:
        """Every few thousand operations, forget expired windows and full idle buckets."""
        self._ops += 1
        if self._ops % _SWEEP_EVERY:
            return
        for key in [k for k, v in self._spend.items() if v[3] <= now]:
            del self._spend[key]
        for key in [k for k, (tokens, stamp, cap, rate) in self._buckets.items()
                    if tokens + (now - stamp) * rate >= cap]:
            del self._buckets[key]
