"""Spend crossing from the telemetry process to the relay worker that records it.

The chain prices calls in the telemetry process (``CostProcessor``), but budgets are
enforced where requests are admitted: in the relay workers. :class:`ForwardedSpend` is the
telemetry process's :class:`~llmtrace_otel.tenancy.spend.SpendSink`: it sends each call's
spend, as a small JSON event, to a live worker, whose ``BudgetTracker`` records it in the
state every worker reads (Redis; or, with one worker, its memory).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable

from llmtrace_otel.tenancy.budgets import SpendEvent
from llmtrace_processors.chain import DropCounter

__all__ = ["ForwardedSpend", "decode_spend", "encode_spend", "spend_handler"]

_log = logging.getLogger(__name__)


def encode_spend(event: SpendEvent) -> bytes:
    return json.dumps({"tenant": event.tenant, "agent": event.agent, "usd": event.usd},
                      separators=(",", ":")).encode()


def decode_spend(data: bytes) -> SpendEvent:
    """The event :func:`encode_spend` wrote; ``ValueError`` for anything else."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("a spend event is a JSON object")
    tenant, agent, usd = value.get("tenant"), value.get("agent"), value.get("usd")
    # usd: a finite amount >= 0 (JSON allows NaN; added to a total it would make every
    # budget comparison false: a budget never exceeded), or None (unpriced)
    if not isinstance(tenant, str) or not (agent is None or isinstance(agent, str)) or not (
            usd is None or (isinstance(usd, int | float) and not isinstance(usd, bool)
                            and math.isfinite(usd) and usd >= 0)):
        raise ValueError(f"not a spend event: {value!r}")
    return SpendEvent(tenant=tenant, agent=agent, usd=None if usd is None else float(usd))


class ForwardedSpend:
    """A spend sink that hands events to ``send`` on ``loop`` (from any thread, never
    blocking). ``send`` counts what no worker could take; ``on_lost`` counts events that
    arrive once the loop is closed (shutdown)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[bytes], bool], *,
                 on_lost: Callable[[], None]) -> None:
        self._loop = loop
        self._send = send
        self._on_lost = on_lost

    def submit(self, event: SpendEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._send, encode_spend(event))
        except RuntimeError:  # the loop is closed
            self._on_lost()


def spend_handler(submit: Callable[[SpendEvent], None], on_drop: DropCounter
                  ) -> Callable[[bytes], None]:
    """A worker's handler of ``spend`` events: each decoded event to ``submit`` (its budget
    tracker); one that cannot be read is logged and counted
    (``{stage="worker.spend",reason="undecodable"}``), never recorded."""
    def handle(data: bytes) -> None:
        try:
            event = decode_spend(data)
        except ValueError as exc:
            _log.error("a spend event from the telemetry process could not be read: %s", exc)
            on_drop("worker.spend", "undecodable")
            return
        submit(event)
    return handle
