"""Security detectors in worker processes, so analysis can use more than one core.

The GIL lets one Python process use one core. The detectors are pure functions over text,
so they can run elsewhere: a :class:`DetectorPool` is a ``ProcessPoolExecutor`` whose
workers each build their own detectors (``detector_factory``, default
:func:`~processors.security.detectors.default_detectors`), their own
:class:`~processors.security.cache.FindingsCache` and an in-worker
:class:`~processors.security.processor.SecurityProcessor` whose ``scan_all`` does the
work, with exactly the in-process semantics (a failing detector is logged, counted and the
others still run). Every finding comes back, below ``min_severity`` too: the parent's
processor filters them and uses them for redaction, as in-process.

What crosses the process boundary is small: per span, the content attributes only
(:func:`content_of`: the keys the content policy treats as content, which are the keys the
segment reader reads); back, per span, ``None`` (no text to analyse) or the list of
:class:`~processors.security.processor.LocatedFinding` (usually empty), plus the sampled
detector times and the detector failures, which the parent records and counts.

Workers are started with ``spawn`` (the parent runs gRPC and Tornado threads; forking a
threaded process is unsafe), ignore SIGINT/SIGTERM (the parent shuts them down after
flushing, so a Ctrl-C or a ``systemctl stop`` that signals the whole group does not kill
them under queued work) and exit when the parent goes away.
"""

from __future__ import annotations

import functools
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_COMPLETION,
    GEN_AI_PROMPT,
)
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.content_policy import CONTENT_ATTRIBUTES
from llmtrace_processors.security.cache import DEFAULT_CACHE_SIZE
from llmtrace_processors.security.detectors import Detector, ScanContext, default_detectors
from llmtrace_processors.security.findings import Finding
from llmtrace_processors.security.processor import LocatedFinding, SecurityProcessor
from llmtrace_processors.security.segments import Segment, segments_from_attributes

__all__ = [
    "BatchResult",
    "DetectorPool",
    "content_of",
    "scan_batch",
]

_PREFIXES = (GEN_AI_PROMPT + ".", GEN_AI_COMPLETION + ".")
#: Same sampling as the in-process processor: one scan in 16 is timed.
_TIMING_EVERY = 16

DetectorFactory = Callable[[], Sequence[Detector]]
#: The content attributes of one span, as sent to a worker.
Job = dict[str, AttributeValue]


def content_of(attributes: Mapping[str, AttributeValue]) -> Job:
    """The attributes of a span the segment reader looks at (its message content)."""
    found = {key: attributes[key] for key in CONTENT_ATTRIBUTES.intersection(attributes)}
    for key in attributes:
        if key.startswith(_PREFIXES):
            found[key] = attributes[key]
    return found


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a worker sends back for one batch of jobs."""

    #: Per job, in order: None (nothing to analyse) or every finding (maybe none).
    located: list[list[LocatedFinding] | None]
    #: (detector, seconds) for the sampled scans.
    timings: list[tuple[str, float]] = field(default_factory=list)
    #: (stage, reason) of detector failures, to be counted by the parent.
    drops: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Config:
    factory: DetectorFactory
    cache_size: int


class _Timed:
    """A detector that adds the time its ``detect`` calls take to ``elapsed``."""

    __slots__ = ("_inner", "elapsed", "name")

    def __init__(self, inner: Detector) -> None:
        self._inner = inner
        self.name = inner.name
        self.elapsed = 0.0

    def applies_to(self, segment: Segment) -> bool:
        return self._inner.applies_to(segment)

    def detect(self, segment: Segment, context: ScanContext) -> Sequence[Finding]:
        began = time.perf_counter()
        try:
            return self._inner.detect(segment, context)
        finally:
            self.elapsed += time.perf_counter() - began


class _Scanner:
    """The worker side: detectors, cache and an in-worker SecurityProcessor."""

    def __init__(self, config: _Config) -> None:
        self.timed = tuple(_Timed(detector) for detector in config.factory())
        self.drops: list[tuple[str, str]] = []
        self.processor = SecurityProcessor(
            detectors=self.timed, cache_size=config.cache_size,
            on_drop=lambda stage, reason: self.drops.append((stage, reason)),
            timing_sample_every=1 << 62,  # timed here, recorded by the parent
        )
        self.scans = 0

    def run(self, jobs: Sequence[Job]) -> BatchResult:
        located: list[list[LocatedFinding] | None] = []
        timings: list[tuple[str, float]] = []
        self.drops = []
        for job in jobs:
            segments = segments_from_attributes(job)
            if not segments:
                located.append(None)
                continue
            timed = self.scans % _TIMING_EVERY == 0
            self.scans += 1
            for detector in self.timed:
                detector.elapsed = 0.0
            located.append(self.processor.scan_all(segments))
            if timed:
                timings.extend((d.name, d.elapsed) for d in self.timed)
        return BatchResult(located, timings, self.drops)


@functools.cache
def _scanner(config: _Config) -> _Scanner:
    """One scanner per worker process and configuration, built on first use."""
    return _Scanner(config)


def scan_batch(config: _Config, jobs: Sequence[Job]) -> BatchResult:
    """Run in a worker: scan each job's segments with every detector."""
    return _scanner(config).run(jobs)


def _worker_init() -> None:
    # The parent decides when workers stop (after flushing); a signal sent to the whole
    # process group (Ctrl-C, systemd's control-group kill) must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _warm(config: _Config) -> int:
    _scanner(config)
    return 0


class DetectorPool:
    """``workers`` processes running the security detectors (see the module docstring).

    ``detector_factory`` must be picklable (a module-level function): each worker calls
    it once. :meth:`restart` replaces a broken pool (a worker died).
    """

    def __init__(
        self,
        workers: int,
        *,
        detector_factory: DetectorFactory = default_detectors,
        cache_size: int = DEFAULT_CACHE_SIZE,
        start_method: str = "spawn",
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._config = _Config(detector_factory, cache_size)
        self._context = multiprocessing.get_context(start_method)
        self._lock = threading.Lock()
        #: Incremented by every :meth:`restart`.
        self.generation = 0
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        executor = ProcessPoolExecutor(self.workers, mp_context=self._context,
                                       initializer=_worker_init)
        # Start every worker now (they import the detectors), not on the first spans.
        for future in [executor.submit(_warm, self._config) for _ in range(self.workers)]:
            future.result()
        return executor

    def submit(self, jobs: Sequence[Job]) -> tuple[Future[BatchResult], int]:
        """Scan ``jobs`` in a worker; the future and the pool generation it went to.

        Raises ``BrokenProcessPool`` / ``RuntimeError`` when the pool is broken or shut down.
        """
        with self._lock:
            return self._executor.submit(scan_batch, self._config, list(jobs)), self.generation

    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and diagnostics)."""
        processes = getattr(self._executor, "_processes", None) or {}
        return sorted(processes)

    def restart(self) -> None:
        """Replace the executor (after a worker died); raises when workers cannot start."""
        with self._lock:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()
            self.generation += 1

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
