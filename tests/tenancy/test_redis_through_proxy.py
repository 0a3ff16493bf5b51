"""Several proxy instances sharing one real Redis, and what happens when it is down."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import RunningProxy, running_proxy
from tests.tenancy.conftest import dead_redis_url
from tests.tenancy.receiver import Receiver
from tests.tenancy.support import Clock, chat, metric, settle, use_clock
from tests.tenancy.test_budgets_through_proxy import CALL_USD


def _status(proxy: RunningProxy, **kwargs: object) -> int:
    try:
        chat(proxy, **kwargs)  # type: ignore[arg-type]
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


def test_two_instances_enforce_one_limit_under_concurrency(upstream: FakeUpstream,
                                                          tmp_path: Path,
                                                          redis_url: str) -> None:
    """40 calls at once, spread over two instances, against a burst of 10: exactly 10 pass."""
    shared = {"state_backend": "redis", "redis_url": redis_url, "requests_per_s": 0.001,
              "request_burst": 10, "redis_timeout_s": 5}  # exactness, not latency, here
    with running_proxy(upstream.url, tmp_path / "a", **shared) as a, \
            running_proxy(upstream.url, tmp_path / "b", **shared) as b:
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda i: _status(a if i % 2 else b, tenant="shared"),
                                     range(40)))
        assert statuses.count(200) == 10 and statuses.count(429) == 30
        refused = metric(a, "llmtrace_rate_limited_total", tenant="shared") + \
            metric(b, "llmtrace_rate_limited_total", tenant="shared")
    assert refused == 30


def test_spend_recorded_by_one_instance_stops_the_other(upstream: FakeUpstream,
                                                        tmp_path: Path,
                                                        redis_url: str) -> None:
    clock = Clock()
    shared = {"state_backend": "redis", "redis_url": redis_url, "redis_timeout_s": 5,
              "budget_daily_hard_usd": CALL_USD * 1.5}
    with running_proxy(upstream.url, tmp_path / "a", **shared) as a, \
            running_proxy(upstream.url, tmp_path / "b", **shared) as b:
        use_clock(a, clock)
        use_clock(b, clock)
        chat(a, tenant="t")
        chat(b, tenant="t")  # spend 2 x CALL_USD, over the hard limit
        settle(a, 1)
        settle(b, 1)
        assert _status(a, tenant="t") == 429
        assert _status(b, tenant="t") == 429
        with urllib.request.urlopen(f"{a.url}/api/v1/budgets?tenant=t", timeout=10) as r:
            report = json.loads(r.read())
    daily = next(w for w in report["tenants"][0]["windows"] if w["window"] == "daily")
    assert report["backend"] == "redis"
    assert daily["calls"] == 2 and daily["spend_usd"] == pytest.approx(2 * CALL_USD)


def _health(proxy: RunningProxy) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(f"{proxy.url}/health", timeout=10) as response:
        return json.loads(response.read())


def test_redis_down_fails_open_counted_and_on_health(upstream: FakeUpstream,
                                                     tmp_path: Path) -> None:
    with Receiver() as hook, running_proxy(
            upstream.url, tmp_path, state_backend="redis", redis_url=dead_redis_url(),
            requests_per_s=0.001, request_burst=1, budget_daily_hard_usd=1.0,
            alert_webhook_url=hook.url) as proxy:
        assert _health(proxy)["status"] == "healthy"
        statuses = [_status(proxy, tenant="t") for _ in range(3)]
        assert statuses == [200, 200, 200]  # limits unenforceable: traffic flows
        settle(proxy, 3)
        health = _health(proxy)
        assert metric(proxy, "llmtrace_limits_degraded_total", backend="redis",
                      operation="admit") == 3
        assert metric(proxy, "llmtrace_limits_degraded_total", backend="redis",
                      operation="add_spend") == 3
        [alert] = hook.wait_for(1)  # one alert for the outage: the others cooled down
        assert metric(proxy, "llmtrace_alerts_total", kind="state_backend_degraded",
                      outcome="cooldown") == 2
    assert alert.body["kind"] == "state_backend_degraded"
    assert alert.body["severity"] == "error" and alert.body["tenant"] == "*"
    assert "calls are passing without limits" in alert.body["summary"]
    assert health["status"] == "degraded"
    component = health["components"]["guard.tenancy"]
    assert component["state"] == "failing" and component["backend"] == "redis"
    assert component["on_backend_error"] == "open"
    assert component["spend_records_lost"] == 3
    assert "admit: " in component["last_error"]


def test_redis_down_fails_closed_when_configured(upstream: FakeUpstream,
                                                 tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path, state_backend="redis",
                       redis_url=dead_redis_url(), requests_per_s=100,
                       limits_on_backend_error="closed") as proxy:
        with pytest.raises(openai.InternalServerError) as caught:
            chat(proxy, tenant="t")
        assert caught.value.status_code == 503
        assert caught.value.body["code"] == "limits_unavailable"  # type: ignore[index]
        assert caught.value.response.headers["retry-after"] == "1"
    assert upstream.requests == []


def test_redis_recovers_without_restart(upstream: FakeUpstream, tmp_path: Path,
                                        redis_url: str) -> None:
    with running_proxy(upstream.url, tmp_path, state_backend="redis",
                       redis_url=dead_redis_url(), requests_per_s=0.001,
                       request_burst=1, redis_timeout_s=5) as proxy:
        assert _status(proxy, tenant="t") == 200
        assert _health(proxy)["status"] == "degraded"
        from tests.tenancy.support import tenancy_guard
        backend = tenancy_guard(proxy).backend
        backend.url = redis_url  # type: ignore[attr-defined]  # the server "comes back"
        backend._client = None  # type: ignore[attr-defined]
        backend._down_until = 0.0  # type: ignore[attr-defined]
        assert [_status(proxy, tenant="t") for _ in range(2)] == [200, 429]
        assert _health(proxy)["status"] == "healthy"
