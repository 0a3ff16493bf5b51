"""Rate limits: the token buckets of a call and the ``X-RateLimit-*`` headers.

Two buckets per tenant, both optional:

* ``requests``: capacity ``request_burst`` (default ``max(1, requests_per_s)``), refilled
  at ``requests_per_s``; every call costs 1.
* ``tokens``: capacity ``tokens_per_min``, refilled at ``tokens_per_min / 60`` per second;
  a call costs its ``max_tokens`` up front (capped at the capacity, so a large
  ``max_tokens`` needs a full bucket rather than being refused forever; 0 when the
  request sets none), and is reconciled after the call to the tokens the upstream
  reported (input + output). A call whose upstream reported no usage gets its
  reservation back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

from llmtrace_otel.providers.types import LLMRequest, Usage
from llmtrace_otel.tenancy.policy import RateLimits
from llmtrace_otel.tenancy.state import Admission, Bucket, BucketState

__all__ = ["Limit", "RateLimiter"]


class Limit(StrEnum):
    REQUESTS = "requests"
    TOKENS = "tokens"


def _seconds(value: float) -> str:
    return str(max(1, math.ceil(value)))


class RateLimiter:
    """Builds buckets for one call; knows nothing about where they are stored."""

    __slots__ = ("_prefix",)

    def __init__(self, key_prefix: str) -> None:
        self._prefix = key_prefix

    def key(self, tenant: str, limit: Limit) -> str:
        # The tenant is a Redis Cluster hash tag; "{", "}" and "|" never occur in ids.
        return f"{self._prefix}{{{tenant}}}|rl|{limit.value}"

    def reservation(self, limits: RateLimits, request: LLMRequest | None) -> float:
        """Tokens taken up front: ``max_tokens`` capped at the bucket's capacity."""
        if limits.tokens_per_min <= 0 or request is None or not request.max_tokens:
            return 0.0
        return float(min(request.max_tokens, limits.tokens_per_min))

    def buckets(self, tenant: str, limits: RateLimits,
                request: LLMRequest | None) -> list[tuple[Limit, Bucket]]:
        out: list[tuple[Limit, Bucket]] = []
        if limits.requests_per_s > 0:
            out.append((Limit.REQUESTS, Bucket(self.key(tenant, Limit.REQUESTS),
                                               limits.request_capacity, limits.requests_per_s,
                                               1.0)))
        if limits.tokens_per_min > 0:
            out.append((Limit.TOKENS, Bucket(self.key(tenant, Limit.TOKENS),
                                             limits.tokens_per_min, limits.tokens_per_min / 60,
                                             self.reservation(limits, request))))
        return out

    def token_bucket(self, tenant: str, limits: RateLimits) -> Bucket:
        return Bucket(self.key(tenant, Limit.TOKENS), limits.tokens_per_min,
                      limits.tokens_per_min / 60, 0.0)

    @staticmethod
    def reconciliation(reserved: float, usage: Usage | None) -> float:
        """Tokens to take (positive) or give back (negative) once the call ended."""
        used = 0.0
        if usage is not None:
            used = float((usage.input_tokens or 0) + (usage.output_tokens or 0))
        return used - reserved

    @staticmethod
    def binding(buckets: Sequence[tuple[Limit, Bucket]],
                admission: Admission) -> tuple[Limit, Bucket, BucketState] | None:
        """The bucket to report: the one that refused (longest wait), else the first."""
        if not buckets:
            return None
        pairs = [(limit, bucket, state) for (limit, bucket), state
                 in zip(buckets, admission.buckets, strict=True)]
        refused = [p for p in pairs if p[2].retry_after_s > 0]
        if refused:
            return max(refused, key=lambda p: p[2].retry_after_s)
        return pairs[0]

    @staticmethod
    def headers(bucket: Bucket, state: BucketState) -> list[tuple[str, str]]:
        """``X-RateLimit-Limit`` (capacity), ``-Remaining`` (whole tokens left) and
        ``-Reset`` (seconds until the bucket is full again)."""
        return [
            ("X-RateLimit-Limit", str(math.floor(bucket.capacity))),
            ("X-RateLimit-Remaining", str(max(0, math.floor(state.remaining)))),
            ("X-RateLimit-Reset", str(math.ceil(state.full_in_s))),
        ]

    @staticmethod
    def retry_after(state: BucketState) -> str:
        return _seconds(state.retry_after_s)
