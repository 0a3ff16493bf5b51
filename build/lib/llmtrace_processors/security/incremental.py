"""Incremental scanning of text that arrives in pieces (streamed model output).

A :class:`TextStreamScanner` is fed the new text of one or more output streams (the
message text of choice 0, a tool call's arguments, ...) as it arrives. It scans when
``every`` (512) new characters have accumulated, or earlier at a line or sentence end
once ``min_every`` (128) have, and at :meth:`flush`. Each scan reads only the new tail plus the last
``overlap`` characters before it, so a value split across pieces (``AKIA`` | ``2OGY...``) is
still seen whole, while the cost stays proportional to the new text. Findings are
deduplicated across scans by (type, start offset in the stream).

What is looked for (:func:`default_stream_checks`): credentials and keys
(:func:`processors.security.secrets.detect_secrets`), data exfiltration through links and
images (the injection detector's output rules), and, when the call's system
instructions are known, their secrets or large parts of them echoed back
(:func:`processors.security.leakage.detect_leakage`; the overlap ratio is the window's).

Offsets of the returned findings index the whole text of their stream. Pure Python, no
I/O; one scanner per stream, used by one thread at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

from llmtrace_processors.security.findings import Finding, Side

__all__ = [
    "DEFAULT_EVERY",
    "DEFAULT_MIN_EVERY",
    "DEFAULT_OVERLAP",
    "StreamCheck",
    "StreamFinding",
    "TextStreamScanner",
    "default_stream_checks",
]

#: Scan once this many new characters have arrived ...
DEFAULT_EVERY = 512
#: ... or at a line/sentence end once this many have.
DEFAULT_MIN_EVERY = 128
#: Characters before the new text that each scan reads again (a PEM header and 64
#: characters of key body, an AWS key pair, a JWT header and payload fit).
DEFAULT_OVERLAP = 320

#: A check: the window's text -> findings with offsets into it.
StreamCheck = Callable[[str], Sequence[Finding]]

_BREAKS = ("\n", ". ", "! ", "? ")
_ENDS = (".", "!", "?", ":")
#: Reported once per stream, whatever window finds them (their start moves with the window).
_ONCE = frozenset({"leakage.system_prompt"})


@dataclass(frozen=True, slots=True)
class StreamFinding:
    """A finding in one stream; ``finding.start``/``end`` index that stream's whole text."""

    key: Hashable
    finding: Finding


class _Stream:
    __slots__ = ("held", "pending", "pending_chars", "scanned", "tail")

    def __init__(self) -> None:
        self.tail = ""  # the last `overlap` characters already scanned
        self.scanned = 0  # characters of the stream scanned so far
        self.pending: list[str] = []
        self.pending_chars = 0
        #: Findings that ran to the end of the last window (the value may go on), in stream
        #: offsets: reported when the next scan confirms them or they leave its view.
        self.held: list[Finding] = []


def default_stream_checks(system_prompt: str | None = None) -> list[StreamCheck]:
    """Secrets, exfiltration and (with ``system_prompt``) leakage checks, those installed."""
    checks: list[StreamCheck] = []
    try:
        from llmtrace_processors.security.secrets import detect_secrets
    except ImportError:  # pragma: no cover - an installation without the module
        pass
    else:
        checks.append(lambda text: detect_secrets(text, side=Side.OUTPUT))
    from llmtrace_processors.security.injection import detect_injection
    from llmtrace_processors.security.segments import Source

    checks.append(lambda text: detect_injection(text, source=Source.ASSISTANT, side=Side.OUTPUT))
    if system_prompt:
        try:
            from llmtrace_processors.security.leakage import detect_leakage, leakage_reference
        except ImportError:  # pragma: no cover
            return checks
        reference = leakage_reference(system_prompt)
        checks.append(lambda text: detect_leakage(text, reference, include_secrets=False))
    return checks


class TextStreamScanner:
    """Scans the texts of a streamed response as they grow (see the module docstring)."""

    __slots__ = ("_checks", "_every", "_min_every", "_overlap", "_seen", "_streams",
                 "scanned_chars", "scans")

    def __init__(
        self,
        checks: Sequence[StreamCheck],
        *,
        every: int = DEFAULT_EVERY,
        min_every: int = DEFAULT_MIN_EVERY,
        overlap: int = DEFAULT_OVERLAP,
    ) -> None:
        if every < 1 or min_every < 1 or overlap < 0:
            raise ValueError("every and min_every must be >= 1 and overlap >= 0")
        self._checks = tuple(checks)
        self._every = every
        self._min_every = min(min_every, every)
        self._overlap = overlap
        self._streams: dict[Hashable, _Stream] = {}
        self._seen: set[tuple[Hashable, str, int]] = set()
        #: Characters read by scans (new text plus overlaps), and the number of scans.
        self.scanned_chars = 0
        self.scans = 0

    def feed(self, key: Hashable, text: str) -> list[StreamFinding]:
        """Add ``text`` to stream ``key``; the new findings, if this made a scan due."""
        if not text:
            return []
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        stream.pending.append(text)
        stream.pending_chars += len(text)
        due = stream.pending_chars >= self._every or (
            stream.pending_chars >= self._min_every
            and (text.endswith(_ENDS) or any(b in text for b in _BREAKS)))
        return self._scan(key, stream) if due else []

    def flush(self) -> list[StreamFinding]:
        """Scan whatever has not been scanned yet (at the end of the stream)."""
        found: list[StreamFinding] = []
        for key, stream in self._streams.items():
            if stream.pending_chars or stream.held:
                found.extend(self._scan(key, stream, final=True))
        return found

    def _scan(self, key: Hashable, stream: _Stream, *, final: bool = False
              ) -> list[StreamFinding]:
        window = stream.tail + "".join(stream.pending)
        base = stream.scanned - len(stream.tail)  # where the window starts in the stream
        stream.scanned += stream.pending_chars
        stream.pending, stream.pending_chars = [], 0
        stream.tail = window[-self._overlap:] if self._overlap else ""
        self.scanned_chars += len(window)
        self.scans += 1
        ready: list[Finding] = []
        held: list[Finding] = []
        starts: set[int] = set()
        for check in self._checks:
            for finding in check(window):
                if finding.start >= 0:
                    finding = replace(finding, start=base + finding.start,
                                      end=base + finding.end)
                    starts.add(finding.start)
                if not final and finding.end == stream.scanned:  # the value may go on
                    held.append(finding)
                else:
                    ready.append(finding)
        for earlier in stream.held:
            if earlier.start in starts:
                continue  # found again, whole or still growing: this scan's version counts
            if earlier.start < base:
                ready.append(earlier)  # out of view now: it was whole
        stream.held = held
        found: list[StreamFinding] = []
        for finding in ready:
            start = -1 if finding.finding_type in _ONCE else max(finding.start, 0)
            mark = (key, finding.finding_type, start)
            if mark not in self._seen:
                self._seen.add(mark)
                found.append(StreamFinding(key, finding))
        return found
