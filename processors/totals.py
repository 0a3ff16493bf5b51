"""Pre-aggregated counters: cumulative totals reported by an OTel ``ObservableCounter``.

A synchronous ``Counter.add`` in the OTel Python SDK builds a ``Measurement``, cleans and
hashes its attributes and takes the aggregation lock: about 70,000 CPU instructions per
call (measured with callgrind, docs/performance.md), several per proxied request. The
proxy's counters only ever go up by known amounts on known label values, so they are kept
here as plain totals per label tuple (a dict update under a lock, ~1 % of that cost) and
reported at collection time through an asynchronous counter, which is what the OTel API
offers for pre-aggregated sums. Prometheus and OTLP see the same cumulative counter either
way (``<name>_total`` on /metrics).

Label values are strings (or ints, such as ``server.port``); with ``omit_empty`` a label whose
value is ``""`` is left out of that series, as a histogram's absent attribute is.

Label cardinality is bounded: past ``max_series`` distinct label tuples, new tuples are
counted under :data:`OVERFLOW_VALUE` in every label, so memory and series stay bounded
whatever the traffic sends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from llmtrace_processors.labels import OTHER_LABEL

__all__ = ["OVERFLOW_VALUE", "CounterTotals"]

#: Label value of the series that collects everything beyond the series cap.
OVERFLOW_VALUE = OTHER_LABEL


class CounterTotals:
    """One cumulative counter with fixed label names; thread-safe ``add``."""

    __slots__ = ("_labels", "_lock", "_max", "_omit_empty", "_overflow", "_totals", "name")

    def __init__(
        self,
        meter: Meter,
        name: str,
        *,
        labels: tuple[str, ...],
        unit: str = "",
        description: str = "",
        max_series: int = 2000,
        omit_empty: bool = False,
    ) -> None:
        if max_series < 1:
            raise ValueError(f"max_series must be >= 1, got {max_series}")
        self.name = name
        self._labels = labels
        self._max = max_series
        self._omit_empty = omit_empty
        self._overflow: tuple[str | int, ...] = (OVERFLOW_VALUE,) * len(labels)
        self._totals: dict[tuple[str | int, ...], float] = {}
        self._lock = threading.Lock()
        meter.create_observable_counter(
            name, callbacks=[self._observe], unit=unit, description=description
        )

    def add(self, amount: float, values: tuple[str | int, ...]) -> None:
        """Add ``amount`` (>= 0) to the series of ``values`` (in label order)."""
        totals = self._totals
        with self._lock:
            current = totals.get(values)
            if current is None:
                if len(totals) >= self._max:
                    values = self._overflow
                    current = totals.get(values, 0)
                else:
                    current = 0
            totals[values] = current + amount

    def value(self, values: tuple[str | int, ...]) -> float:
        """The current total of one series (0 if never counted)."""
        with self._lock:
            return self._totals.get(values, 0)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._totals.items())
        labels = self._labels
        for values, total in items:
            attributes = dict(zip(labels, values, strict=True))
            if self._omit_empty:
                attributes = {key: value for key, value in attributes.items() if value != ""}
            yield Observation(total, attributes)
