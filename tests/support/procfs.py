"""Processes as Linux's /proc shows them: the children of a process, and whether one runs.

Shared by the collector-worker tests and ``bench/receiver_throughput.py`` (detector worker
processes are children of ``llmtrace-otel collect``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["child_pids", "is_running"]


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...)."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(entry.name)[1])
        except OSError:
            continue  # it exited meanwhile
        if parent == pid:
            found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False
