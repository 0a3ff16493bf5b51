"""The secret that tenant ids derived from API keys are keyed with, kept across restarts.

A tenant id derived from an API key is ``key-`` + an HMAC of the key, so the key itself is
never stored. The HMAC's secret must stay the same from one start to the next, or every
tenant's stats, limits and budgets split at each restart. ``tenancy.key_secret`` sets it;
without it, one is generated once and kept in a file beside the span store (mode 0600,
created atomically so that several processes starting at once agree on one).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["SECRET_SUFFIX", "load_or_create_secret", "secret_path_for"]

#: The file beside the store: ``llmtrace.db`` -> ``llmtrace.db.tenant-key``.
SECRET_SUFFIX = ".tenant-key"
_BYTES = 32


def secret_path_for(store_path: str | os.PathLike[str]) -> Path:
    path = Path(store_path)
    return path.with_name(path.name + SECRET_SUFFIX)


def load_or_create_secret(path: Path) -> tuple[str, bool]:
    """The secret kept in ``path``, creating it (0600) when there is none yet.

    Returns ``(secret, created)``. Two processes creating it at the same moment end up
    with the same secret: each writes its own temporary file, and only the first hard
    link to ``path`` succeeds; the other reads what won. Raises OSError when the file
    cannot be read or written (the caller says what to do).
    """
    try:
        return _read(path), False
    except FileNotFoundError:
        pass
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    candidate = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(candidate, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(candidate)
    return _read(path), created


def _read(path: Path) -> str:
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 16:
        raise OSError(f"{path} holds no usable secret (empty or too short); delete it to "
                      "have a new one generated, or set tenancy.key_secret")
    return secret
