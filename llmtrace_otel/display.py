"""How the CLI shows a call's status and cost to a person; the viewer (``ui/static/app.js``,
``fmt.usd`` and ``statusLabel``) follows the same rules, so both read alike.

- Status: ``ok`` for every call that did not fail (span status ``UNSET`` or ``OK``: OTel
  instrumentation leaves a success ``UNSET``), ``error`` plus the error type otherwise.
- Cost in USD, never in exponent notation: two decimals from $1 (``$12.34``, ``$1,234.50``),
  three significant digits below (``$0.042``, ``$0.0000054``, ``$0.00000024``), ``$0`` for
  zero, and ``<$0.00000001`` below that.
"""

from __future__ import annotations

import math

__all__ = ["status_label", "usd"]

_SMALLEST = 1e-8


def status_label(status_code: str, error_type: str | None = None) -> str:
    """``ok``, or ``error`` followed by the error type when there is one."""
    if status_code != "ERROR":
        return "ok"
    return f"error {error_type}" if error_type else "error"


def usd(value: float | None) -> str:
    """A cost in USD (``-`` when unknown)."""
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "$0"
    if value < 0:
        return "-" + usd(-value)
    if value >= 1:
        return f"${value:,.2f}"
    if value < _SMALLEST:
        return "<$0.00000001"
    decimals = max(2, 2 - math.floor(math.log10(value)))  # three significant digits
    text = f"{value:.{decimals}f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{value:.2f}"
    return "$" + text
