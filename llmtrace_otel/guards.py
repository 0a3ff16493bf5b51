"""The request-guard contract: checks that run before a call is sent upstream.

This module is neutral ground: the proxy runs guards (:class:`GuardChain`), tenancy and
security implement them, and none of them imports another for it.

A guard sees the parsed call (route, headers, :class:`LLMRequest`) and may add attributes
to the call's span, add headers to the response, or reject the call with a
:class:`ErrorReply` answered in the client's API error shape (rate limit exceeded, budget
exhausted, prompt injection blocked, ...). After the call it is told how it ended, so it can
account for what was used (tokens, spend).

Guards are the one extension point on the request path, so they are held to its budget:

* ``check`` is awaited on the event loop for every call; keep it to microseconds, or to one
  round trip when it must ask shared state (Redis).
* A guard that raises is logged and counted (``llmtrace_telemetry_dropped_total{stage=
  "guard.<name>", reason="guard_error"}``) and the call goes on as if it had passed: the
  proxy fails open, because a bug in a check must not take the user's traffic down.
* Guards run in order; the first rejection wins and later guards are not asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from opentelemetry.util.types import AttributeValue

from llmtrace_otel.providers.types import LLMRequest, LLMResponse
from llmtrace_otel.web.errors import ErrorReply

__all__ = ["CallInfo", "CallResult", "GuardChain", "RequestGuard", "Verdict"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What a guard may look at: one incoming call, parsed."""

    method: str
    path: str
    headers: Mapping[str, str]  # the client's headers (case-insensitive mapping)
    #: The API shape of an LLM call (``openai.chat_completions``, ...); None: not one.
    api: str | None
    #: ``gen_ai.provider.name`` of the upstream the call goes to.
    provider: str
    request: LLMRequest | None  # None: not an LLM call, or unparseable
    #: The client's IP address as the server saw it (None: unknown).
    client_address: str | None = None
    #: An LLM call whose body the API's parser refused: the body as it reads (encoding
    #: undone), for checks that must read it anyway; None when parsed, not an LLM call,
    #: or unreadable (an encoding that cannot be decoded).
    unparsed: bytes | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's answer. An empty verdict (or ``None``) lets the call through unchanged."""

    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    response_headers: Sequence[tuple[str, str]] = ()
    reject: ErrorReply | None = None
    #: Reasons the chain counts in ``llmtrace_telemetry_dropped_total{stage="guard.<name>"}``
    #: (a check cut short by its time budget, ...), whatever the verdict.
    counted: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CallResult:
    """How a call that a guard let through ended."""

    status_code: int  # 0 when no response was received
    response: LLMResponse | None
    error_type: str | None
    #: What the guards' verdicts put on the call's span (tenant, agent, ...): a guard finds
    #: there what it worked out in ``check``, instead of working it out again.
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@runtime_checkable
class RequestGuard(Protocol):
    """One check on the request path. Implementations hold no per-request state."""

    @property
    def name(self) -> str:
        """Short, stable name used in logs and the drop counter."""
        ...

    async def check(self, call: CallInfo) -> Verdict | None:
        """Decide about one call before it goes upstream."""
        ...

    def on_complete(self, call: CallInfo, result: CallResult) -> None:
        """Called once for every call this guard let through, when it has ended."""
        ...


#: Called with (stage, reason) when a guard fails.
_DropCounter = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class _Outcome:
    attributes: dict[str, AttributeValue]
    response_headers: list[tuple[str, str]]
    reject: ErrorReply | None
    admitted: tuple[RequestGuard, ...]  # guards to tell on_complete


_PASS = _Outcome({}, [], None, ())


class GuardChain:
    """Runs guards in order and merges their verdicts; never raises into the handler."""

    __slots__ = ("_guards", "_on_drop")

    def __init__(self, guards: Sequence[RequestGuard], on_drop: _DropCounter) -> None:
        self._guards = tuple(guards)
        self._on_drop = on_drop

    def __bool__(self) -> bool:
        return bool(self._guards)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(guard.name for guard in self._guards)

    @property
    def guards(self) -> tuple[RequestGuard, ...]:
        return self._guards

    def health(self) -> dict[str, tuple[dict[str, object], bool]]:
        """``/health`` components of guards that have a ``health()`` method:
        name -> (details, degraded)."""
        out: dict[str, tuple[dict[str, object], bool]] = {}
        for guard in self._guards:
            report = getattr(guard, "health", None)
            if report is None:
                continue
            try:
                out[f"guard.{guard.name}"] = report()
            except Exception:
                _log.exception("request guard %s failed to report health", guard.name)
                out[f"guard.{guard.name}"] = ({"state": "unknown"}, False)
        return out

    async def aclose(self) -> None:
        """Close guards that hold resources (an ``aclose()`` method): connections, threads."""
        for guard in self._guards:
            close = getattr(guard, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception:
                _log.exception("request guard %s failed to close", guard.name)

    async def check(self, call: CallInfo) -> _Outcome:
        if not self._guards:
            return _PASS
        attributes: dict[str, AttributeValue] = {}
        headers: list[tuple[str, str]] = []
        admitted: list[RequestGuard] = []
        for guard in self._guards:
            try:
                verdict = await guard.check(call)
            except Exception:
                _log.exception("request guard %s failed; call let through", guard.name)
                self._on_drop(f"guard.{guard.name}", "guard_error")
                continue
            if verdict is None:
                admitted.append(guard)
                continue
            for reason in verdict.counted:
                self._on_drop(f"guard.{guard.name}", reason)
            attributes.update(verdict.attributes)
            headers.extend(verdict.response_headers)
            if verdict.reject is not None:
                # Guards that admitted the call are told it ended (rejected, 0 upstream).
                return _Outcome(attributes, headers, verdict.reject, tuple(admitted))
            admitted.append(guard)
        return _Outcome(attributes, headers, None, tuple(admitted))

    def complete(self, outcome: _Outcome, call: CallInfo, result: CallResult) -> None:
        for guard in outcome.admitted:
            try:
                guard.on_complete(call, result)
            except Exception:
                _log.exception("request guard %s failed in on_complete", guard.name)
                self._on_drop(f"guard.{guard.name}", "guard_error")
