"""Process metrics of the proxy itself, each in the convention its reader expects.

* Over OTLP: the OTel semantic conventions (``process.*``, ``cpython.gc.*``), as asynchronous
  instruments read at collection time. Values come from psutil (what the OTel system-metrics
  instrumentation uses) and :mod:`gc`.
* On /metrics: Prometheus' classic ``process_*`` and ``python_gc_*`` families
  (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``process_open_fds``,
  ``process_start_time_seconds``, ``python_gc_collections_total``, ...), from
  prometheus_client's own collectors registered in the proxy's private registry. Those are
  what a Prometheus user expects: every Prometheus client library exports them under these
  names, and the usual dashboards and alerts (``rate(process_cpu_seconds_total[1m])``) use
  them. The semconv families that say the same thing (:data:`PROMETHEUS_DUPLICATES`) are left
  out of /metrics, so no value appears twice there; ``process_thread_count``, which has no
  classic equivalent, stays.

Nothing is read per request; everything happens when a reader collects.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable

import psutil
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_MODE
from opentelemetry.semconv._incubating.attributes.cpython_attributes import (
    CPYTHON_GC_GENERATION,
)
from opentelemetry.semconv._incubating.metrics.cpython_metrics import (
    CPYTHON_GC_COLLECTED_OBJECTS,
    CPYTHON_GC_COLLECTIONS,
    CPYTHON_GC_UNCOLLECTABLE_OBJECTS,
)
from opentelemetry.semconv._incubating.metrics.process_metrics import (
    PROCESS_CPU_TIME,
    PROCESS_MEMORY_USAGE,
    PROCESS_MEMORY_VIRTUAL,
    PROCESS_THREAD_COUNT,
    PROCESS_UNIX_FILE_DESCRIPTOR_COUNT,
    PROCESS_UPTIME,
)
from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["PROMETHEUS_DUPLICATES", "observe_process", "register_process_collectors"]

#: Prometheus family names of the semconv instruments below whose value /metrics already
#: carries in a classic family (cpu time, resident and virtual memory, open files, start time
#: for uptime, the three GC counters): /metrics leaves these out.
PROMETHEUS_DUPLICATES: frozenset[str] = frozenset({
    "process_cpu_time_seconds",  # process_cpu_seconds_total
    "process_memory_usage_bytes",  # process_resident_memory_bytes
    "process_memory_virtual_bytes",  # process_virtual_memory_bytes
    "process_unix_file_descriptor_count",  # process_open_fds
    "process_uptime_seconds",  # time() - process_start_time_seconds
    "cpython_gc_collections",  # python_gc_collections_total
    "cpython_gc_collected_objects",  # python_gc_objects_collected_total
    "cpython_gc_uncollectable_objects",  # python_gc_objects_uncollectable_total
})

_Callback = Callable[[CallbackOptions], Iterable[Observation]]


def register_process_collectors(registry: CollectorRegistry) -> None:
    """Prometheus' classic process, GC and platform families, into ``registry``."""
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)


def observe_process(meter: Meter) -> None:
    """Register the semconv process and CPython GC instruments on ``meter``."""
    process = psutil.Process()
    started = process.create_time()

    def cpu(options: CallbackOptions) -> Iterable[Observation]:
        times = process.cpu_times()
        yield Observation(times.user, {CPU_MODE: "user"})
        yield Observation(times.system, {CPU_MODE: "system"})

    def memory(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(process.memory_info().rss)

    def virtual(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(process.memory_info().vms)

    def fds(options: CallbackOptions) -> Iterable[Observation]:
        if hasattr(process, "num_fds"):  # POSIX only
            yield Observation(process.num_fds())

    def threads(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(process.num_threads())

    def uptime(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(max(0.0, time.time() - started))

    def gc_stat(key: str) -> _Callback:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for generation, stats in enumerate(gc.get_stats()):
                yield Observation(stats[key], {CPYTHON_GC_GENERATION: generation})
        return callback

    meter.create_observable_counter(PROCESS_CPU_TIME, [cpu], unit="s",
                                    description="Total CPU seconds broken down by mode.")
    meter.create_observable_up_down_counter(PROCESS_MEMORY_USAGE, [memory], unit="By",
                                            description="Resident memory of the process.")
    meter.create_observable_up_down_counter(PROCESS_MEMORY_VIRTUAL, [virtual], unit="By",
                                            description="Virtual memory of the process.")
    meter.create_observable_up_down_counter(
        PROCESS_UNIX_FILE_DESCRIPTOR_COUNT, [fds], unit="{file_descriptor}",
        description="Open file descriptors (sockets included).")
    meter.create_observable_up_down_counter(PROCESS_THREAD_COUNT, [threads], unit="{thread}",
                                            description="Operating-system threads.")
    meter.create_observable_gauge(PROCESS_UPTIME, [uptime], unit="s",
                                  description="Seconds since the process started.")
    meter.create_observable_counter(CPYTHON_GC_COLLECTIONS, [gc_stat("collections")],
                                    unit="{collection}",
                                    description="Garbage collections per generation.")
    meter.create_observable_counter(CPYTHON_GC_COLLECTED_OBJECTS, [gc_stat("collected")],
                                    unit="{object}",
                                    description="Objects collected per generation.")
    meter.create_observable_counter(CPYTHON_GC_UNCOLLECTABLE_OBJECTS,
                                    [gc_stat("uncollectable")], unit="{object}",
                                    description="Uncollectable objects per generation.")
