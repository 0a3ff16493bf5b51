"""The telemetry process: the pipeline for every relay worker, their pool, one /health.

:mod:`llmtrace_otel.wiring` builds it (the pipeline, the hub, the /metrics renderer); the
command line runs it: :meth:`TelemetryProcess.start` listens on the control socket and
starts the workers on the ports it was given (held by the caller), :meth:`~TelemetryProcess.stop`
drains them (each finishes its calls and ships its last spans) and then the pipeline.

``/health`` of the whole product (every worker forwards its ``/health`` here) is this
process's pipeline report (exporters, analysis queue, breakers) with a ``workers``
component, the upstream providers as all workers see them, and one entry per worker: its
process state from the pool and its own report (guards, ship queue, connections). It is
``degraded`` when this process or any worker is, or when a worker is not connected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.metrics import Meter, Observation

from llmtrace_otel.supervisor.hub import Hub, Rendered, WorkerSnapshots
from llmtrace_otel.supervisor.pool import WorkerPool, WorkerState
from llmtrace_otel.telemetry.health import DEGRADED
from llmtrace_otel.telemetry.pipeline import Telemetry

__all__ = ["TelemetryProcess", "merge_providers"]

_log = logging.getLogger(__name__)
#: How long starting workers may take to listen before start() announces with fewer.
_READY_TIMEOUT_S = 60.0

MetricsRenderer = Callable[[WorkerSnapshots, str, str], Rendered]


def merge_providers(reports: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, object]]:
    """Upstream providers as all workers together see them: calls and failures summed,
    available only if every worker finds it available."""
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for name, state in (report.get("providers") or {}).items():
            into = merged.get(name)
            if into is None:
                merged[name] = dict(state)
                continue
            into["available"] = bool(into.get("available")) and bool(state.get("available"))
            for key in ("calls_in_window", "failures_in_window"):
                into[key] = int(into.get(key) or 0) + int(state.get(key) or 0)
            into["consecutive_failures"] = max(int(into.get("consecutive_failures") or 0),
                                               int(state.get("consecutive_failures") or 0))
            since = [v for v in (into.get("seconds_since_last_failure"),
                                 state.get("seconds_since_last_failure")) if v is not None]
            into["seconds_since_last_failure"] = min(since) if since else None
    return merged


class TelemetryProcess:
    """See the module docstring."""

    def __init__(self, *, telemetry: Telemetry, hub: Hub, workers: int,
                 render_metrics: MetricsRenderer, meter: Meter,
                 closers: Sequence[Callable[[], object]] = ()) -> None:
        self.telemetry = telemetry
        self.hub = hub
        self.workers = workers
        self._closers = tuple(closers)
        self._started = time.monotonic()
        self.pool: WorkerPool | None = None
        self._restarts = meter.create_counter(
            "llmtrace.server.worker.restarts", unit="{restart}",
            description="Relay workers restarted after they exited (server.workers).")
        meter.create_observable_gauge(
            "llmtrace.server.workers", unit="{worker}",
            description="Relay workers connected to the telemetry process now.",
            callbacks=[lambda options: [Observation(len(self.hub.connected))]])
        hub.answer(metrics=render_metrics, health=self.render_health)

    # -- /health ----------------------------------------------------------------------------

    def render_health(self, reports: dict[int, Mapping[str, Any]]) -> Rendered:
        return 200, {"Content-Type": "application/json", "Cache-Control": "no-store"}, \
            json.dumps(self.health(reports)).encode()

    def health(self, reports: dict[int, Mapping[str, Any]]) -> dict[str, Any]:
        report = self.telemetry.health()
        states = self.pool.workers if self.pool is not None else []
        connected = self.hub.connected
        missing = self.workers - len(connected)
        report.add("workers", {"state": "ok" if missing <= 0 else "missing",
                               "expected": self.workers, "connected": len(connected),
                               "restarts": sum(state.restarts for state in states)},
                   degraded=missing > 0)
        for worker in reports.values():
            report.degraded |= worker.get("status") == DEGRADED
        report.providers.update(merge_providers(list(reports.values())))
        return report.document(
            started_monotonic=self._started,
            in_flight=sum(int(r.get("in_flight") or 0) for r in reports.values()),
            workers=[_worker_entry(state, reports.get(state.index)) for state in states])

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, *, argv: Sequence[str], env: Mapping[str, str],
                    ports: Mapping[str, int]) -> None:
        """Listen for the workers, start them, and wait until every one is serving."""
        await self.hub.start()
        self.pool = WorkerPool(self.workers, argv=argv, env=env, ports=ports,
                               control_path=self.hub.control_path,
                               on_restart=self._restarted)
        await self.pool.start()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while len(self.hub.connected) < self.workers:
            if time.monotonic() > deadline:
                _log.warning("%d of %d workers connected within %.0f s; serving with those",
                             len(self.hub.connected), self.workers, _READY_TIMEOUT_S)
                break
            await asyncio.sleep(0.02)

    def _restarted(self, state: WorkerState) -> None:
        self._restarts.add(1, {"reason": (state.last_exit or "exited").split(" ")[0]})

    async def stop(self, timeout_s: float) -> None:
        """Drain the workers (their calls, their last spans), then flush the pipeline."""
        if self.pool is not None:
            await self.pool.stop(timeout_s)
        await self.hub.wait_disconnected(5.0)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._flush, timeout_s)
        await self.hub.stop()

    def _flush(self, timeout_s: float) -> None:
        try:
            self.telemetry.force_flush(int(timeout_s * 1000))
        finally:
            self.telemetry.shutdown()
            for closer in self._closers:
                try:
                    closer()
                except Exception:
                    _log.exception("shutdown step %r failed; continuing", closer)


def _worker_entry(state: WorkerState, report: Mapping[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = state.as_dict()
    if report is None:
        entry["status"] = "unreachable"
        return entry
    for key in ("status", "in_flight", "components", "connections"):
        if key in report:
            entry[key] = report[key]
    return entry
