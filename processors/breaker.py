"""Circuit breakers: stop calling a part of the pipeline that keeps failing, try it again later.

A :class:`CircuitBreaker` guards one subsystem (an exporter's ``export``, an enricher's
``enrich``) and has three states:

``closed``
    Calls go through. The outcome of the last ``window`` calls is remembered; when
    ``failure_threshold`` of them failed (raised, returned a failure, or took longer than
    ``slow_call_s``), the breaker opens.
``open``
    Calls are refused at once (the caller skips the subsystem, counts what it skipped and
    moves on) for ``recovery_s`` seconds.
``half_open``
    After the recovery time, up to ``half_open_probes`` trial calls are let through, one
    permit each. A failed probe opens the breaker again (and restarts the recovery time);
    when all of them succeeded, the breaker closes with a fresh window.

Callers take a permit before a call and report its outcome with that permit::

    permit = breaker.acquire()
    if permit is None:
        skip()                       # open: the subsystem is bypassed
    else:
        ok = call()
        breaker.record(permit, ok, duration_s)

A permit carries the breaker's generation: an outcome reported for a call admitted before
the last state change (a slow call still running when the breaker opened) is ignored, so
concurrent callers cannot close a breaker with stale successes.

:class:`CircuitBreakers` is the set of one pipeline: it creates breakers by subsystem name,
reports them for ``/health`` and as the ``llmtrace.circuit_breaker.state`` gauge (one series
per state, 1 for the current state and 0 for the others). Everything here depends on the
standard library and the OTel API only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = [
    "BREAKER_METRIC",
    "BreakerPolicy",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "CircuitBreakers",
    "Permit",
]

_log = logging.getLogger(__name__)

#: OTel name of the state gauge (``llmtrace_circuit_breaker_state`` in Prometheus).
BREAKER_METRIC = "llmtrace.circuit_breaker.state"

#: What :meth:`CircuitBreaker.acquire` hands out: the generation the call was admitted in.
Permit = int


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and how it recovers.

    ``slow_call_s`` (``None``: no limit) makes a call that succeeded but took longer count
    as a failure: an analysis step that takes a second per span is as harmful as one that
    raises.
    """

    failure_threshold: int = 5
    window: int = 20
    recovery_s: float = 30.0
    half_open_probes: int = 2
    slow_call_s: float | None = None

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1 call, got {self.window}")
        if not 1 <= self.failure_threshold <= self.window:
            raise ValueError(
                f"failure_threshold must be between 1 and the window ({self.window}), "
                f"got {self.failure_threshold}")
        if not self.recovery_s > 0:
            raise ValueError(f"recovery_s must be > 0 seconds, got {self.recovery_s}")
        if self.half_open_probes < 1:
            raise ValueError(f"half_open_probes must be >= 1, got {self.half_open_probes}")
        if self.slow_call_s is not None and not self.slow_call_s > 0:
            raise ValueError(f"slow_call_s must be > 0 seconds, got {self.slow_call_s}")


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """One breaker as ``/health`` shows it."""

    subsystem: str
    state: BreakerState
    #: Failed (or slow) calls among the ``calls`` remembered in the current window.
    failures: int
    calls: int
    #: How often the breaker opened since the process started.
    times_opened: int
    #: Calls refused while open (or beyond the probes while half-open).
    rejected: int
    #: Seconds spent in the current state.
    since_s: float
    #: Seconds until an open breaker lets a probe through (0 when not open).
    retry_in_s: float
    #: What the last failure was ("error", "slow 1.02 s", an exporter's message...).
    last_failure: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "failures": self.failures,
            "calls": self.calls,
            "times_opened": self.times_opened,
            "rejected": self.rejected,
            "since_s": round(self.since_s, 3),
            "retry_in_s": round(self.retry_in_s, 3),
            "last_failure": self.last_failure,
        }


class CircuitBreaker:
    """A closed/open/half-open breaker for one subsystem; thread-safe."""

    __slots__ = (
        "_changed_at", "_clock", "_failures", "_generation", "_held", "_last_failure", "_lock",
        "_outcomes", "_probes_ok", "_probes_started", "_rejected", "_reopen_at", "_state",
        "_times_opened", "policy", "subsystem",
    )

    def __init__(
        self,
        subsystem: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.subsystem = subsystem
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._outcomes: deque[bool] = deque(maxlen=self.policy.window)  # True = failed
        self._failures = 0
        self._reopen_at = 0.0
        self._held = False  # open until release(), whatever the recovery time says
        self._changed_at = clock()
        self._probes_started = 0
        self._probes_ok = 0
        self._times_opened = 0
        self._rejected = 0
        self._last_failure: str | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose recovery time passed is half-open)."""
        with self._lock:
            self._advance(self._clock())
            return self._state

    def accepting(self) -> bool:
        """False while open and not yet due for a probe; takes no permit and no lock.

        For callers that queue work before it is attempted (an export queue): an open
        breaker's work is dropped at the door instead of filling the queue.
        """
        return self._state is not BreakerState.OPEN or (
            not self._held and self._clock() >= self._reopen_at)

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            now = self._clock()
            self._advance(now)
            return BreakerSnapshot(
                subsystem=self.subsystem,
                state=self._state,
                failures=self._failures,
                calls=len(self._outcomes),
                times_opened=self._times_opened,
                rejected=self._rejected,
                since_s=max(0.0, now - self._changed_at),
                retry_in_s=max(0.0, self._reopen_at - now)
                if self._state is BreakerState.OPEN else 0.0,
                last_failure=self._last_failure,
            )

    # -- calls -----------------------------------------------------------------------------

    def acquire(self) -> Permit | None:
        """A permit for one call, or ``None`` when the breaker refuses it."""
        if self._state is BreakerState.CLOSED:  # the common case needs no lock
            return self._generation
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return self._generation
            self._advance(self._clock())
            if self._state is BreakerState.HALF_OPEN and (
                    self._probes_started < self.policy.half_open_probes):
                self._probes_started += 1
                return self._generation
            self._rejected += 1
            return None

    def record(self, permit: Permit, ok: bool, duration_s: float | None = None,
               reason: str | None = None) -> None:
        """Report how the call admitted with ``permit`` went.

        ``ok`` with a ``duration_s`` above the policy's ``slow_call_s`` counts as a failure.
        ``reason`` describes a failure for ``/health`` (default ``"error"``).
        """
        slow = self.policy.slow_call_s
        if ok and slow is not None and duration_s is not None and duration_s > slow:
            ok, reason = False, f"slow: {duration_s:.3f} s > {slow:.3f} s"
        with self._lock:
            if permit != self._generation:
                return  # admitted before the last state change: its outcome is stale
            if not ok:
                self._last_failure = reason or "error"
            state = self._state
            if state is BreakerState.CLOSED:
                self._remember(not ok)
            elif state is BreakerState.HALF_OPEN:
                if not ok:
                    self._open(self._clock())
                else:
                    self._probes_ok += 1
                    if self._probes_ok >= self.policy.half_open_probes:
                        self._close(self._clock())

    def trip(self, reason: str, *, hold: bool = False) -> None:
        """Open now, whatever the window says (a call that never returned: a stall).

        Already open: the recovery time starts again. With ``hold`` it stays open, past its
        recovery time, until :meth:`release` (no probe while the stalled call is out)."""
        with self._lock:
            self._last_failure = reason
            self._open(self._clock())
            self._held = hold

    def release(self) -> None:
        """End a :meth:`trip` hold: probes start once the recovery time has passed."""
        with self._lock:
            self._held = False

    # -- transitions (called with the lock held) -------------------------------------------

    def _remember(self, failed: bool) -> None:
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self._failures -= 1
        outcomes.append(failed)
        if failed:
            self._failures += 1
            if self._failures >= self.policy.failure_threshold:
                self._open(self._clock())

    def _advance(self, now: float) -> None:
        if self._state is BreakerState.OPEN and not self._held and now >= self._reopen_at:
            self._set(BreakerState.HALF_OPEN, now)
            self._probes_started = self._probes_ok = 0
            _log.info("circuit breaker %s is half-open: letting %d probe call(s) through",
                      self.subsystem, self.policy.half_open_probes)

    def _open(self, now: float) -> None:
        previous = self._state
        failures, calls = self._failures, len(self._outcomes)
        self._set(BreakerState.OPEN, now)
        self._reopen_at = now + self.policy.recovery_s
        self._times_opened += 1
        if previous is BreakerState.HALF_OPEN:
            _log.warning("circuit breaker %s: probe failed (%s); open again for %.1f s",
                         self.subsystem, self._last_failure, self.policy.recovery_s)
        elif failures < self.policy.failure_threshold:  # tripped
            _log.warning("circuit breaker %s opened: %s; skipping it for %.1f s",
                         self.subsystem, self._last_failure, self.policy.recovery_s)
        else:
            _log.warning(
                "circuit breaker %s opened: %d of the last %d calls failed (last: %s); "
                "skipping it for %.1f s", self.subsystem, failures, calls,
                self._last_failure, self.policy.recovery_s)

    def _close(self, now: float) -> None:
        self._set(BreakerState.CLOSED, now)
        _log.warning("circuit breaker %s closed: %d probe call(s) succeeded",
                     self.subsystem, self._probes_ok)

    def _set(self, state: BreakerState, now: float) -> None:
        self._generation += 1  # before the state: a lock-free acquire() never pairs the
        self._state = state  # new state with the old generation
        self._changed_at = now
        self._outcomes.clear()
        self._failures = 0


class CircuitBreakers:
    """The breakers of one pipeline, by subsystem name; reported as a gauge and on /health."""

    def __init__(self, policy: BreakerPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def new(self, subsystem: str, policy: BreakerPolicy | None = None) -> CircuitBreaker:
        """Create the breaker of ``subsystem`` (names are unique within the set)."""
        breaker = CircuitBreaker(subsystem, policy or self.policy, clock=self._clock)
        with self._lock:
            if subsystem in self._breakers:
                raise ValueError(f"a circuit breaker named {subsystem!r} already exists")
            self._breakers[subsystem] = breaker
        return breaker

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            return iter(tuple(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def get(self, subsystem: str) -> CircuitBreaker | None:
        return self._breakers.get(subsystem)

    def snapshots(self) -> list[BreakerSnapshot]:
        return [breaker.snapshot() for breaker in self]

    def observe(self, meter: Meter) -> None:
        """Report every breaker as ``llmtrace.circuit_breaker.state{subsystem,state}``."""
        meter.create_observable_gauge(
            BREAKER_METRIC, callbacks=[self._observe], unit="",
            description="Circuit breaker state per subsystem: 1 for the current state "
                        "(closed, open, half_open), 0 for the others.",
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        for breaker in self:
            current = breaker.state
            for state in BreakerState:
                yield Observation(1 if state is current else 0,
                                  {"subsystem": breaker.subsystem, "state": state.value})
