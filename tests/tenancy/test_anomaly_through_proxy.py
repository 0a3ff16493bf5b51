"""A spike through the running proxy becomes a finding on the span, a metric and an alert."""

from __future__ import annotations

from pathlib import Path

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy
from tests.tenancy.receiver import Receiver
from tests.tenancy.support import chat, metric, settle


def test_token_and_cost_spike_is_flagged_and_alerted(upstream: FakeUpstream,
                                                      tmp_path: Path) -> None:
    with Receiver() as hook, running_proxy(
            upstream.url, tmp_path, anomaly_enabled=True, anomaly_min_samples=5,
            alert_webhook_url=hook.url) as proxy:
        for _ in range(6):
            chat(proxy, tenant="team-a")  # 18 tokens each
        chat(proxy, tenant="team-b", scenario="cache")  # another tenant: no history yet
        chat(proxy, tenant="team-a", scenario="cache")  # 2012 tokens: a spike for team-a
        settle(proxy, 8)
        spans = proxy.spans(8)
        alerts = hook.wait_for(2)
        assert metric(proxy, "llmtrace_anomalies_total", anomaly_type="tokens",
                      tenant="team-a") == 1
        assert metric(proxy, "llmtrace_anomalies_total", anomaly_type="cost",
                      tenant="team-a") == 1
    spike = spans[-1]
    assert (spike.attributes or {})["llmtrace.tenant.id"] == "team-a"
    assert set((spike.attributes or {})["llmtrace.anomaly.types"]) >= {"tokens", "cost"}  # type: ignore[arg-type]
    events = {e.attributes["llmtrace.anomaly.type"]: e for e in spike.events  # type: ignore[index]
              if e.name == "llmtrace.anomaly"}
    assert events["tokens"].attributes["llmtrace.anomaly.value"] == 2012  # type: ignore[index]
    assert events["tokens"].attributes["llmtrace.anomaly.mean"] == 18  # type: ignore[index]
    assert not any("llmtrace.anomaly.types" in (s.attributes or {})
                   and "tokens" in s.attributes["llmtrace.anomaly.types"]  # type: ignore[index,operator]
                   for s in spans[:-1])
    kinds = sorted(a.body["subject"] for a in alerts if a.body["kind"] == "anomaly")
    assert {"cost", "tokens"} <= set(kinds)
    tokens_alert = next(a.body for a in alerts if a.body["subject"] == "tokens")
    assert tokens_alert["tenant"] == "team-a" and tokens_alert["severity"] == "warning"
    assert "tokens 2012 is" in tokens_alert["summary"]
