"""Processes as Linux's /proc shows them: the children of a process, whether one runs, and
which of this process's file descriptors is one end of a TCP connection.

Shared by the collector-worker tests and ``bench/receiver_throughput.py`` (detector worker
processes are children of ``llmtrace-otel collect``), and the proxy's TCP_NODELAY test.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["child_pids", "is_running", "tcp_socket_fd"]


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


def _proc_address(address: tuple[str, int]) -> str:
    """An IPv4 (host, port) as /proc/net/tcp prints it: ``0100007F:1F90``."""
    host = int.from_bytes(socket.inet_aton(address[0]), "little")
    return f"{host:08X}:{address[1]:04X}"


def tcp_socket_fd(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The file descriptor of this process's IPv4 TCP socket from ``local`` to ``remote``
    (None while there is none): found through the kernel's tables, in time proportional to
    the open connections and descriptors, whatever else the process holds."""
    wanted = (_proc_address(local), _proc_address(remote))
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            inode = fields[9]
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for entry in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(entry) == target:
                return int(entry.name)
        except OSError:
            continue  # closed meanwhile
    return None
