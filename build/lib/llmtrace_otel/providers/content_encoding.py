"""Undo a response's ``Content-Encoding`` for parsing, in one piece or chunk by chunk.

Both front doors parse what the upstream sent: the proxy relays the bytes unchanged and
parses a decoded copy, the SDK instrumentation sees the raw stream before httpx decodes
it. ``gzip`` and ``deflate`` are decoded; anything else (``br``, ``zstd``) is reported
as not decodable and left unparsed, never guessed at.

Decoding is bounded: deflate inflates up to ~1,000 times, so a 32 MB body could become
32 GB. :func:`decoded` stops past its ``limit`` (the body is then not parsed), and
:func:`inflate` hands a chunk's output on in pieces of at most ``piece`` bytes, so the
SSE decoder's own limit applies before the rest is inflated.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = ["INFLATE_PIECE", "DecodedTooLarge", "decoded", "inflate", "inflater"]

#: Largest piece :func:`inflate` hands on at once.
INFLATE_PIECE = 1 << 20


class DecodedTooLarge(ValueError):
    """A body that decodes to more than the limit (not parsed; it was relayed as it came)."""

    def __init__(self, encoding: str, limit: int) -> None:
        super().__init__(f"{encoding} body decodes to more than {limit} bytes; not parsed")


def inflater(encoding: str) -> zlib._Decompress | None:
    """An incremental decoder for ``encoding`` (lower-case), or None if unsupported."""
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def inflate(decoder: zlib._Decompress, data: bytes, piece: int = INFLATE_PIECE
            ) -> Iterator[bytes]:
    """``decoder.decompress(data)``, as pieces of at most ``piece`` bytes, lazily.

    Raises ``zlib.error`` on corrupt input."""
    out = decoder.decompress(data, piece)
    while True:
        if out:
            yield out
        tail = decoder.unconsumed_tail
        if not tail:
            return
        out = decoder.decompress(tail, piece)


def decoded(body: bytes, encoding: str, *, limit: int) -> bytes | None:
    """The body without its content-encoding, for parsing; None if we cannot decode it.

    Raises :class:`DecodedTooLarge` if it decodes to more than ``limit`` bytes."""
    if not encoding or encoding == "identity":
        return body
    decoder = inflater(encoding)
    if decoder is None:
        return None
    try:
        plain = decoder.decompress(body, limit + 1)
        if not decoder.unconsumed_tail:
            plain += decoder.flush()
        if len(plain) > limit or decoder.unconsumed_tail:
            raise DecodedTooLarge(encoding, limit)
        return plain
    except zlib.error:
        return None
