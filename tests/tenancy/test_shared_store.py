"""Several instances, one product: two proxies on one PostgreSQL store and one Redis. Every call
is stored once whichever proxy served it, each proxy's API (and so its viewer) sees all of
them, and the budget they enforce is one budget."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import RunningProxy, running_proxy
from tests.tenancy.support import Clock, chat, settle, use_clock
from tests.tenancy.test_budgets_through_proxy import CALL_USD


def get(proxy: RunningProxy, path: str) -> Any:
    with urllib.request.urlopen(f"{proxy.url}{path}", timeout=10) as response:
        return json.loads(response.read())


def test_two_proxies_one_store_one_budget(upstream: FakeUpstream, tmp_path: Path,
                                          redis_url: str, postgres_url: str) -> None:
    shared = {"state_backend": "redis", "redis_url": redis_url, "redis_timeout_s": 5,
              "storage_url": postgres_url, "budget_daily_hard_usd": CALL_USD * 19.5}
    clock = Clock()
    with running_proxy(upstream.url, tmp_path / "a", **shared) as a, \
            running_proxy(upstream.url, tmp_path / "b", **shared) as b:
        use_clock(a, clock)
        use_clock(b, clock)
        for i in range(20):
            chat(a if i % 2 else b, tenant="team")
        settle(a, 10)
        settle(b, 10)
        served = {format(span.context.span_id, "016x") for proxy in (a, b)
                  for span in proxy.spans(10)}
        assert len(served) == 20
        for proxy in (a, b):
            page = get(proxy, "/api/v1/traces?limit=500")
            listed = [item["span_id"] for item in page["items"]]
            assert sorted(listed) == sorted(served)  # all 20, each once, on either proxy
            stats = get(proxy, "/api/v1/stats?group_by=tenant")
            assert stats["totals"]["calls"] == 20
            assert [(g["key"], g["calls"]) for g in stats["groups"]] == [("team", 20)]
        # 20 calls cost more than the hard limit: both instances refuse the next one.
        for proxy in (a, b):
            with pytest.raises(openai.APIStatusError) as refused:
                chat(proxy, tenant="team")
            assert refused.value.status_code == 429
        budgets = get(a, "/api/v1/budgets?tenant=team")
    daily = next(w for w in budgets["tenants"][0]["windows"] if w["window"] == "daily")
    assert daily["calls"] == 20 and daily["spend_usd"] == pytest.approx(20 * CALL_USD)
