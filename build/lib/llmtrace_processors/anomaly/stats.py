"""Rolling statistics for anomaly detection: EWMA mean/variance and windowed counts.

:class:`Ewma` keeps an exponentially weighted mean and variance (Finch, "Incremental
calculation of weighted mean and variance", 2009): O(1) memory and time per sample, and
recent behaviour weighs more, so a tenant whose normal slowly changes is not flagged
forever. :class:`WindowCounter` counts events in fixed windows (requests per minute,
errors per minute) and keeps an :class:`Ewma` of the completed windows' counts as the
baseline the current window is compared with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Ewma", "WindowCounter", "spread"]

# Windows an idle gap may add to a rate baseline as zeros; beyond that the baseline is
# already ~0 and looping further would only cost time.
_MAX_IDLE_WINDOWS = 256


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean and variance of a stream of numbers."""

    alpha: float
    mean: float = 0.0
    variance: float = 0.0
    count: int = 0

    def update(self, value: float) -> None:
        if self.count == 0:
            self.mean, self.variance = value, 0.0
        else:
            diff = value - self.mean
            increment = self.alpha * diff
            self.mean += increment
            self.variance = (1.0 - self.alpha) * (self.variance + diff * increment)
        self.count += 1

    @property
    def stddev(self) -> float:
        return math.sqrt(self.variance) if self.variance > 0 else 0.0


def spread(stats: Ewma, min_relative: float, floor: float) -> float:
    """The standard deviation a score divides by: never below ``min_relative`` of the
    mean nor ``floor``, so a perfectly steady baseline does not make every small change
    infinitely surprising."""
    return max(stats.stddev, min_relative * abs(stats.mean), floor)


@dataclass(slots=True)
class WindowCounter:
    """Events per fixed window of ``window_s`` seconds, with a baseline of past windows.

    Windows are aligned to multiples of ``window_s`` on the timestamps given; idle windows
    between two events count as zeros in the baseline.
    """

    window_s: float
    baseline: Ewma
    start: float = math.nan
    count: float = 0.0
    flagged: bool = False  # whether the current window was already reported

    def observe(self, now: float, weight: float = 1.0) -> float:
        """Add ``weight`` events at ``now``; return the current window's count."""
        if math.isnan(self.start):
            self.start = math.floor(now / self.window_s) * self.window_s
        elif now >= self.start + self.window_s:
            self.baseline.update(self.count)
            idle = int((now - self.start) // self.window_s) - 1
            for _ in range(min(idle, _MAX_IDLE_WINDOWS)):
                self.baseline.update(0.0)
            self.start = math.floor(now / self.window_s) * self.window_s
            self.count = 0.0
            self.flagged = False
        self.count += weight
        return self.count
