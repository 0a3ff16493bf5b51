"""CPU time and memory of a process and all its descendants, read from Linux's /proc.

A benchmark target is often more than one process: ``llmtrace-otel serve --workers N`` is the
command's process (the telemetry process) plus N relay workers (plus detector workers with
``security.workers``), nginx is a master and a worker. What a request costs is the CPU of the
whole tree, whichever process spent it.

CPU of a tree = for every live process in it, ``utime + stime`` (all its threads) plus
``cutime + cstime`` (the children it has already reaped). A relay worker that dies and is
restarted between two readings is therefore still counted: the kernel adds its CPU to its
parent's ``cutime``/``cstime`` when the parent reaps it, and its replacement is a new live
process of the tree. Take one :func:`sample_tree` before a measured phase and one after,
and subtract (:meth:`TreeSample.cpu_since`). Resolution: one clock tick (``SC_CLK_TCK``,
10 ms here) per process and reading.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessSample", "TreeSample", "read_rss_mb", "sample_tree", "tree_pids"]

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
# Fields of /proc/PID/stat counted after the ")" that ends the command name (proc(5) numbers
# them from 1 with pid and comm first, so field N is index N - 3 here).
_PPID, _UTIME, _STIME, _CUTIME, _CSTIME = 1, 11, 12, 13, 14


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(command name, fields after it) of one process; None if it is gone."""
    try:
        text = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    name, _, rest = text.partition(" (")[2].rpartition(")")
    return name, rest.split()


def read_rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB, from /proc/PID/status; (0, 0) for a zombie."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in values:
            values[name] = int(rest.split()[0]) / 1024.0  # kB -> MiB
    return values["VmRSS"], values["VmHWM"]


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants, parents before children (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is not None:
            children.setdefault(int(stat[1][_PPID]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        current = todo.pop(0)
        found.append(current)
        todo.extend(sorted(children.get(current, [])))
    return found


@dataclass(frozen=True)
class ProcessSample:
    """One process of a tree at one moment."""

    pid: int
    ppid: int
    name: str
    cpu_s: float  # its own utime + stime, every thread
    reaped_cpu_s: float  # cutime + cstime: children it has reaped
    rss_mb: float
    hwm_mb: float  # peak RSS


@dataclass(frozen=True)
class TreeSample:
    """A process tree at one moment (``time.monotonic()`` in ``at``)."""

    root: int
    at: float
    processes: tuple[ProcessSample, ...]

    @property
    def cpu_s(self) -> float:
        return sum(p.cpu_s + p.reaped_cpu_s for p in self.processes)

    @property
    def rss_mb(self) -> float:
        """Sum of VmRSS (pages shared between processes count once per process)."""
        return sum(p.rss_mb for p in self.processes)

    @property
    def hwm_mb(self) -> float:
        """Sum of each process's peak RSS (an upper bound of the tree's peak)."""
        return sum(p.hwm_mb for p in self.processes)

    def cpu_since(self, before: TreeSample) -> float:
        """CPU seconds the tree spent between ``before`` and this sample."""
        if before.root != self.root:
            raise ValueError(f"samples of two trees ({before.root} and {self.root})")
        return self.cpu_s - before.cpu_s

    def cpu_by_process(self, before: TreeSample) -> dict[int, float]:
        """CPU seconds per live process since ``before``; a process started in between counts
        from zero, and the CPU of processes that died is in their parent's figure."""
        earlier = {p.pid: p.cpu_s + p.reaped_cpu_s for p in before.processes}
        return {p.pid: p.cpu_s + p.reaped_cpu_s - earlier.get(p.pid, 0.0)
                for p in self.processes}

    def restarted_since(self, before: TreeSample) -> tuple[int, ...]:
        """Pids of ``before`` that are no longer in the tree (died, restarted or not)."""
        now = {p.pid for p in self.processes}
        return tuple(p.pid for p in before.processes if p.pid not in now)


def sample_tree(root: int) -> TreeSample:
    """CPU and RSS of ``root`` and every descendant, now. Raises ProcessLookupError if
    ``root`` itself is gone."""
    processes = []
    for pid in tree_pids(root):
        stat = _stat(pid)
        if stat is None:
            if pid == root:
                raise ProcessLookupError(f"process {root} is gone")
            continue  # exited between the scan and now: its parent's cutime will hold it
        name, fields = stat
        try:
            rss, hwm = read_rss_mb(pid)
        except OSError:
            rss, hwm = 0.0, 0.0
        processes.append(ProcessSample(
            pid=pid, ppid=int(fields[_PPID]), name=name,
            cpu_s=(int(fields[_UTIME]) + int(fields[_STIME])) * _TICK_S,
            reaped_cpu_s=(int(fields[_CUTIME]) + int(fields[_CSTIME])) * _TICK_S,
            rss_mb=rss, hwm_mb=hwm))
    return TreeSample(root=root, at=time.monotonic(), processes=tuple(processes))
