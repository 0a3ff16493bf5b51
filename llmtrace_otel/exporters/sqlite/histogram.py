"""A mergeable latency histogram: log-spaced buckets, stored as a compact blob.

The rollup (``rollup.py``) keeps one histogram of ``duration_ms`` per hour and group, so that
p50/p95 over any set of hours are a merge of histograms instead of a sort of every call.

**Buckets.** 256 fixed buckets. Bucket 0 holds durations below :data:`MIN_MS` (10 µs, and
zero or negative ones); bucket ``k`` in 1..254 holds ``[MIN_MS * RATIO**(k-1),
MIN_MS * RATIO**k)``, with ``RATIO`` 1.1, which reaches ~91 hours; bucket 255 holds
everything longer. A percentile is reported as its bucket's geometric midpoint, so for a
duration in 10 µs .. 91 h the reported value is within ``sqrt(1.1) - 1`` = 4.9 %
(:data:`RELATIVE_ERROR`) of the exact nearest-rank value. Bucket 0 reports 0.0 (an absolute
error under 10 µs) and bucket 255 its lower bound.

**Encoding.** A histogram is a sequence of 64-bit counts, and in Python one ``int`` that holds
count ``k`` in bits ``64k .. 64k+63``: merging histograms is then a single big-integer addition
(no per-bucket loop; no field can carry into the next before 2**64 calls). The blob is that
integer without its empty ends: one byte, the lowest non-empty bucket, then the counts from it
to the highest non-empty bucket as little-endian 64-bit words (a typical hour of one model
spans 30-40 buckets: ~300 bytes). The empty histogram is the empty blob.

:func:`register_functions` adds the SQL functions the rollup's upserts and triggers call
(``llmtrace_hist_merge``, ``llmtrace_hist_add``, ``llmtrace_hist_remove``) to a connection.
"""

from __future__ import annotations

import math
import sqlite3
import struct
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "BUCKETS",
    "MIN_MS",
    "RATIO",
    "RELATIVE_ERROR",
    "bucket_of",
    "counts_of",
    "decode",
    "dense_counts",
    "encode",
    "encode_counts",
    "from_counts",
    "percentile_ms",
    "register_functions",
    "value_of_bucket",
]

BUCKETS: Final = 256
MIN_MS: Final = 0.01
RATIO: Final = 1.1
#: Largest relative error of a reported percentile (for durations from MIN_MS to ~91 h).
RELATIVE_ERROR: Final = math.sqrt(RATIO) - 1.0
_WORD: Final = 64  # bits per bucket count
_TOP: Final = BUCKETS - 1
_INV_LOG_RATIO: Final = 1.0 / math.log(RATIO)
_INV_MIN: Final = 1.0 / MIN_MS
_TOP_MS: Final = MIN_MS * RATIO ** (_TOP - 1)  # ~91 h: the overflow bucket starts here
_ALL: Final = struct.Struct(f"<{BUCKETS}Q")
_VALUES: Final = (
    0.0,
    *(MIN_MS * RATIO ** (k - 0.5) for k in range(1, _TOP)),
    _TOP_MS,
)


def bucket_of(duration_ms: float) -> int:
    """The bucket of one duration (ms)."""
    if not duration_ms >= MIN_MS:  # below the first bucket (zero, negative), or NaN
        return 0
    if duration_ms >= _TOP_MS:
        return _TOP
    bucket = int(math.log(duration_ms * _INV_MIN) * _INV_LOG_RATIO) + 1
    return bucket if bucket < _TOP else _TOP


def value_of_bucket(bucket: int) -> float:
    """The duration (ms) a percentile falling in ``bucket`` is reported as."""
    return _VALUES[bucket]


def decode(blob: bytes | None) -> int:
    """The histogram of a blob as one integer (count k in bits 64k..64k+63)."""
    if not blob:
        return 0
    return int.from_bytes(blob[1:], "little") << (blob[0] * _WORD)


def encode(value: int) -> bytes:
    """The blob of a histogram integer (the inverse of :func:`decode`)."""
    if value <= 0:
        return b""
    low = ((value & -value).bit_length() - 1) // _WORD
    shifted = value >> (low * _WORD)
    words = (shifted.bit_length() + _WORD - 1) // _WORD
    return bytes((low,)) + shifted.to_bytes(words * 8, "little")


def encode_counts(counts: dict[int, int]) -> bytes:
    """The blob of ``bucket -> count``."""
    value = 0
    for bucket, count in counts.items():
        value += count << (bucket * _WORD)
    return encode(value)


def from_counts(counts: Sequence[int]) -> int:
    """The histogram integer of a sequence of bucket counts (PostgreSQL's ``bigint[]``)."""
    return int.from_bytes(struct.pack(f"<{len(counts)}Q", *counts), "little")


def dense_counts(counts: dict[int, int]) -> list[int]:
    """``bucket -> count`` as the list of all :data:`BUCKETS` counts."""
    dense = [0] * BUCKETS
    for bucket, count in counts.items():
        dense[bucket] = count
    return dense


def counts_of(value: int) -> tuple[int, ...]:
    """The 256 bucket counts of a histogram integer."""
    return _ALL.unpack(value.to_bytes(BUCKETS * 8, "little"))


def percentile_ms(counts: Sequence[int], ranks: Iterable[int]) -> list[float | None]:
    """The reported duration at each 1-based nearest rank (None past the last count)."""
    wanted = sorted(set(ranks))
    found: dict[int, float] = {}
    seen = 0
    index = 0
    for bucket, count in enumerate(counts):
        if not count:
            continue
        seen += count
        while index < len(wanted) and wanted[index] <= seen:
            found[wanted[index]] = _VALUES[bucket]
            index += 1
        if index == len(wanted):
            break
    return [found.get(rank) for rank in ranks]


def _merge(left: bytes | None, right: bytes | None) -> bytes:
    return encode(decode(left) + decode(right))


def _add(blob: bytes | None, duration_ms: float | None) -> bytes:
    if duration_ms is None:
        return blob or b""
    return encode(decode(blob) + (1 << (bucket_of(duration_ms) * _WORD)))


def _remove(blob: bytes | None, duration_ms: float | None) -> bytes:
    """One call fewer in ``duration_ms``'s bucket; a bucket that is already empty stays at 0
    (never borrows from its neighbour)."""
    if duration_ms is None:
        return blob or b""
    value = decode(blob)
    shift = bucket_of(duration_ms) * _WORD
    if (value >> shift) & 0xFFFF_FFFF_FFFF_FFFF:
        value -= 1 << shift
    return encode(value)


def register_functions(conn: sqlite3.Connection) -> None:
    """Add the histogram functions the rollup's upserts and triggers call to ``conn``."""
    conn.create_function("llmtrace_hist_merge", 2, _merge, deterministic=True)
    conn.create_function("llmtrace_hist_add", 2, _add, deterministic=True)
    conn.create_function("llmtrace_hist_remove", 2, _remove, deterministic=True)
