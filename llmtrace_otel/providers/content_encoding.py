"""Undo a response's ``Content-Encoding`` for parsing, in one piece or chunk by chunk.

Both front doors parse what the upstream sent: the proxy relays the bytes unchanged and
parses a decoded copy, the SDK instrumentation sees the raw stream before httpx decodes
it. ``gzip`` and ``deflate`` are decoded; anything else (``br``, ``zstd``) is reported
as not decodable and left unparsed, never guessed at.
"""

from __future__ import annotations

import zlib

__all__ = ["decoded", "inflater"]


def inflater(encoding: str) -> zlib._Decompress | None:
    """An incremental decoder for ``encoding`` (lower-case), or None if unsupported."""
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def decoded(body: bytes, encoding: str) -> bytes | None:
    """The body without its content-encoding, for parsing; None if we cannot decode it."""
    if not encoding or encoding == "identity":
        return body
    decoder = inflater(encoding)
    if decoder is None:
        return None
    try:
        return decoder.decompress(body) + decoder.flush()
    except zlib.error:
        return None
