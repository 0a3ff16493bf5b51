"""Rate limits as a client sees them: admitted or 429, ``Retry-After`` and ``X-RateLimit-*``.

The real TenancyGuard (in-memory state, the process default) on a clock the test moves,
called the way the proxy calls it: ``check`` before the upstream call, ``on_complete``
after it with what the upstream reported. Each scenario is one a user would notice if it
were wrong: a limit header off by one, a refund that never comes, the wrong limit named.
The same guard through the running proxy is in test_tenants_through_proxy.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from tornado.httputil import HTTPHeaders

from llmtrace_otel.config.tenants import TenantOverrides
from llmtrace_otel.guards import CallInfo, CallResult
from llmtrace_otel.providers.types import LLMRequest, LLMResponse, Operation, Usage
from llmtrace_otel.tenancy.guard import TenancyGuard
from llmtrace_otel.tenancy.identity import TENANT_HEADER, TenantResolver
from llmtrace_otel.tenancy.metrics import TenancyInstruments
from llmtrace_otel.tenancy.policy import PolicyBook, RateLimits, TenantPolicy
from llmtrace_otel.tenancy.state import MemoryBackend
from llmtrace_otel.web.errors import ErrorReply
from tests.tenancy.support import NOON, Clock

#: The test's calls come from 127.0.0.1, a caller trusted to name its tenant in the header.
LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)

TENANT = "team-a"


@dataclass(frozen=True)
class Answer:
    """What the client gets from the guard: its headers, and the refusal if any."""

    headers: dict[str, str]
    refused: ErrorReply | None

    @property
    def limit(self) -> str:
        return self.headers["X-RateLimit-Limit"]

    @property
    def remaining(self) -> str:
        return self.headers["X-RateLimit-Remaining"]

    @property
    def reset(self) -> str:
        return self.headers["X-RateLimit-Reset"]


class Tenant:
    """One tenant's calls through a TenancyGuard with ``limits``, on its own loop."""

    def __init__(self, limits: RateLimits) -> None:
        self.clock = Clock(NOON)
        meter = MeterProvider().get_meter("test")
        self.guard = TenancyGuard(
            TenantResolver("default", trusted=LOCAL),
            PolicyBook(TenantPolicy(limits), TenantOverrides()), MemoryBackend(),
            TenancyInstruments(meter, lambda tenant: tenant),
            clock=self.clock)
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.run_until_complete(self.guard.aclose())
        self.loop.close()

    def _call(self, max_tokens: int | None) -> CallInfo:
        request = LLMRequest(operation=Operation.CHAT, max_tokens=max_tokens)
        return CallInfo("POST", "/v1/chat/completions", HTTPHeaders({TENANT_HEADER: TENANT}),
                        "openai.chat_completions", "openai", request, "127.0.0.1")

    def ask(self, max_tokens: int | None = None) -> Answer:
        verdict = self.loop.run_until_complete(self.guard.check(self._call(max_tokens)))
        assert verdict is not None
        if verdict.reject is not None:
            return Answer(dict(verdict.reject.headers), verdict.reject)
        return Answer(dict(verdict.response_headers), None)

    def done(self, max_tokens: int | None, usage: Usage | None) -> None:
        """The upstream answered with ``usage``; the guard settles the tokens bucket."""
        result = CallResult(200, LLMResponse(usage=usage), None)

        async def complete() -> None:  # on the loop, as the proxy calls it
            self.guard.on_complete(self._call(max_tokens), result)
            await self.guard.drain()

        self.loop.run_until_complete(complete())

    def call(self, max_tokens: int | None, usage: Usage | None) -> Answer:
        answer = self.ask(max_tokens)
        assert answer.refused is None, answer.refused
        self.done(max_tokens, usage)
        return answer


@pytest.fixture
def tenant(request: pytest.FixtureRequest) -> Iterator[Tenant]:
    made = Tenant(request.param)
    yield made
    made.close()


def limits(**values: float) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("tenant", [RateLimits(**values)], indirect=True)


@limits(requests_per_s=2)
def test_requests_bucket_headers_count_down_and_refill(tenant: Tenant) -> None:
    first = tenant.ask()
    assert (first.limit, first.remaining, first.reset) == ("2", "1", "1")  # full in 0.5 s
    second = tenant.ask()
    assert (second.remaining, second.reset) == ("0", "1")
    refused = tenant.ask()
    assert refused.refused is not None and refused.refused.status == 429
    assert refused.refused.code == "rate_limited"
    assert refused.headers["Retry-After"] == "1"  # 0.5 s rounds up to a whole second
    tenant.clock.advance(0.5)
    assert tenant.ask().remaining == "0"  # one request back after half a second


@limits(requests_per_s=0.3, request_burst=2.5)
def test_fractional_capacity_and_rate_round_the_way_a_client_can_rely_on(
        tenant: Tenant) -> None:
    first = tenant.ask()
    # 2.5 capacity: a client may send 2 (never 3); 1.5 left: 1 whole request; the bucket
    # is full again in 1 / 0.3 = 3.33 s: "Reset" must not promise it in 3.
    assert (first.limit, first.remaining, first.reset) == ("2", "1", "4")
    tenant.ask()
    refused = tenant.ask()
    assert refused.refused is not None
    # 0.5 left, 1 needed at 0.3/s: 1.67 s, so Retry-After 2 (1 would be refused again).
    assert refused.headers["Retry-After"] == "2"
    assert (refused.remaining, refused.reset) == ("0", "7")  # 2.0 missing at 0.3/s: 6.67 s
    tenant.clock.advance(1.6)
    assert tenant.ask().refused is not None
    tenant.clock.advance(0.1)
    assert tenant.ask().refused is None


@limits(tokens_per_min=600)
def test_tokens_are_reserved_up_front_then_settled_to_the_reported_usage(
        tenant: Tenant) -> None:
    first = tenant.ask(max_tokens=100)
    assert (first.limit, first.remaining, first.reset) == ("600", "500", "10")  # 10 tokens/s
    tenant.clock.advance(1.0)  # the call takes a second: 10 tokens refill meanwhile
    tenant.done(100, Usage(input_tokens=12, output_tokens=6))  # 82 of the 100 come back
    # 500 + 10 + 82 = 592 before this call, 492 after its own reservation.
    assert tenant.ask(max_tokens=100).remaining == "492"


@limits(tokens_per_min=600)
def test_a_call_whose_upstream_reported_no_usage_gets_its_reservation_back(
        tenant: Tenant) -> None:
    tenant.call(max_tokens=200, usage=None)
    assert tenant.ask(max_tokens=1).remaining == "599"
    tenant.done(1, Usage())  # usage without counts: nothing used either
    assert tenant.ask(max_tokens=1).remaining == "599"


@pytest.mark.parametrize(("usage", "used"), [
    (Usage(input_tokens=None, output_tokens=30), 30),
    (Usage(input_tokens=40, output_tokens=None), 40),
    (Usage(input_tokens=40, output_tokens=30), 70),
])
@limits(tokens_per_min=600)
def test_a_missing_count_is_charged_as_nothing_the_other_in_full(
        tenant: Tenant, usage: Usage, used: int) -> None:
    tenant.call(max_tokens=None, usage=usage)  # nothing reserved: charged afterwards
    assert tenant.ask().remaining == str(600 - used)


@limits(tokens_per_min=600)
def test_a_max_tokens_above_the_capacity_waits_for_a_full_bucket_not_forever(
        tenant: Tenant) -> None:
    first = tenant.ask(max_tokens=10_000)
    assert first.refused is None and first.remaining == "0"
    tenant.done(10_000, Usage(input_tokens=10, output_tokens=10))  # 580 back
    refused = tenant.ask(max_tokens=10_000)
    assert refused.refused is not None
    assert refused.headers["Retry-After"] == "2"  # 20 tokens missing at 10/s


@limits(tokens_per_min=600)
def test_usage_beyond_the_reservation_is_debt_that_later_calls_wait_out(
        tenant: Tenant) -> None:
    tenant.call(max_tokens=10, usage=Usage(input_tokens=400, output_tokens=400))  # 790 over
    refused = tenant.ask(max_tokens=10)
    assert refused.refused is not None
    assert refused.remaining == "0"  # never a negative count
    assert refused.headers["Retry-After"] == "21"  # from -200 to 10 at 10 tokens/s
    assert refused.reset == "80"  # from -200 to 600


@limits(requests_per_s=1, tokens_per_min=60)
def test_when_both_limits_refuse_the_longer_wait_is_reported(tenant: Tenant) -> None:
    admitted = tenant.ask(max_tokens=60)
    assert admitted.limit == "1"  # admitted: the first limit's headers (requests)
    refused = tenant.ask(max_tokens=60)
    assert refused.refused is not None
    # requests: 1 s to wait; tokens: 60 at 1 token/s. The client is told the truth: 60 s.
    assert refused.headers["Retry-After"] == "60" and refused.limit == "60"
    assert "over its limit of 60 tokens/min" in refused.refused.message


@limits(requests_per_s=0.1, tokens_per_min=600)
def test_when_the_requests_limit_waits_longer_it_is_the_one_named(tenant: Tenant) -> None:
    tenant.ask(max_tokens=590)
    refused = tenant.ask(max_tokens=20)
    assert refused.refused is not None
    # requests: 10 s; tokens: 10 missing at 10/s, 1 s. The requests limit is reported.
    assert refused.headers["Retry-After"] == "10" and refused.limit == "1"
    assert "over its limit of 0.1 requests/s" in refused.refused.message


@limits(tokens_per_min=120)
def test_only_the_tokens_limit_set_gives_the_tokens_headers(tenant: Tenant) -> None:
    answer = tenant.ask(max_tokens=30)
    assert (answer.limit, answer.remaining, answer.reset) == ("120", "90", "15")


@limits()
def test_no_limit_no_headers(tenant: Tenant) -> None:
    assert tenant.ask(max_tokens=10**6) == Answer({}, None)


@limits(tokens_per_min=1)
def test_the_smallest_tokens_limit_still_reserves(tenant: Tenant) -> None:
    first = tenant.ask(max_tokens=5)
    assert (first.limit, first.remaining, first.reset) == ("1", "0", "60")
    refused = tenant.ask(max_tokens=5)
    assert refused.refused is not None and refused.headers["Retry-After"] == "60"


@limits(requests_per_s=10, tokens_per_min=600)
def test_a_short_wait_on_one_limit_is_still_the_limit_reported(tenant: Tenant) -> None:
    tenant.ask(max_tokens=600)  # the tokens bucket is empty, the requests one is not
    refused = tenant.ask(max_tokens=5)  # 5 tokens at 10/s: half a second
    assert refused.refused is not None
    assert refused.limit == "600" and refused.headers["Retry-After"] == "1"
    assert "over its limit of 600 tokens/min" in refused.refused.message
