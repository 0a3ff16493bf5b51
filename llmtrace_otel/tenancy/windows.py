"""Budget windows: calendar hours, days, ISO weeks and months, in UTC.

A window is identified by its start (seconds since the epoch), so every instance that
shares state agrees on which window a call belongs to and when it resets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmtrace_otel.config.choices import BudgetWindow as Window

__all__ = ["Window", "window_bounds"]


def window_bounds(window: Window, now: float) -> tuple[float, float]:
    """(start, end) of the window containing ``now``; ``end`` is when it resets."""
    moment = datetime.fromtimestamp(now, UTC)
    if window is Window.HOURLY:
        start = moment.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif window is Window.DAILY:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    elif window is Window.WEEKLY:
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
        end = start + timedelta(days=7)
    else:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start.replace(year=start.year + 1, month=1) if start.month == 12
               else start.replace(month=start.month + 1))
    return start.timestamp(), end.timestamp()
