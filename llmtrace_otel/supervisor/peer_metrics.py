"""The relay workers' metrics, as the telemetry process's ``/metrics`` merges them in.

At every scrape the hub asks each live worker for its cumulative metric data (OTLP protobuf
bytes from its in-memory reader); the last answer of a worker that has gone is folded into
the retired totals at once (:meth:`PeerMetrics.retire`). :meth:`PeerMetrics.update` decodes
and merges them (``metrics_merge.py``: counters summed,
histograms bucket by bucket, gauges the way each means); the telemetry process's Prometheus
reader takes the result as one more source (:meth:`PeerMetrics.fetch`, a
``CumulativeSource``), merged with its own metrics at the collection that follows. A worker
that has gone adds only its totals (counters, histograms), not its gauges: its connections
are closed and its queue is empty. So counters never go down when a worker is restarted.

A snapshot that cannot be read is left out of that scrape, logged and counted
(``llmtrace_telemetry_dropped_total{stage="metrics.workers",reason="undecodable"}``, or
``reason="merge_failed"`` for snapshots that cannot be combined).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from google.protobuf.message import DecodeError
from opentelemetry.sdk.metrics.export import MetricsData

from llmtrace_otel.receiver.metrics_codec import decode_metrics_data
from llmtrace_otel.supervisor.hub import WorkerSnapshots
from llmtrace_otel.telemetry.metrics_merge import (
    GaugeMerge,
    MetricsMergeError,
    merge_metrics_data,
    totals_only,
)
from llmtrace_processors.chain import DropCounter

__all__ = ["PeerMetrics"]

_log = logging.getLogger(__name__)
_STAGE = "metrics.workers"


class PeerMetrics:
    """See the module docstring."""

    def __init__(self, *, gauges: Mapping[str, GaugeMerge], on_drop: DropCounter) -> None:
        self._gauges = gauges
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._merged: MetricsData | None = None
        #: The totals of every worker that has gone, folded into one as they retire.
        self._retired: MetricsData | None = None

    def retire(self, raw: bytes) -> None:
        """Fold the last snapshot of a worker that has gone into the totals, once (its
        counters and histograms; not its gauges)."""
        decoded = self._decode(raw)
        if decoded is None:
            return
        with self._lock:
            self._retired = self._merge(
                [part for part in (self._retired, totals_only(decoded)) if part is not None])

    def update(self, snapshots: WorkerSnapshots) -> None:
        """Decode and merge the live workers' latest snapshots with the retired totals (on
        the rendering thread)."""
        parts = [data for data in map(self._decode, list(snapshots.live.values()))
                 if data is not None]
        with self._lock:
            if self._retired is not None:
                parts.append(self._retired)
        merged = self._merge(parts) if parts else None
        with self._lock:
            self._merged = merged

    def fetch(self) -> MetricsData | None:
        """The merged metrics of the workers (a ``CumulativeSource``'s fetch: no I/O)."""
        with self._lock:
            return self._merged

    def _merge(self, parts: list[MetricsData]) -> MetricsData | None:
        try:
            return merge_metrics_data(parts, gauges=self._gauges)
        except MetricsMergeError as exc:
            _log.error("the workers' metrics could not be merged: %s", exc)
            self._on_drop(_STAGE, "merge_failed")
            return None

    def _decode(self, raw: bytes) -> MetricsData | None:
        if not raw:
            return None
        try:
            return decode_metrics_data(raw)
        except (ValueError, DecodeError) as exc:
            _log.error("a worker's metrics could not be read: %s", exc)
            self._on_drop(_STAGE, "undecodable")
            return None
