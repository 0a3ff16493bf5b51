"""Alert channels: Slack incoming webhook, PagerDuty Events API v2, a generic webhook.

A :class:`Notifier` turns an :class:`Alert` into one HTTP POST (URL, JSON body, headers).
A :class:`DeliveryChannel` owns a bounded queue and one worker thread (started on the
first alert), so a slow or hanging endpoint delays only its own channel, never traffic:
each attempt has a timeout; network errors, 429 and 5xx are retried ``retries`` times
with exponential backoff; other statuses fail at once. Every outcome is counted
(``llmtrace_alert_deliveries_total{channel, outcome}``: sent, retried, failed,
queue_full).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from llmtrace_otel.tenancy.alerts import Alert, AlertSeverity
from llmtrace_otel.version import __version__

__all__ = [
    "PAGERDUTY_EVENTS_URL",
    "DeliveryChannel",
    "HttpPost",
    "Notifier",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
]

_log = logging.getLogger(__name__)
PAGERDUTY_EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"
_SOURCE: Final = "llmtrace-otel"
_JSON = {"Content-Type": "application/json", "User-Agent": f"llmtrace-otel/{__version__}"}
_EMOJI = {AlertSeverity.INFO: ":information_source:", AlertSeverity.WARNING: ":warning:",
          AlertSeverity.ERROR: ":rotating_light:", AlertSeverity.CRITICAL: ":fire:"}


@dataclass(frozen=True, slots=True)
class HttpPost:
    url: str
    body: bytes
    headers: Mapping[str, str]


class Notifier(Protocol):
    @property
    def name(self) -> str: ...

    def request(self, alert: Alert) -> HttpPost: ...


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _post(url: str, payload: Mapping[str, Any]) -> HttpPost:
    return HttpPost(url, json.dumps(payload).encode(), _JSON)


class WebhookNotifier:
    """Our own JSON document, for any receiver (versioned: ``"version": 1``)."""

    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, alert: Alert) -> HttpPost:
        return _post(self.url, {
            "version": 1,
            "source": _SOURCE,
            "kind": alert.kind,
            "severity": alert.severity.label,
            "tenant": alert.tenant,
            "agent": alert.agent,
            "subject": alert.subject,
            "summary": alert.summary,
            "details": dict(alert.details),
            "timestamp": _iso(alert.timestamp),
            "dedup_key": alert.dedup_key,
        })


class SlackNotifier:
    """Slack incoming webhook: ``text`` (the notification) plus Block Kit blocks."""

    name = "slack"

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, alert: Alert) -> HttpPost:
        title = f"{_EMOJI[alert.severity]} [{alert.severity.label}] {alert.summary}"
        fields = [{"type": "mrkdwn", "text": f"*Tenant*\n{alert.tenant}"},
                  {"type": "mrkdwn", "text": f"*Kind*\n{alert.kind}"}]
        if alert.agent:
            fields.append({"type": "mrkdwn", "text": f"*Agent*\n{alert.agent}"})
        for key, value in alert.details.items():
            if value is not None and len(fields) < 10:  # Slack allows 10 fields
                fields.append({"type": "mrkdwn", "text": f"*{key}*\n{value}"})
        return _post(self.url, {
            "text": title,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": title}},
                {"type": "section", "fields": fields},
                {"type": "context", "elements": [
                    {"type": "mrkdwn", "text": f"{_SOURCE} · {_iso(alert.timestamp)}"}]},
            ],
        })


class PagerDutyNotifier:
    """PagerDuty Events API v2 ``trigger`` events; ``dedup_key`` groups repeats."""

    name = "pagerduty"

    def __init__(self, routing_key: str, url: str = PAGERDUTY_EVENTS_URL) -> None:
        self.url = url
        self._routing_key = routing_key

    def request(self, alert: Alert) -> HttpPost:
        return _post(self.url, {
            "routing_key": self._routing_key,
            "event_action": "trigger",
            "dedup_key": alert.dedup_key,
            "payload": {
                "summary": alert.summary[:1024],  # the API's limit
                "source": _SOURCE,
                "severity": alert.severity.label,
                "timestamp": _iso(alert.timestamp),
                "component": alert.tenant,
                "group": alert.agent or alert.tenant,
                "class": alert.kind,
                "custom_details": {"tenant": alert.tenant, "agent": alert.agent,
                                   "subject": alert.subject, **alert.details},
            },
        })


_Count = Callable[[str, str], None]  # (channel, outcome)


class _Retryable(Exception):
    pass


class DeliveryChannel:
    """One notifier behind a bounded queue and a worker thread."""

    def __init__(self, notifier: Notifier, *, min_severity: AlertSeverity = AlertSeverity.INFO,
                 queue_size: int = 1000, timeout_s: float = 5.0, retries: int = 3,
                 backoff_s: float = 0.5, count: _Count | None = None) -> None:
        self.notifier = notifier
        self.name = notifier.name
        self.min_severity = min_severity
        self._max = queue_size
        self._timeout = timeout_s
        self._retries = retries
        self._backoff = backoff_s
        self._count = count or (lambda channel, outcome: None)
        self._queue: deque[Alert] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False

    def offer(self, alert: Alert) -> None:
        with self._cond:
            if self._stop.is_set() or len(self._queue) >= self._max:
                self._count(self.name, "queue_full")
                _log.warning("alert channel %s: queue full, alert %s dropped", self.name,
                             alert.kind)
                return
            self._queue.append(alert)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"llmtrace-alerts-{self.name}")
                self._thread.start()
            self._cond.notify()

    def wait_idle(self, timeout_s: float) -> bool:
        """True once every queued alert was delivered or given up (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def close(self, timeout_s: float) -> None:
        self.wait_idle(timeout_s)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._stop.is_set())
                if not self._queue:
                    return
                alert = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(alert)
            except Exception:
                _log.exception("alert channel %s failed", self.name)
                self._count(self.name, "failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, alert: Alert) -> None:
        post = self.notifier.request(alert)
        for attempt in range(self._retries + 1):
            try:
                self._send(post)
            except _Retryable as exc:
                if attempt < self._retries and not self._stop.is_set():
                    self._count(self.name, "retried")
                    if self._stop.wait(self._backoff * (2 ** attempt)):
                        break
                    continue
                _log.warning("alert channel %s: giving up on %s after %d attempts: %s",
                             self.name, alert.kind, attempt + 1, exc)
                break
            except _Permanent as exc:
                _log.warning("alert channel %s: %s refused: %s", self.name, alert.kind, exc)
                break
            else:
                self._count(self.name, "sent")
                return
        self._count(self.name, "failed")

    def _send(self, post: HttpPost) -> None:
        request = urllib.request.Request(post.url, data=post.body, headers=dict(post.headers),
                                         method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}") from None
            raise _Permanent(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Retryable(f"{type(exc).__name__}: {reason} after "
                             f"{time.monotonic() - started:.1f}s") from None


class _Permanent(Exception):
    pass
