"""Is each upstream provider answering? Derived from the outcomes of recent calls.

A provider is *unavailable* when, over the last ``window_s`` seconds, at least
``min_calls`` calls ended and at least ``failure_ratio`` of them failed, or when the last
``consecutive_failures`` calls all failed (which notices an outage within a few calls, even
under little traffic). It is available again as soon as neither holds, i.e. after successes
or once the failures have aged out of the window.

A *failure* is the upstream's fault: it could not be reached, timed out, dropped the
connection, or answered 5xx (Anthropic's 529 included). Client errors (4xx), 429 rate
limits, the proxy's own rejections and clients hanging up are not failures: the provider
answered.

Reported as ``llmtrace.provider.available`` (1/0 per provider, an ObservableGauge read at
collection time) and in ``/health``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["PROVIDER_AVAILABLE_METRIC", "ProviderHealth", "ProviderState", "is_upstream_failure"]

#: The per-provider availability gauge.
PROVIDER_AVAILABLE_METRIC = "llmtrace.provider.available"

#: error.type values the proxy uses when the upstream itself failed.
_UPSTREAM_ERRORS = frozenset({
    "upstream_unreachable", "upstream_connect_timeout", "upstream_read_timeout",
    "upstream_timeout", "upstream_disconnected", "upstream_error",
})
#: Providers tracked at most (the provider can come from a client header).
_MAX_PROVIDERS = 64


def is_upstream_failure(status_code: int, error_type: str | None) -> bool:
    """True when a call's outcome says the upstream failed (see the module docstring)."""
    return status_code >= 500 or error_type in _UPSTREAM_ERRORS


@dataclass(frozen=True, slots=True)
class ProviderState:
    """One provider's health as reported on /health."""

    provider: str
    available: bool
    calls: int  # calls that ended within the window
    failures: int
    consecutive_failures: int
    seconds_since_failure: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "available": self.available,
            "calls_in_window": self.calls,
            "failures_in_window": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "seconds_since_last_failure": (
                None if self.seconds_since_failure is None
                else round(self.seconds_since_failure, 3)
            ),
        }


class _Track:
    __slots__ = ("consecutive", "events", "failures", "last_failure")

    def __init__(self) -> None:
        self.events: deque[tuple[float, bool]] = deque()
        self.failures = 0
        self.consecutive = 0
        self.last_failure: float | None = None


class ProviderHealth:
    """Sliding-window availability per provider. ``record`` is O(1) amortised."""

    def __init__(
        self,
        *,
        window_s: float = 60.0,
        min_calls: int = 5,
        failure_ratio: float = 0.5,
        consecutive_failures: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        if not 0 < failure_ratio <= 1:
            raise ValueError(f"failure_ratio must be in (0, 1], got {failure_ratio}")
        if min_calls < 1 or consecutive_failures < 1:
            raise ValueError("min_calls and consecutive_failures must be >= 1")
        self._window = window_s
        self._min_calls = min_calls
        self._ratio = failure_ratio
        self._consecutive = consecutive_failures
        self._clock = clock
        self._tracks: dict[str, _Track] = {}
        self._lock = threading.Lock()

    def observe_with(self, meter: Meter) -> None:
        """Report ``llmtrace.provider.available`` through ``meter``."""
        meter.create_observable_gauge(
            PROVIDER_AVAILABLE_METRIC, callbacks=[self._observe], unit="1",
            description="1 while the provider answers recent calls, 0 while it is failing.",
        )

    def record(self, provider: str, failed: bool) -> None:
        now = self._clock()
        with self._lock:
            track = self._tracks.get(provider)
            if track is None:
                if len(self._tracks) >= _MAX_PROVIDERS:
                    return
                track = self._tracks[provider] = _Track()
            track.events.append((now, failed))
            if failed:
                track.failures += 1
                track.consecutive += 1
                track.last_failure = now
            else:
                track.consecutive = 0
            self._expire(track, now)

    def _expire(self, track: _Track, now: float) -> None:
        horizon = now - self._window
        events = track.events
        while events and events[0][0] < horizon:
            _, failed = events.popleft()
            if failed:
                track.failures -= 1

    def _state(self, provider: str, track: _Track, now: float) -> ProviderState:
        self._expire(track, now)
        calls = len(track.events)
        ratio_down = calls >= self._min_calls and track.failures >= self._ratio * calls
        streak_down = track.consecutive >= self._consecutive
        return ProviderState(
            provider=provider,
            available=not (ratio_down or streak_down),
            calls=calls,
            failures=track.failures,
            consecutive_failures=track.consecutive,
            seconds_since_failure=None if track.last_failure is None
            else now - track.last_failure,
        )

    def states(self) -> list[ProviderState]:
        now = self._clock()
        with self._lock:
            return [self._state(name, track, now) for name, track in sorted(self._tracks.items())]

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        for state in self.states():
            yield Observation(1 if state.available else 0, {"provider": state.provider})
