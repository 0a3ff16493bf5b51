"""The security request guard: input-side detectors on the request path, flag or block.

With ``security.enforcement`` at ``flag`` or ``block`` the proxy runs the input-side
detectors (prompt injection and jailbreak, and PII or secrets when ``security.enforce_types``
names them) on the parsed request before it goes upstream:

* ``flag``: the call goes through; the response carries ``X-LLMTrace-Security: flagged;
  types=...`` and the span ``llmtrace.security.guard.action = "flag"`` and
  ``llmtrace.security.guard.finding_types``.
* ``block``: the call never reaches the upstream; the client gets 400 in its API's error
  shape (code ``security_policy_violation``) naming the finding types, and the span is
  marked as above with ``action = "block"`` and ``error.type = security_policy_violation``.

Only findings at or above ``security.enforce_min_severity`` whose type starts with one of
the ``security.enforce_types`` count. The check runs synchronously on the event loop, so it
reads at most ``security.guard_max_chars`` of each text (head and tail), and it has a time
budget, ``security.guard_budget_ms``: the clock is read before each detector runs on each
text, and texts longer than 8,192 characters are read in 8,192-character pieces (512 of
overlap, so a phrase across a cut is still seen) with the clock read between pieces. A
detector call on one piece cannot be interrupted (pure Python has no safe point inside a
regex), so the check can overrun the budget by one detector run on one piece (~3 ms for
the injection detector on 8 KB on this kind of machine). Once the budget is spent the
remaining runs are skipped. What was found so far is enforced; if nothing was, the
unfinished check is treated like a failed one. The span gets
``llmtrace.security.guard.budget_exceeded = true`` and the chain counts
``llmtrace_telemetry_dropped_total{stage="guard.security", reason="budget_exceeded"}``.

If the check fails (or runs out of time with nothing found), the proxy fails open (the guard
chain logs and counts it), unless ``security.fail_closed`` is set in block mode: then the
call is refused with 503.

The background SecurityProcessor still analyses every span; this guard only decides.
Results are remembered per text (``processors.security.cache``), so the earlier turns a
conversation sends again on every call are not analysed again on the request path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.util.types import AttributeValue

from llmtrace_otel.config.choices import Enforcement
from llmtrace_otel.guards import CallInfo, CallResult, Verdict
from llmtrace_otel.providers.lenient import lenient_request
from llmtrace_otel.providers.types import (
    ChatMessage,
    LLMRequest,
    TextPart,
    ToolCallResponsePart,
)
from llmtrace_otel.web.errors import ErrorReply
from llmtrace_processors.attributes import (
    LLMTRACE_SECURITY_GUARD_ACTION,
    LLMTRACE_SECURITY_GUARD_BUDGET_EXCEEDED,
    LLMTRACE_SECURITY_GUARD_FINDINGS,
)
from llmtrace_processors.security.cache import DEFAULT_CACHE_SIZE, FindingsCache
from llmtrace_processors.security.detectors import Detector, ScanContext, default_detectors
from llmtrace_processors.security.findings import Finding, Severity, Side
from llmtrace_processors.security.segments import Segment, Source

__all__ = [
    "BLOCKED_CODE",
    "BUDGET_EXCEEDED",
    "FAILED_CODE",
    "FLAG_HEADER",
    "UNCHECKED",
    "UNREADABLE_CODE",
    "GuardScan",
    "SecurityGuard",
    "request_segments",
]

_log = logging.getLogger(__name__)

FLAG_HEADER = "X-LLMTrace-Security"
BLOCKED_CODE = "security_policy_violation"
FAILED_CODE = "security_check_failed"
UNREADABLE_CODE = "request_unreadable"
#: Reason counted when the check ran out of its time budget.
BUDGET_EXCEEDED = "budget_exceeded"
#: Reason counted for an LLM call whose body the check could not read at all.
UNCHECKED = "unreadable_request"
_ROLE_SOURCE = {"user": Source.USER, "tool": Source.TOOL, "function": Source.TOOL,
                "system": Source.SYSTEM, "developer": Source.SYSTEM}
#: Longer texts are checked in pieces of this size, overlapping by _OVERLAP (budget checks
#: between pieces).
_PIECE = 8192
_OVERLAP = 512
#: Which built-in detector a finding-type prefix needs.
_DETECTOR_FOR_PREFIX = {"prompt_injection": "injection", "jailbreak": "injection",
                        "pii": "pii", "secret": "secrets"}


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n" + text[-half:]


def _message_segments(message: ChatMessage, index: int, limit: int) -> Iterator[Segment]:
    source = _ROLE_SOURCE.get(message.role.lower(), Source.ASSISTANT)
    if source == Source.ASSISTANT:
        return  # earlier model turns are not the attacker's input
    for j, part in enumerate(message.parts):
        location = f"messages[{index}].parts[{j}]"
        if isinstance(part, TextPart):
            yield Segment(_bounded(part.content, limit), Side.INPUT, source, location)
        elif isinstance(part, ToolCallResponsePart):
            yield Segment(_bounded(part.response, limit), Side.INPUT, Source.TOOL, location)


def _pieces(segment: Segment) -> Iterator[Segment]:
    """``segment``, or its text in overlapping pieces of at most ``_PIECE`` characters."""
    text = segment.text
    if len(text) <= _PIECE:
        yield segment
        return
    step = _PIECE - _OVERLAP
    for start in range(0, len(text) - _OVERLAP, step):
        yield Segment(text[start:start + _PIECE], segment.side, segment.source,
                      segment.location, segment.offset)


def request_segments(request: LLMRequest, limit: int) -> list[Segment]:
    """The texts of a parsed request a request-path check reads, each at most ``limit``."""
    out: list[Segment] = []
    for j, part in enumerate(request.system_instructions):
        if isinstance(part, TextPart):
            out.append(Segment(_bounded(part.content, limit), Side.INPUT, Source.SYSTEM,
                               f"system[{j}]"))
    for i, message in enumerate(request.input_messages):
        out.extend(_message_segments(message, i, limit))
    for i, tool in enumerate(request.tool_definitions):
        if tool.description:
            out.append(Segment(_bounded(tool.description, limit), Side.INPUT, Source.TOOL,
                               f"tools[{i}]"))
    return [s for s in out if s.text.strip()]


@dataclass(frozen=True, slots=True)
class GuardScan:
    """What one request-path check found, and whether it read everything it meant to."""

    findings: tuple[Finding, ...]
    complete: bool  # False: the time budget ran out before every (detector, text) pair ran
    elapsed_ms: float
    skipped: int = 0  # (detector, text) pairs not run


class SecurityGuard:
    """A :class:`~llmtrace_otel.guards.RequestGuard` enforcing the security policy."""

    name = "security"

    def __init__(
        self,
        *,
        mode: Enforcement,
        enforce_types: Sequence[str] = ("prompt_injection", "jailbreak"),
        min_severity: Severity = Severity.HIGH,
        fail_closed: bool = False,
        max_chars: int = 50_000,
        budget_ms: float = 5.0,
        detectors: Sequence[Detector] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if mode not in (Enforcement.FLAG, Enforcement.BLOCK):
            raise ValueError(f"security guard mode must be flag or block, got {mode!r}")
        if budget_ms < 0:
            raise ValueError(f"security guard budget_ms must be >= 0, got {budget_ms}")
        #: Time the check may take, in ms; 0 = no limit.
        self.budget_ms = budget_ms
        self.mode = Enforcement(mode)
        self.enforce_types = tuple(t.strip() for t in enforce_types if t.strip())
        self.min_severity = min_severity
        self.fail_closed = fail_closed
        self.max_chars = max_chars
        if detectors is None:
            wanted = {_DETECTOR_FOR_PREFIX.get(t.split(".", 1)[0]) for t in self.enforce_types}
            detectors = [d for d in default_detectors() if d.name in wanted]
        self.detectors = tuple(detectors)
        self._cache = FindingsCache(cache_size)  # earlier turns come back on every call

    def _enforced(self, finding: Finding) -> bool:
        if finding.severity < self.min_severity:
            return False
        kind = finding.finding_type
        return any(kind == t or kind.startswith(t + ".") for t in self.enforce_types)

    def inspect(self, request: LLMRequest) -> list[Finding]:
        """The enforced findings in ``request`` (synchronous; what ``check`` decides on)."""
        return list(self.scan(request).findings)

    def scan(self, request: LLMRequest) -> GuardScan:
        """Run the detectors within the time budget; the enforced findings and whether
        every (detector, text) pair ran."""
        began = time.perf_counter()
        deadline = began + self.budget_ms / 1000 if self.budget_ms else None
        segments = request_segments(request, self.max_chars)
        system = [s.text for s in segments if s.source == Source.SYSTEM]
        context = ScanContext(system_prompt="\n".join(system) if system else None)
        found: list[Finding] = []
        pieces = [piece for s in segments for piece in _pieces(s)]
        pairs = [(d, s) for d in self.detectors for s in pieces if d.applies_to(s)]
        for ran, (detector, segment) in enumerate(pairs):
            if deadline is not None and time.perf_counter() >= deadline:  # the safe point
                return GuardScan(tuple(found), False, (time.perf_counter() - began) * 1000,
                                 len(pairs) - ran)
            found.extend(f for f in self._cache.detect(detector, segment, context)
                         if self._enforced(f))
        return GuardScan(tuple(found), True, (time.perf_counter() - began) * 1000)

    def _failed(self, attributes: dict[str, AttributeValue], counted: tuple[str, ...],
                why: str) -> Verdict:
        attributes[LLMTRACE_SECURITY_GUARD_ACTION] = "error"
        return Verdict(
            attributes=attributes, counted=counted,
            reject=ErrorReply(503, FAILED_CODE, f"The security check of this request {why} "
                              "and the proxy is set to fail closed; retry later or contact "
                              "the operator."),
        )

    def _unreadable(self) -> Verdict:
        """Fail closed on a body the check cannot read at all (not JSON, an encoding that
        cannot be decoded): the upstream might read what the check could not."""
        return Verdict(
            attributes={LLMTRACE_SECURITY_GUARD_ACTION: "error"}, counted=(UNCHECKED,),
            reject=ErrorReply(400, UNREADABLE_CODE,
                              "The security check cannot read this request body (it is not "
                              "the API's JSON, or its Content-Encoding cannot be decoded) and "
                              "the proxy is set to fail closed: send a JSON body, "
                              "uncompressed or gzip/deflate."))

    async def check(self, call: CallInfo) -> Verdict | None:
        if call.api is None:
            return None  # not an LLM call: nothing the model reads
        fail_closed = self.mode is Enforcement.BLOCK and self.fail_closed
        request = call.request
        if request is None:  # the strict parser refused it: the upstream may still read it
            request = lenient_request(call.unparsed) if call.unparsed is not None else None
            if request is None:
                if fail_closed:
                    return self._unreadable()
                return Verdict(attributes={LLMTRACE_SECURITY_GUARD_ACTION: "unchecked"},
                               counted=(UNCHECKED,))
        try:
            scan = self.scan(request)
        except Exception:
            if fail_closed:
                _log.exception("security check failed; call refused (security.fail_closed)")
                return self._failed({}, (), "failed")
            raise  # the guard chain logs, counts and lets the call through
        attributes: dict[str, AttributeValue] = {}
        counted: tuple[str, ...] = ()
        if not scan.complete:
            attributes[LLMTRACE_SECURITY_GUARD_BUDGET_EXCEEDED] = True
            counted = (BUDGET_EXCEEDED,)
            _log.warning("security check stopped after %.1f ms (security.guard_budget_ms=%s); "
                         "%d detector runs skipped", scan.elapsed_ms, self.budget_ms,
                         scan.skipped)
        found = scan.findings
        if not found:
            if scan.complete:
                return None
            if fail_closed:
                return self._failed(attributes, counted, "did not finish within its time "
                                    "budget (security.guard_budget_ms)")
            return Verdict(attributes=attributes, counted=counted)  # fail open, marked
        types = tuple(sorted({f.finding_type for f in found}))
        worst = max(f.severity for f in found)
        attributes[LLMTRACE_SECURITY_GUARD_ACTION] = self.mode.value
        attributes[LLMTRACE_SECURITY_GUARD_FINDINGS] = types
        header = (FLAG_HEADER, f"{'blocked' if self.mode is Enforcement.BLOCK else 'flagged'}; "
                               f"types={','.join(types)}")
        if self.mode is Enforcement.FLAG:
            return Verdict(attributes=attributes, response_headers=(header,), counted=counted)
        message = (
            f"This request was blocked by the llmtrace-otel security policy and was not sent "
            f"to the model: {', '.join(types)} ({worst.label}) found in the input. If this is "
            f"a false positive, rephrase the request or ask the operator to adjust "
            f"security.enforcement / security.enforce_types."
        )
        return Verdict(attributes=attributes, response_headers=(header,), counted=counted,
                       reject=ErrorReply(400, BLOCKED_CODE, message))

    def on_complete(self, call: CallInfo, result: CallResult) -> None:
        return None

