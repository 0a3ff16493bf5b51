"""Budgets through the running proxy: spend from the cost processor, soft alerts to a real
local Slack receiver, hard 429s until the window resets, and GET /api/v1/budgets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import openai
import pytest

from llmtrace_processors.cost import PriceTable, TokenUsage
from tests.support.fake_upstream import MODEL_SUFFIX, FakeUpstream
from tests.support.proxy_harness import running_proxy
from tests.tenancy.receiver import Receiver
from tests.tenancy.support import Clock, chat, get_json, metric, settle, use_clock

#: What one "ok" call to gpt-4o-mini costs (12 input, 6 output tokens at list price).
_PRICE = PriceTable.builtin().resolve("gpt-4o-mini" + MODEL_SUFFIX, "openai")
assert _PRICE is not None
CALL_USD = _PRICE.cost(TokenUsage(input_tokens=12, output_tokens=6)).total_usd
#: 2030-06-12 23:59:00 UTC: a minute before the daily window resets.
BEFORE_MIDNIGHT = datetime(2030, 6, 12, 23, 59, tzinfo=UTC).timestamp()


def test_soft_alerts_slack_hard_refuses_until_the_window_resets(upstream: FakeUpstream,
                                                                 tmp_path: Path) -> None:
    clock = Clock(BEFORE_MIDNIGHT)
    with Receiver() as slack, running_proxy(
            upstream.url, tmp_path, budget_daily_soft_usd=CALL_USD * 1.5,
            budget_daily_hard_usd=CALL_USD * 3.5, alert_slack_webhook_url=slack.url,
            alert_backoff_s=0.01) as proxy:
        use_clock(proxy, clock)
        chat(proxy, tenant="team-a")
        settle(proxy, 1)
        assert slack.received == []  # under the soft limit
        chat(proxy, tenant="team-a")  # crosses the soft limit: alert, call passes
        settle(proxy, 2)
        [alert] = slack.wait_for(1)
        assert alert.headers["content-type"] == "application/json"
        assert alert.body["text"].startswith(":warning: [warning] tenant team-a reached its "
                                             "daily soft budget")
        blocks = alert.body["blocks"]
        assert blocks[0] == {"type": "section",
                             "text": {"type": "mrkdwn", "text": alert.body["text"]}}
        assert {"type": "mrkdwn", "text": "*Tenant*\nteam-a"} in blocks[1]["fields"]
        assert {"type": "mrkdwn", "text": "*resets_at*\n2030-06-13T00:00:00Z"} in \
            blocks[1]["fields"]
        chat(proxy, tenant="team-a")
        chat(proxy, tenant="team-a")  # crosses the hard limit (this call still passed)
        settle(proxy, 4)
        assert "hard budget" in slack.wait_for(2)[1].body["text"]
        with pytest.raises(openai.RateLimitError) as caught:
            chat(proxy, tenant="team-a")
        assert caught.value.response.headers["retry-after"] == "60"
        body = caught.value.body
        assert body["code"] == "budget_exceeded"  # type: ignore[index]
        assert "tenant team-a has spent $" in body["message"]  # type: ignore[index]
        assert "resets at 2030-06-13T00:00:00Z" in body["message"]  # type: ignore[index]
        chat(proxy, tenant="team-b")  # other tenants are not affected
        clock.advance(61)  # a new day: a new window
        chat(proxy, tenant="team-a")
        settle(proxy, 7)
        assert metric(proxy, "llmtrace_budget_exceeded_total", tenant="team-a",
                      window="daily", scope="tenant") == 1
        assert metric(proxy, "llmtrace_alert_deliveries_total", channel="slack",
                      outcome="sent") == 2
        errors = [(s.attributes or {}).get("error.type") for s in proxy.spans(7)]
    assert errors.count("budget_exceeded") == 1


def test_agent_budgets_refuse_only_that_agent(upstream: FakeUpstream, tmp_path: Path) -> None:
    clock = Clock()
    tenants = {"team-a": {"agents": {"batch": {"budgets": {"hourly": {"hard_usd": CALL_USD}}},
                                     "*": {"budgets": {"hourly": {"hard_usd": CALL_USD * 10}}}}}}
    with running_proxy(upstream.url, tmp_path, tenants=tenants) as proxy:
        use_clock(proxy, clock)
        chat(proxy, tenant="team-a", agent="batch")
        settle(proxy, 1)
        with pytest.raises(openai.RateLimitError) as caught:
            chat(proxy, tenant="team-a", agent="batch")
        assert "agent batch of tenant team-a has spent" in caught.value.body["message"]  # type: ignore[index]
        chat(proxy, tenant="team-a", agent="chat")  # the wildcard agent budget has room
        chat(proxy, tenant="team-a")  # no agent: tenant budgets only (none)
        settle(proxy, 4)
        status, report = get_json(f"{proxy.url}/api/v1/budgets?tenant=team-a")
    assert status == 200
    scopes = {(t["tenant"], t["agent"]): t for t in report["tenants"]}
    batch = scopes[("team-a", "batch")]["windows"]
    assert [w["window"] for w in batch] == ["hourly"]
    assert batch[0]["state"] == "hard_exceeded" and batch[0]["calls"] == 1
    tenant_windows = {w["window"]: w for w in scopes[("team-a", None)]["windows"]}
    assert tenant_windows["daily"]["calls"] == 3  # the refused call cost nothing
    assert tenant_windows["daily"]["spend_usd"] == pytest.approx(3 * CALL_USD)


def test_budgets_api_shows_spend_limits_utilisation_and_reset(upstream: FakeUpstream,
                                                              tmp_path: Path) -> None:
    clock = Clock()  # 2030-06-12 12:00 UTC, a Wednesday
    tenants = {"team-a": {"budgets": {"monthly": {"soft_usd": CALL_USD * 2,
                                                  "hard_usd": CALL_USD * 4}}}}
    with running_proxy(upstream.url, tmp_path, budget_daily_hard_usd=1.0,
                       api_admin_token="adm1n-0123456789abcdef", tenants=tenants) as proxy:
        use_clock(proxy, clock)
        chat(proxy, tenant="team-a")
        chat(proxy, tenant="team-a")
        chat(proxy, tenant="team-b")
        # a model without a price: an unpriced call, not $0
        from tests.tenancy.support import client
        client(proxy, tenant="team-b").chat.completions.create(
            model="acme-unknown-model", messages=[{"role": "user", "content": "x"}])
        settle(proxy, 4)
        url = f"{proxy.url}/api/v1/budgets"
        assert get_json(url)[0] == 401
        assert get_json(url, token="wrong")[0] == 401
        status, report = get_json(url, token="adm1n-0123456789abcdef")
        assert get_json(f"{url}?tenant=bad%20id", token="adm1n-0123456789abcdef")[0] == 400
    assert status == 200 and report["enabled"] is True and report["backend"] == "memory"
    tenants_seen = {t["tenant"]: {w["window"]: w for w in t["windows"]}
                    for t in report["tenants"]}
    assert set(tenants_seen) == {"team-a", "team-b"}
    monthly = tenants_seen["team-a"]["monthly"]
    assert monthly["spend_usd"] == pytest.approx(2 * CALL_USD)
    assert monthly["soft_usd"] == pytest.approx(CALL_USD * 2)
    assert monthly["utilisation"] == pytest.approx(0.5)
    assert monthly["state"] == "soft_exceeded"
    assert monthly["window_start"] == "2030-06-01T00:00:00Z"
    assert monthly["resets_at"] == "2030-07-01T00:00:00Z"
    daily = tenants_seen["team-a"]["daily"]
    assert daily["hard_usd"] == 1.0 and daily["resets_in_s"] == 12 * 3600
    weekly = tenants_seen["team-b"]["weekly"]
    assert weekly["window_start"] == "2030-06-10T00:00:00Z"  # Monday
    assert weekly["calls"] == 2 and weekly["unpriced_calls"] == 1
    assert weekly["spend_usd"] == pytest.approx(CALL_USD)
    assert weekly["hard_usd"] is None and weekly["utilisation"] is None


def test_budgets_api_without_budgets_and_never_forwarded(upstream: FakeUpstream,
                                                         tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        status, report = get_json(f"{proxy.url}/api/v1/budgets")
    assert (status, report) == (200, {"enabled": False, "tenants": []})
    assert upstream.requests == []


def test_budget_gauges_answer_the_dashboard_and_alert_rule(upstream: FakeUpstream,
                                                           tmp_path: Path) -> None:
    """The Grafana panel and the Prometheus rule divide spend by limit per tenant: both
    gauges exist with the labels those expressions use (checked with their own parser)."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.test_dashboards import expressions, selectors

    with running_proxy(upstream.url, tmp_path, budget_daily_hard_usd=CALL_USD * 4,
                       budget_monthly_soft_usd=1.0) as proxy:
        chat(proxy, tenant="team-a")
        chat(proxy, tenant="team-a")
        settle(proxy, 2)
        text = proxy.metrics_text()
        assert metric(proxy, "llmtrace_budget_spend_usd", tenant="team-a",
                      window="daily") == pytest.approx(2 * CALL_USD)
        assert metric(proxy, "llmtrace_budget_limit_usd", tenant="team-a",
                      window="daily") == pytest.approx(4 * CALL_USD)
        assert metric(proxy, "llmtrace_budget_limit_usd", tenant="team-a",
                      window="monthly") == 1.0
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    budget_exprs = [e for _, e in expressions() if "llmtrace_budget_" in e]
    assert len(budget_exprs) >= 2
    for expr in budget_exprs:
        for name, matched in selectors(expr):
            assert name in labels and matched <= labels[name], (expr, name)
