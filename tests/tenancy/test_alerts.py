"""Alert channels against a real local HTTP receiver: payload shapes (Slack incoming
webhook, PagerDuty Events v2, our webhook), severity routing, cool-down, retries with
backoff, hanging and failing endpoints, bounded queues."""

from __future__ import annotations

import pytest

from llmtrace_otel.tenancy.alerts import Alert, AlertDispatcher, AlertSeverity
from llmtrace_otel.tenancy.notifiers import (
    DeliveryChannel,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
)
from tests.tenancy.receiver import Receiver

ALERT = Alert(kind="budget_soft", severity=AlertSeverity.WARNING, tenant="team-a",
              agent="planner", subject="daily",
              summary="tenant team-a reached its daily soft budget: $5.00 of $5.00",
              details={"window": "daily", "spend_usd": 5.0}, timestamp=1_907_496_000.5)


class Counts:
    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def __call__(self, *labels: str) -> None:
        self.seen.append(labels)


def _deliver(channel: DeliveryChannel, alert: Alert = ALERT) -> None:
    channel.offer(alert)
    assert channel.wait_idle(10)


def test_severity_ranks_compare_as_numbers() -> None:
    assert AlertSeverity.CRITICAL > AlertSeverity.ERROR > AlertSeverity.WARNING > \
        AlertSeverity.INFO
    assert AlertSeverity.parse(" Warning ") is AlertSeverity.WARNING
    with pytest.raises(ValueError, match="expected one of info, warning, error, critical"):
        AlertSeverity.parse("urgent")


def test_pagerduty_events_v2_payload() -> None:
    with Receiver(reply_status=202, reply_body=b'{"status":"success"}') as pd:
        channel = DeliveryChannel(PagerDutyNotifier("R0UTINGKEY", pd.url))
        _deliver(channel)
        [got] = pd.received
        channel.close(5)
    assert got.path == "/hook" and got.headers["content-type"] == "application/json"
    assert got.body == {
        "routing_key": "R0UTINGKEY",
        "event_action": "trigger",
        "dedup_key": "llmtrace|team-a|planner|budget_soft|daily",
        "payload": {
            "summary": ALERT.summary,
            "source": "llmtrace-otel",
            "severity": "warning",
            "timestamp": "2030-06-12T12:00:00.500Z",
            "component": "team-a",
            "group": "planner",
            "class": "budget_soft",
            "custom_details": {"tenant": "team-a", "agent": "planner", "subject": "daily",
                               "window": "daily", "spend_usd": 5.0},
        },
    }


def test_slack_incoming_webhook_payload() -> None:
    with Receiver() as slack:
        channel = DeliveryChannel(SlackNotifier(slack.url))
        _deliver(channel)
        channel.close(5)
    body = slack.received[0].body
    assert set(body) == {"text", "blocks"}
    assert body["text"] == f":warning: [warning] {ALERT.summary}"
    assert body["blocks"][0] == {"type": "section",
                                 "text": {"type": "mrkdwn", "text": body["text"]}}
    assert body["blocks"][1]["type"] == "section"
    assert body["blocks"][1]["fields"] == [
        {"type": "mrkdwn", "text": "*Tenant*\nteam-a"},
        {"type": "mrkdwn", "text": "*Kind*\nbudget_soft"},
        {"type": "mrkdwn", "text": "*Agent*\nplanner"},
        {"type": "mrkdwn", "text": "*window*\ndaily"},
        {"type": "mrkdwn", "text": "*spend_usd*\n5.0"},
    ]
    assert body["blocks"][2]["type"] == "context"


def test_generic_webhook_payload() -> None:
    with Receiver() as hook:
        channel = DeliveryChannel(WebhookNotifier(hook.url))
        _deliver(channel)
        channel.close(5)
    assert hook.received[0].body == {
        "version": 1, "source": "llmtrace-otel", "kind": "budget_soft",
        "severity": "warning", "tenant": "team-a", "agent": "planner", "subject": "daily",
        "summary": ALERT.summary, "details": {"window": "daily", "spend_usd": 5.0},
        "timestamp": "2030-06-12T12:00:00.500Z",
        "dedup_key": "llmtrace|team-a|planner|budget_soft|daily",
    }


def test_retries_with_backoff_then_delivers() -> None:
    counts = Counts()
    with Receiver(fail_first=2, fail_status=503) as hook:
        channel = DeliveryChannel(WebhookNotifier(hook.url), retries=3, backoff_s=0.01,
                                  count=counts)
        _deliver(channel)
        channel.close(5)
        assert hook.attempts == 3 and len(hook.received) == 1
    assert counts.seen == [("webhook", "retried"), ("webhook", "retried"), ("webhook", "sent")]


def test_client_errors_are_not_retried_and_exhausted_retries_fail() -> None:
    counts = Counts()
    with Receiver(fail_first=100, fail_status=400) as bad, \
            Receiver(fail_first=100, fail_status=500) as down:
        for receiver in (bad, down):
            channel = DeliveryChannel(WebhookNotifier(receiver.url), retries=2,
                                      backoff_s=0.01, count=counts)
            _deliver(channel)
            channel.close(5)
        assert (bad.attempts, down.attempts) == (1, 3)
    assert counts.seen == [("webhook", "failed"), ("webhook", "retried"),
                           ("webhook", "retried"), ("webhook", "failed")]


def test_hanging_endpoint_times_out_without_blocking_the_caller() -> None:
    counts = Counts()
    with Receiver(hang=True) as hook:
        channel = DeliveryChannel(WebhookNotifier(hook.url), timeout_s=0.2, retries=0,
                                  queue_size=2, count=counts)
        for _ in range(4):  # at most the worker's one and the queue's two are kept
            channel.offer(ALERT)
        # offer() returned at once although the endpoint holds the first request open
        assert ("webhook", "queue_full") in counts.seen
        assert channel.wait_idle(10)
        channel.close(5)
    outcomes = [outcome for _, outcome in counts.seen]
    assert len(outcomes) == 4 and set(outcomes) == {"failed", "queue_full"}
    assert outcomes.count("failed") == hook.attempts <= 3  # each timed out, none retried


def test_unreachable_endpoint_is_counted() -> None:
    counts = Counts()
    channel = DeliveryChannel(WebhookNotifier("http://127.0.0.1:9/nothing"), retries=1,
                              backoff_s=0.01, timeout_s=1, count=counts)
    _deliver(channel)
    channel.close(5)
    assert counts.seen == [("webhook", "retried"), ("webhook", "failed")]


def test_dispatcher_cooldown_per_tenant_kind_and_min_severity() -> None:
    now = [0.0]
    counts = Counts()
    with Receiver() as slack, Receiver() as pagerduty:
        low = DeliveryChannel(SlackNotifier(slack.url), min_severity=AlertSeverity.WARNING)
        high = DeliveryChannel(PagerDutyNotifier("k", pagerduty.url),
                               min_severity=AlertSeverity.CRITICAL)
        dispatcher = AlertDispatcher([low, high], cooldown_s=60, clock=lambda: now[0],
                                     count=counts)
        assert dispatcher.raise_alert(ALERT)
        assert not dispatcher.raise_alert(ALERT)  # same tenant, kind, subject: cooling down
        other = Alert(kind="budget_soft", severity=AlertSeverity.WARNING, tenant="team-b",
                      summary="b")
        assert dispatcher.raise_alert(other)  # another tenant
        critical = Alert(kind="budget_hard", severity=AlertSeverity.CRITICAL,
                         tenant="team-a", summary="hard")
        assert dispatcher.raise_alert(critical)
        info = Alert(kind="anomaly", severity=AlertSeverity.INFO, tenant="team-a",
                     summary="info")
        assert dispatcher.raise_alert(info)  # raised, but below both channels' severity
        now[0] = 61.0
        assert dispatcher.raise_alert(ALERT)  # cool-down over
        for channel in (low, high):
            assert channel.wait_idle(10)
        dispatcher.close(5)
        assert [r.body["text"].split("] ", 1)[1] for r in slack.received] == [
            ALERT.summary, "b", "hard", ALERT.summary]
        assert [r.body["payload"]["summary"] for r in pagerduty.received] == ["hard"]
    assert ("budget_soft", "warning", "cooldown") in counts.seen
