"""Per-key (tenant) anomaly detection over cost, tokens, latency, request and error rate.

Each call is scored against the key's own history before it joins it: a value more than
``sigma`` standard deviations above the EWMA mean, once ``min_samples`` calls (or rate
windows) were seen, is an :class:`Anomaly`. Only spikes count (a cheap or fast call is
not a problem). Request and error rates are counted in windows of ``rate_window_s``; the
running count of the current window is compared with the baseline as calls arrive, so a
burst is reported while it happens, once per window.

Thread-safe; memory is bounded by ``max_keys`` (least recently seen keys are forgotten).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from llmtrace_processors.anomaly.stats import Ewma, WindowCounter, spread

__all__ = ["Anomaly", "AnomalyConfig", "AnomalyDetector", "AnomalyType", "Sample"]


class AnomalyType(StrEnum):
    COST = "cost"
    TOKENS = "tokens"
    LATENCY = "latency"
    REQUEST_RATE = "request_rate"
    ERROR_RATE = "error_rate"


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Thresholds and warm-up. ``alpha`` is the EWMA weight of the newest sample."""

    sigma: float = 4.0
    min_samples: int = 30
    alpha: float = 0.05
    rate_window_s: float = 60.0
    #: The spread used is at least this fraction of the mean (steady baselines).
    min_relative_spread: float = 0.1
    max_keys: int = 10_000

    def __post_init__(self) -> None:
        if not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be >= 2, got {self.min_samples}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {self.alpha}")
        if not self.rate_window_s > 0:
            raise ValueError(f"rate_window_s must be > 0, got {self.rate_window_s}")
        if self.min_relative_spread < 0:
            raise ValueError(f"min_relative_spread must be >= 0, got {self.min_relative_spread}")
        if self.max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {self.max_keys}")


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished call. ``None`` means unknown (not zero)."""

    time_s: float  # when it ended, seconds since the epoch
    cost_usd: float | None = None
    tokens: int | None = None
    latency_s: float | None = None
    error: bool = False


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One value far above its baseline."""

    anomaly_type: AnomalyType
    key: str
    value: float
    mean: float
    stddev: float
    score: float  # (value - mean) / spread, in standard deviations
    samples: int  # baseline size (calls, or windows for rates)

    def describe(self) -> str:
        unit = {AnomalyType.COST: " USD", AnomalyType.LATENCY: " s"}.get(self.anomaly_type, "")
        per = f" per {self.anomaly_type.value.split('_')[0]} window" if self.is_rate else ""
        return (f"{self.anomaly_type.value} {self.value:.6g}{unit}{per} is {self.score:.1f} "
                f"sigma above the mean {self.mean:.6g}{unit} of {self.samples} samples")

    @property
    def is_rate(self) -> bool:
        return self.anomaly_type in (AnomalyType.REQUEST_RATE, AnomalyType.ERROR_RATE)


# Smallest spreads: a cost of $1e-7 per call is a real baseline, a latency of 1 ms too.
_FLOORS = {
    AnomalyType.COST: 1e-9,
    AnomalyType.TOKENS: 1.0,
    AnomalyType.LATENCY: 0.001,
}


@dataclass(slots=True)
class _KeyStats:
    cost: Ewma
    tokens: Ewma
    latency: Ewma
    requests: WindowCounter
    errors: WindowCounter


def _new_stats(config: AnomalyConfig) -> _KeyStats:
    alpha = config.alpha
    return _KeyStats(
        cost=Ewma(alpha), tokens=Ewma(alpha), latency=Ewma(alpha),
        requests=WindowCounter(config.rate_window_s, Ewma(alpha)),
        errors=WindowCounter(config.rate_window_s, Ewma(alpha)),
    )


@dataclass
class AnomalyDetector:
    config: AnomalyConfig = field(default_factory=AnomalyConfig)
    _keys: OrderedDict[str, _KeyStats] = field(default_factory=OrderedDict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def observe(self, key: str, sample: Sample) -> list[Anomaly]:
        """Score ``sample`` against ``key``'s history, then add it to the history."""
        found: list[Anomaly] = []
        with self._lock:
            stats = self._keys.get(key)
            if stats is None:
                stats = self._keys[key] = _new_stats(self.config)
                if len(self._keys) > self.config.max_keys:
                    self._keys.popitem(last=False)
            else:
                self._keys.move_to_end(key)
            for kind, ewma, value in (
                (AnomalyType.COST, stats.cost, sample.cost_usd),
                (AnomalyType.TOKENS, stats.tokens, sample.tokens),
                (AnomalyType.LATENCY, stats.latency, sample.latency_s),
            ):
                if value is None or not math.isfinite(value):
                    continue
                anomaly = self._score(kind, key, ewma, float(value), _FLOORS[kind])
                if anomaly is not None:
                    found.append(anomaly)
                ewma.update(float(value))
            for kind, counter, weight in (
                (AnomalyType.REQUEST_RATE, stats.requests, 1.0),
                (AnomalyType.ERROR_RATE, stats.errors, 1.0 if sample.error else 0.0),
            ):
                count = counter.observe(sample.time_s, weight)
                if counter.flagged or weight == 0.0:
                    continue
                anomaly = self._score_rate(kind, key, counter, count)
                if anomaly is not None:
                    counter.flagged = True
                    found.append(anomaly)
        return found

    def _score(self, kind: AnomalyType, key: str, stats: Ewma, value: float,
               floor: float) -> Anomaly | None:
        if stats.count < self.config.min_samples:
            return None
        score = (value - stats.mean) / spread(stats, self.config.min_relative_spread, floor)
        if score <= self.config.sigma:
            return None
        return Anomaly(kind, key, value, stats.mean, stats.stddev, score, stats.count)

    def _score_rate(self, kind: AnomalyType, key: str, counter: WindowCounter,
                    count: float) -> Anomaly | None:
        baseline = counter.baseline
        if baseline.count < self.config.min_samples:
            return None
        # Counts are Poisson-like: their spread is at least sqrt(mean), and at least 1.
        floor = max(1.0, math.sqrt(max(baseline.mean, 0.0)))
        score = (count - baseline.mean) / spread(baseline, self.config.min_relative_spread, floor)
        if score <= self.config.sigma:
            return None
        return Anomaly(kind, key, count, baseline.mean, baseline.stddev, score, baseline.count)

    def __len__(self) -> int:
        return len(self._keys)
