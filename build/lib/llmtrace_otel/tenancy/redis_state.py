"""The Redis state backend: one limit shared by every proxy instance.

Each admission is one Lua script (atomic on the server, one round trip): it reads the
spend of the budget windows with a hard limit and, only when none is exhausted, refills
and takes from every token bucket, all or nothing. Spend is added with ``HINCRBYFLOAT``
(atomic per window key; the new total comes back, so exactly one instance sees a
threshold being crossed). No value is ever read, changed in Python and written back.

Keys carry the tenant as a hash tag (``llmtrace:{team-a}|rl|requests``), so all keys of
one admission live in one Redis Cluster slot. Times are the instances' clocks (epoch
seconds passed to the script), so instances should run NTP; a skew only shifts refills
by the skew.

Availability: a failed or timed-out call raises :class:`StateUnavailable`; after a
failure the backend does not try again for ``retry_interval_s`` (every call in between
fails at once instead of waiting for a timeout). What a failure means for traffic (fail
open or closed) is the guard's decision.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from llmtrace_otel.tenancy.state import (
    Admission,
    Bucket,
    BucketState,
    SpendKey,
    SpendTotals,
    StateUnavailable,
)

__all__ = ["RedisBackend"]

_log = logging.getLogger(__name__)

_ADMIT = """
local now = tonumber(ARGV[1])
local ns = tonumber(ARGV[2])
local out = {'1'}
for i = 1, ns do
  local usd = tonumber(redis.call('HGET', KEYS[i], 'usd')) or 0
  out[#out + 1] = tostring(usd)
  local hard = tonumber(ARGV[2 + i])
  if hard >= 0 and usd >= hard then out[1] = '0' end
end
if out[1] == '0' then return out end
local base = 2 + ns
local nb = #KEYS - ns
local cur = {}
local allowed = true
for j = 1, nb do
  local cap = tonumber(ARGV[base + 3 * j - 2])
  local rate = tonumber(ARGV[base + 3 * j - 1])
  local cost = tonumber(ARGV[base + 3 * j])
  local held = redis.call('HMGET', KEYS[ns + j], 't', 's')
  local t = tonumber(held[1])
  local s = tonumber(held[2])
  if t == nil then
    t = cap
    s = now
  elseif now > s then
    t = math.min(cap, t + (now - s) * rate)
    s = now
  end
  cur[j] = {t, s, cap, rate, cost}
  if t < cost then allowed = false end
end
for j = 1, nb do
  local t, s, cap, rate, cost = cur[j][1], cur[j][2], cur[j][3], cur[j][4], cur[j][5]
  local retry = 0
  if t < cost then retry = (cost - t) / rate end
  if allowed then t = t - cost end
  local full = math.max(0, cap - t) / rate
  redis.call('HSET', KEYS[ns + j], 't', tostring(t), 's', tostring(s))
  redis.call('PEXPIRE', KEYS[ns + j], math.ceil(full * 1000) + 1000)
  out[#out + 1] = tostring(t)
  out[#out + 1] = tostring(retry)
  out[#out + 1] = tostring(full)
end
return out
"""

_ADJUST = """
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local rate = tonumber(ARGV[3])
local delta = tonumber(ARGV[4])
local held = redis.call('HMGET', KEYS[1], 't', 's')
local t = tonumber(held[1])
local s = tonumber(held[2])
if t == nil then
  t = cap
  s = now
elseif now > s then
  t = math.min(cap, t + (now - s) * rate)
  s = now
end
t = math.min(cap, t - delta)
redis.call('HSET', KEYS[1], 't', tostring(t), 's', tostring(s))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(0, cap - t) / rate * 1000) + 1000)
return tostring(t)
"""

_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)


class RedisBackend:
    """State in Redis via ``redis.asyncio``: checks never block the event loop.

    The client is created on first use, on the loop that uses it (asyncio connections
    belong to one loop).
    """

    name = "redis"

    def __init__(self, url: str, *, timeout_s: float = 0.25, retry_interval_s: float = 1.0,
                 max_connections: int = 16, clock: Any = time.monotonic) -> None:
        self.url = url
        self._max_connections = max_connections
        self._timeout = timeout_s
        self._retry_interval = retry_interval_s
        self._clock = clock
        self._client: redis_asyncio.Redis | None = None
        self._admit: Any = None
        self._adjust: Any = None
        self._down_until = 0.0
        #: Health, read by /health: errors so far, the latest one, whether it is down now.
        self.errors = 0
        self.last_error: str | None = None
        self.available = True

    def _connect(self) -> redis_asyncio.Redis:
        if self._client is None:
            # A bounded pool: a burst of calls queues for a connection (each script takes
            # microseconds on the server) instead of opening hundreds of them at once.
            pool = redis_asyncio.BlockingConnectionPool.from_url(
                self.url, max_connections=self._max_connections, timeout=self._timeout,
                socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0), health_check_interval=0, decode_responses=True)
            self._client = redis_asyncio.Redis(connection_pool=pool)
            self._admit = self._client.register_script(_ADMIT)
            self._adjust = self._client.register_script(_ADJUST)
        return self._client

    async def _call(self, operation: str, run: Any) -> Any:
        if not self.available and self._clock() < self._down_until:
            raise StateUnavailable(f"redis unavailable ({self.last_error}); retrying later")
        try:
            self._connect()
            result = await run()
        except _ERRORS as exc:
            self.errors += 1
            self.last_error = f"{operation}: {type(exc).__name__}: {exc}"
            if self.available:
                _log.warning("redis state backend %s failed: %s", self.url, self.last_error)
            self.available = False
            self._down_until = self._clock() + self._retry_interval
            raise StateUnavailable(self.last_error) from None
        if not self.available:
            _log.warning("redis state backend %s is reachable again", self.url)
            self.available = True
        return result

    async def ping(self) -> bool:
        return bool(await self._call("ping", lambda: self._connect().ping()))

    async def admit(self, buckets: Sequence[Bucket], spend: Sequence[SpendKey],
                    now: float) -> Admission:
        keys = [s.key for s in spend] + [b.key for b in buckets]
        args: list[Any] = [repr(now), len(spend)]
        args.extend(repr(-1.0 if s.hard_usd is None else s.hard_usd) for s in spend)
        for b in buckets:
            args.extend((repr(b.capacity), repr(b.rate_per_s), repr(b.cost)))
        reply = await self._call("admit", lambda: self._admit(keys=keys, args=args))
        totals = tuple(float(v) for v in reply[1:1 + len(spend)])
        if reply[0] != "1":
            return Admission(totals, False, ())
        rest = reply[1 + len(spend):]
        states = tuple(BucketState(float(rest[i]), float(rest[i + 1]), float(rest[i + 2]))
                       for i in range(0, len(rest), 3))
        return Admission(totals, True, states)

    async def adjust(self, bucket: Bucket, delta: float, now: float) -> None:
        args = [repr(now), repr(bucket.capacity), repr(bucket.rate_per_s), repr(delta)]
        await self._call("adjust", lambda: self._adjust(keys=[bucket.key], args=args))

    async def add_spend(self, keys: Sequence[SpendKey], usd: float | None,
                        now: float) -> tuple[float, ...]:
        async def run() -> list[Any]:
            pipe = self._connect().pipeline(transaction=False)
            for key in keys:
                pipe.hincrbyfloat(key.key, "usd", usd or 0.0)
                pipe.hincrby(key.key, "calls", 1)
                pipe.hincrby(key.key, "unpriced", 1 if usd is None else 0)
                pipe.expireat(key.key, math.ceil(key.expires_at))
            return list(await pipe.execute())

        reply = await self._call("add_spend", run)
        return tuple(float(reply[i]) for i in range(0, len(reply), 4))

    async def read_spend(self, keys: Sequence[str], now: float) -> tuple[SpendTotals, ...]:
        async def run() -> list[Any]:
            pipe = self._connect().pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, "usd", "calls", "unpriced")
            return list(await pipe.execute())

        reply = await self._call("read_spend", run)
        return tuple(SpendTotals(float(usd or 0), int(calls or 0), int(unpriced or 0))
                     for usd, calls, unpriced in reply)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_ERRORS):
                await client.aclose(close_connection_pool=True)
