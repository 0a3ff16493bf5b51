"""A real, throw-away PostgreSQL cluster for the tests: ``initdb`` in a temp dir, ``postgres``
on an unused loopback port, stopped and removed at the end.

Debian's binaries live in ``/usr/lib/postgresql/<version>/bin`` (``make postgresql`` installs
them, as root, from ``.ci/run``); PostgreSQL refuses to run as root, so when the tests run as
root the cluster runs as ``nobody`` in a directory it owns. Nothing here needs a running
system service. :func:`find_binaries` returns None when no server is installed: the fixtures
then skip with that reason, the only case where they may.

The cluster is tuned for tests (no fsync: a crash of the test machine loses nothing anyone
wants) unless ``durable=True`` (benchmarks).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg

__all__ = ["PostgresCluster", "find_binaries", "free_port", "terminate_backends", "tiny_tmpfs"]

_DEBIAN = Path("/usr/lib/postgresql")
_FAST: Mapping[str, str] = {"fsync": "off", "synchronous_commit": "off",
                            "full_page_writes": "off"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binaries() -> Path | None:
    """The ``bin`` directory of the newest installed PostgreSQL server, or None."""
    if _DEBIAN.is_dir():
        versions = sorted((p for p in _DEBIAN.iterdir() if (p / "bin" / "postgres").exists()),
                          key=lambda p: int(p.name) if p.name.isdigit() else 0)
        if versions:
            return versions[-1] / "bin"
    found = shutil.which("postgres")
    return Path(found).parent if found and shutil.which("initdb") else None


class PostgresCluster:
    """One ``postgres`` server of a fresh cluster. ``with`` starts and removes it;
    :meth:`stop` / :meth:`start` restart it on the same port and data (outage tests)."""

    def __init__(self, bindir: Path, *, durable: bool = False,
                 settings: Mapping[str, str] | None = None) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.user = "nobody" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="llmtrace-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._settings = {**({} if durable else _FAST), **(settings or {})}
        self._process: subprocess.Popen[bytes] | None = None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"])

    # -- life cycle -------------------------------------------------------------------------

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, user=self.user, cwd=self.root,
                                check=False)
        if result.returncode:
            raise RuntimeError(f"{argv[0]} failed: {result.stderr.decode(errors='replace')}")

    def start(self, timeout_s: float = 30.0) -> None:
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                "-c", "max_connections=200", "-c", "shared_buffers=64MB"]
        for name, value in self._settings.items():
            argv += ["-c", f"{name}={value}"]
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                             user=self.user, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{self.log_text()}") from None
                time.sleep(0.05)

    def stop(self, mode: signal.Signals = signal.SIGINT) -> None:
        """Shut the server down (SIGINT: fast shutdown, SIGQUIT: immediate) and wait."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(mode)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- databases --------------------------------------------------------------------------

    def url(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str, *, tablespace: str | None = None) -> str:
        """A new, empty database; returns its URL."""
        where = f" TABLESPACE {tablespace}" if tablespace else ""
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{where}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def tiny_tmpfs(size: str, owner: str | None) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``"6m"``) mounted on a new directory owned by ``owner``:
    a real file system that fills up. Needs root (``mount``); raises PermissionError else."""
    if os.geteuid() != 0:
        raise PermissionError("mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="llmtrace-tiny-"))
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                             str(where)], capture_output=True, check=False)
    if result.returncode:
        where.rmdir()
        raise PermissionError(f"mount -t tmpfs failed: {result.stderr.decode().strip()}")
    try:
        if owner is not None:
            entry = pwd.getpwnam(owner)
            os.chown(where, entry.pw_uid, entry.pw_gid)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def terminate_backends(cluster: PostgresCluster, database: str) -> None:
    """Close every other session of ``database`` (what a server restart does to clients)."""
    cluster.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")

