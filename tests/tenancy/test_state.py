"""The state backends, memory and a real Redis, held to the same contract."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from llmtrace_otel.tenancy.redis_state import RedisBackend
from llmtrace_otel.tenancy.state import Bucket, MemoryBackend, SpendKey, StateBackend
from tests.tenancy.conftest import dead_redis_url

T0 = 1_800_000_000.0
#: Generous: these tests check exactness under concurrency, not latency, and CI machines
#: can be busy (the product default is 0.25 s).
TIMEOUT_S = 5.0


def _make(kind: str, url: str | None) -> StateBackend:
    return MemoryBackend() if kind == "memory" else RedisBackend(url or "", timeout_s=TIMEOUT_S)


@pytest.fixture(params=["memory", "redis"])
def backend_factory(request: pytest.FixtureRequest) -> Callable[[], StateBackend]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return lambda: _make(request.param, url)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


REQ = Bucket("t|{a}|rl|requests", capacity=3, rate_per_s=1.0, cost=1)


def test_bucket_allows_capacity_then_refuses_then_refills(
        backend_factory: Callable[[], StateBackend]) -> None:
    async def scenario() -> None:
        backend = backend_factory()
        try:
            results = [await backend.admit([REQ], [], T0) for _ in range(4)]
            assert [r.allowed for r in results] == [True, True, True, False]
            assert [round(r.buckets[0].remaining) for r in results] == [2, 1, 0, 0]
            assert results[3].buckets[0].retry_after_s == pytest.approx(1.0)
            assert results[2].buckets[0].full_in_s == pytest.approx(3.0)
            # half a token later: still refused, and told to wait the other half
            half = await backend.admit([REQ], [], T0 + 0.5)
            assert not half.allowed and half.buckets[0].retry_after_s == pytest.approx(0.5)
            assert (await backend.admit([REQ], [], T0 + 1.0)).allowed
            assert not (await backend.admit([REQ], [], T0 + 1.0)).allowed
            # never more than the capacity, however long it waited
            later = [await backend.admit([REQ], [], T0 + 1000) for _ in range(4)]
            assert [r.allowed for r in later] == [True, True, True, False]
        finally:
            await backend.aclose()
    run(scenario())


def test_all_or_nothing_across_buckets_and_debt(backend_factory: Callable[[], StateBackend]
                                                ) -> None:
    tokens = Bucket("t|{a}|rl|tokens", capacity=100, rate_per_s=100 / 60, cost=80)

    async def scenario() -> None:
        backend = backend_factory()
        try:
            assert (await backend.admit([REQ, tokens], [], T0)).allowed
            refused = await backend.admit([REQ, tokens], [], T0)  # 20 tokens left < 80
            assert not refused.allowed
            assert refused.buckets[0].retry_after_s == 0  # the request bucket had room...
            # ...and was not charged for the refused call: two more requests fit
            small = Bucket(tokens.key, 100, 100 / 60, 0)
            assert (await backend.admit([REQ, small], [], T0)).allowed
            assert (await backend.admit([REQ, small], [], T0)).allowed
            # reconciliation: the call used 150 tokens, not 80 -> bucket in debt (-50)
            await backend.adjust(small, 70, T0)
            debt = await backend.admit([small], [], T0)
            assert not debt.allowed and debt.buckets[0].remaining == pytest.approx(-50)
            assert debt.buckets[0].retry_after_s == pytest.approx(30.0)  # 50 at 100/min
            # a refund never fills past the capacity
            await backend.adjust(small, -1000, T0)
            assert (await backend.admit([small], [], T0)).buckets[0].remaining == 100
        finally:
            await backend.aclose()
    run(scenario())


def test_spend_add_read_and_hard_limit(backend_factory: Callable[[], StateBackend]) -> None:
    day = SpendKey("t|{a}|sp|daily|1", hard_usd=1.0, expires_at=T0 + 3600)
    hour = SpendKey("t|{a}|sp|hourly|1", hard_usd=None, expires_at=T0 + 3600)

    async def scenario() -> None:
        backend = backend_factory()
        try:
            assert await backend.add_spend([day, hour], 0.25, T0) == (0.25, 0.25)
            assert await backend.add_spend([day, hour], None, T0) == (0.25, 0.25)  # unpriced
            assert await backend.add_spend([day, hour], 0.75, T0) == (1.0, 1.0)
            totals = await backend.read_spend([day.key, hour.key, "t|{a}|none"], T0)
            assert [(t.usd, t.calls, t.unpriced) for t in totals] == [
                (1.0, 3, 1), (1.0, 3, 1), (0.0, 0, 0)]
            refused = await backend.admit([REQ], [day, hour], T0)
            assert not refused.budget_ok and not refused.allowed and refused.spend == (1.0, 1.0)
            # the request bucket was not touched by the refused call
            assert [(await backend.admit([REQ], [], T0)).allowed for _ in range(4)] == [
                True, True, True, False]
            assert (await backend.admit([], [hour], T0)).budget_ok  # no hard limit
        finally:
            await backend.aclose()
    run(scenario())


def test_memory_spend_expires_with_its_window() -> None:
    async def scenario() -> None:
        backend = MemoryBackend()
        key = SpendKey("k", hard_usd=1.0, expires_at=T0 + 10)
        await backend.add_spend([key], 5.0, T0)
        assert not (await backend.admit([], [key], T0 + 9)).budget_ok
        assert (await backend.admit([], [key], T0 + 10)).budget_ok
        assert (await backend.read_spend(["k"], T0 + 10))[0].usd == 0.0
    run(scenario())


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_concurrent_admissions_never_exceed_the_limit(kind: str,
                                                      request: pytest.FixtureRequest) -> None:
    """200 admissions at once against a bucket of 50: exactly 50 pass (Redis: over 4
    clients, as 4 instances would)."""
    url = request.getfixturevalue("redis_url") if kind == "redis" else None
    bucket = Bucket("c|{t}|rl|requests", capacity=50, rate_per_s=1e-6, cost=1)

    async def scenario() -> int:
        backends = [_make(kind, url) for _ in range(4 if kind == "redis" else 1)]
        try:
            results = await asyncio.gather(*(
                backends[i % len(backends)].admit([bucket], [], T0) for i in range(200)))
            return sum(r.allowed for r in results)
        finally:
            for backend in backends:
                await backend.aclose()
    assert run(scenario()) == 50


def test_concurrent_spend_is_not_lost(redis_url: str) -> None:
    key = SpendKey("s|{t}|sp|daily|0", hard_usd=None, expires_at=T0 + 86400)

    async def scenario() -> tuple[float, int]:
        backends = [RedisBackend(redis_url, timeout_s=TIMEOUT_S) for _ in range(4)]
        try:
            await asyncio.gather(*(backends[i % 4].add_spend([key], 0.01, T0)
                                   for i in range(400)))
            totals = await backends[0].read_spend([key.key], T0)
            return totals[0].usd, totals[0].calls
        finally:
            for backend in backends:
                await backend.aclose()
    usd, calls = run(scenario())
    assert calls == 400 and usd == pytest.approx(4.0)


def test_redis_down_raises_state_unavailable_fast_and_recovers(redis_url: str) -> None:
    from llmtrace_otel.tenancy.state import StateUnavailable

    async def scenario() -> None:
        clock = [0.0]
        backend = RedisBackend(dead_redis_url(), retry_interval_s=1.0, clock=lambda: clock[0])
        with pytest.raises(StateUnavailable, match="admit"):
            await backend.admit([REQ], [], T0)
        assert backend.errors == 1 and not backend.available
        # within the retry interval nothing is tried: the error count does not move
        with pytest.raises(StateUnavailable, match="retrying later"):
            await backend.admit([REQ], [], T0)
        assert backend.errors == 1
        # the server comes back (same backend, pointed at a live one) after the interval
        backend.url = redis_url
        backend._client = None
        clock[0] = 1.5
        assert (await backend.admit([REQ], [], T0)).allowed
        assert backend.available
        await backend.aclose()
    run(scenario())
