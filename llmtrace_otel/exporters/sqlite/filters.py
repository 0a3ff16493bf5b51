"""Query parameters of the read side: parsed once, shared by the HTTP API and the CLI.

Both front ends hand :func:`parse_list_query` / :func:`parse_stats_query` the same
``name -> text`` mapping (query-string arguments, or CLI flags spelled the same way), so a
filter means exactly the same thing in ``GET /api/v1/traces?...`` and ``llmtrace-otel
traces ...``. Every problem is a :class:`QueryError` naming the parameter; unknown
parameters are errors too (a typo never silently widens a query).

:func:`filter_sql` turns a :class:`CallFilter` into ``WHERE`` terms with bound parameters.
The status term is one of three fixed strings (so that SQLite can use the partial index on
errors); everything else is bound.

Two filters mean what a person reading the listing expects:

- ``status=ok`` is every call that did not fail: span status ``UNSET`` or ``OK``. The OTel
  trace API says instrumentation leaves a successful span's status ``UNSET`` (only an
  application or operator sets ``OK``), and so do the proxy, the SDK instrumentation and most
  instrumentations whose spans the receiver stores; the stored status stays what the span
  said. ``status=unset`` still selects exactly the ``UNSET`` ones.
- ``model`` matches the requested model (``gen_ai.request.model``) or the model that answered
  (``gen_ai.response.model``, e.g. ``gpt-4o-mini-2024-07-18``, which listings show).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

__all__ = [
    "DEFAULT_LIMIT",
    "FILTER_PARAMS",
    "LIST_PARAMS",
    "MODEL_TERM",
    "MAX_LIMIT",
    "STATS_PARAMS",
    "CallFilter",
    "Cursor",
    "GroupBy",
    "ListQuery",
    "QueryError",
    "SEARCHED_COLUMNS",
    "StatsQuery",
    "filter_sql",
    "group_terms",
    "parse_filter_query",
    "parse_list_query",
    "parse_span_id",
    "parse_stats_query",
    "parse_time",
    "parse_trace_id",
    "parse_trace_prefix",
]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500
_STATUSES: Final = ("UNSET", "OK", "ERROR")
#: ``status`` (upper case) -> its ``WHERE`` term; ``OK`` includes ``UNSET`` (module docstring).
_STATUS_TERMS: Final = {
    "OK": "status_code <> 'ERROR'",
    "ERROR": "status_code = 'ERROR'",
    "UNSET": "status_code = 'UNSET'",
}
#: The ``model`` filter's term; its one value is bound twice.
MODEL_TERM: Final = "(request_model = ? OR response_model = ?)"
#: What the text search (``q``) looks in: names, ids, models, tenant and agent, the error and
#: status message, and the attributes and events as stored (captured messages, finding
#: evidence). ``LIKE '%text%'`` with ``%``, ``_`` and ``\`` escaped: case-insensitive for
#: ASCII letters, and ~2x faster than ``instr(lower(column), ?)`` (no lower-case copy of each
#: attributes JSON).
SEARCHED_COLUMNS: Final = (
    "name", "trace_id", "span_id", "provider", "request_model", "response_model", "tenant_id",
    "agent_id", "error_type", "status_message", "attributes", "events",
)
_TEXT_TERM: Final = "(" + " OR ".join(
    f"{column} LIKE ? ESCAPE '\\'" for column in SEARCHED_COLUMNS) + ")"
_MAX_TEXT: Final = 256
#: The latest time the store holds: nanoseconds in a signed 64-bit integer (2262-04-11).
MAX_TIME_NS: Final = 2**63 - 1
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_TRACE_PREFIX = re.compile(r"^[0-9a-fA-F]{4,32}$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})

#: Filters shared by listings and stats.
FILTER_PARAMS: Final = (
    "since",
    "until",
    "provider",
    "model",
    "tenant",
    "status",
    "has_findings",
    "min_score",
    "q",
)
LIST_PARAMS: Final = (*FILTER_PARAMS, "limit", "cursor")
STATS_PARAMS: Final = (*FILTER_PARAMS, "group_by")


class QueryError(ValueError):
    """A bad query parameter; ``param`` names it (None when no single one is at fault)."""

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class GroupBy(StrEnum):
    """How ``stats`` groups calls: not at all, by a column, or by UTC time bucket."""

    NONE = "none"
    MODEL = "model"
    PROVIDER = "provider"
    TENANT = "tenant"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def bucket_ns(self) -> int | None:
        """Width of a time bucket in ns, or None for a non-time grouping."""
        return {"minute": 60, "hour": 3600, "day": 86400}.get(self.value, 0) * 10**9 or None


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Which calls a listing or a stats query covers; None means "any"."""

    since_ns: int | None = None  # inclusive
    until_ns: int | None = None  # exclusive
    provider: str | None = None
    model: str | None = None  # gen_ai.request.model or gen_ai.response.model
    tenant: str | None = None
    status: str | None = None  # OK (not failed: UNSET or OK) | ERROR | UNSET
    has_findings: bool | None = None
    min_score: float | None = None  # llmtrace.security.score >= min_score
    text: str | None = None  # q: in any of SEARCHED_COLUMNS (ASCII case-insensitive)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Keyset position: the listing continues with calls strictly older than this one."""

    start_time_ns: int
    span_id: str

    def encode(self) -> str:
        raw = f"{self.start_time_ns}:{self.span_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        problem = QueryError("cursor", "cursor is not one this API returned (use next_cursor "
                                       "from a previous page, unchanged)")
        if not text or len(text) > 64:
            raise problem
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise problem from None
        start, _, span_id = raw.partition(":")
        if not start.isdigit() or int(start) > MAX_TIME_NS or not _SPAN_ID.match(span_id):
            raise problem
        return cls(int(start), span_id.lower())


@dataclass(frozen=True, slots=True)
class ListQuery:
    filter: CallFilter
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class StatsQuery:
    filter: CallFilter
    group_by: GroupBy = GroupBy.NONE


def parse_time(param: str, text: str, now_ns: int) -> int:
    """RFC 3339 (``2026-11-23T10:00:00Z``, an offset, or a bare date taken as UTC midnight)
    or a duration before now (``90s``, ``15m``, ``24h``, ``7d``, ``2w``) -> ns since epoch."""
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        seconds = float(match.group(1)) * _SECONDS[match.group(2)]
        return _in_range(param, text, now_ns - seconds * 1e9)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            param,
            f"{param} must be an RFC 3339 time (2026-11-23T10:00:00Z) or a duration before "
            f"now (15m, 24h, 7d), got {text!r}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _in_range(param, text, (moment - _EPOCH) // timedelta(microseconds=1) * 1000)


def _in_range(param: str, text: str, ns: float) -> int:
    """A time the store can hold: nanoseconds since 1970 in a signed 64-bit integer."""
    if not 0 <= ns <= MAX_TIME_NS:
        raise QueryError(param, f"{param} must be between 1970-01-01 and 2262-04-11 (or a "
                                f"duration that reaches no earlier than 1970), got {text!r}")
    return int(ns)


def parse_trace_id(text: str) -> str:
    if not _TRACE_ID.match(text):
        raise QueryError("trace_id", f"a trace id is 32 hex digits, got {text[:64]!r}")
    return text.lower()


def parse_trace_prefix(text: str) -> str:
    """A whole trace id or the first 4 to 31 of its hex digits, lower-cased."""
    if not _TRACE_PREFIX.match(text):
        raise QueryError("trace_id", f"a trace id is 32 hex digits (or a unique prefix of at "
                                     f"least 4 of them), got {text[:64]!r}")
    return text.lower()


def parse_span_id(text: str) -> str:
    if not _SPAN_ID.match(text):
        raise QueryError("span_id", f"a span id is 16 hex digits, got {text[:64]!r}")
    return text.lower()


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > _MAX_TEXT:
        raise QueryError(name, f"{name} is longer than {_MAX_TEXT} characters")
    return value


def _check_known(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise QueryError(
            unknown[0],
            f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}",
        )


def _parse_filter(params: Mapping[str, str], now_ns: int) -> CallFilter:
    since_text, until_text = _text(params, "since"), _text(params, "until")
    since = None if since_text is None else parse_time("since", since_text, now_ns)
    until = None if until_text is None else parse_time("until", until_text, now_ns)
    if since is not None and until is not None and since >= until:
        raise QueryError("until", "until must be later than since")
    status = _text(params, "status")
    if status is not None:
        status = status.upper()
        if status not in _STATUSES:
            raise QueryError("status", f"status must be one of ok, error, unset, got "
                                       f"{params['status']!r}")
    has_findings: bool | None = None
    findings_text = _text(params, "has_findings")
    if findings_text is not None:
        lowered = findings_text.lower()
        if lowered not in _TRUE | _FALSE:
            raise QueryError("has_findings", f"has_findings must be true or false, got "
                                             f"{findings_text!r}")
        has_findings = lowered in _TRUE
    min_score: float | None = None
    score_text = _text(params, "min_score")
    if score_text is not None:
        try:
            min_score = float(score_text)
        except ValueError:
            min_score = math.nan
        if not math.isfinite(min_score):
            raise QueryError("min_score", f"min_score must be a number, got {score_text!r}")
    return CallFilter(
        since_ns=since,
        until_ns=until,
        provider=_text(params, "provider"),
        model=_text(params, "model"),
        tenant=_text(params, "tenant"),
        status=status,
        has_findings=has_findings,
        min_score=min_score,
        text=_text(params, "q"),
    )


def parse_filter_query(params: Mapping[str, str], now_ns: int) -> CallFilter:
    """``GET /api/v1/findings``: the filters alone."""
    _check_known(params, FILTER_PARAMS)
    return _parse_filter(params, now_ns)


def parse_list_query(params: Mapping[str, str], now_ns: int) -> ListQuery:
    """``GET /api/v1/traces`` / ``llmtrace-otel traces``: filters, ``limit``, ``cursor``."""
    _check_known(params, LIST_PARAMS)
    limit = DEFAULT_LIMIT
    limit_text = _text(params, "limit")
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise QueryError("limit", f"limit must be an integer from 1 to {MAX_LIMIT}, got "
                                      f"{limit_text!r}")
        limit = int(limit_text)
    cursor_text = _text(params, "cursor")
    cursor = None if cursor_text is None else Cursor.decode(cursor_text)
    return ListQuery(_parse_filter(params, now_ns), limit, cursor)


def parse_stats_query(params: Mapping[str, str], now_ns: int) -> StatsQuery:
    """``GET /api/v1/stats`` / ``llmtrace-otel stats``: filters and ``group_by``."""
    _check_known(params, STATS_PARAMS)
    group_text = _text(params, "group_by") or GroupBy.NONE.value
    try:
        group_by = GroupBy(group_text.lower())
    except ValueError:
        names = ", ".join(g.value for g in GroupBy)
        raise QueryError("group_by", f"group_by must be one of {names}, got "
                                     f"{group_text!r}") from None
    return StatsQuery(_parse_filter(params, now_ns), group_by)


def group_terms(spec: CallFilter) -> tuple[list[str], list[object]]:
    """The provider, model, tenant and status terms (AND-ed) and their bound parameters: the
    filters on columns that ``spans`` and the hourly rollup (``rollup.py``) both have."""
    where: list[str] = []
    params: list[object] = []
    for column, value in (("provider", spec.provider), ("tenant_id", spec.tenant)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if spec.model is not None:
        where.append(MODEL_TERM)
        params.extend((spec.model, spec.model))
    if spec.status is not None:
        term = _STATUS_TERMS.get(spec.status)
        if term is None:  # a CallFilter built by hand, not by the parser
            raise QueryError("status", f"status must be one of {', '.join(_STATUSES)}")
        where.append(term)
    return where, params


def filter_sql(spec: CallFilter) -> tuple[list[str], list[object]]:
    """``WHERE`` terms on ``spans`` (to be AND-ed) and their bound parameters.

    Listings and stats see calls only (``is_call``, set by the exporter: a GenAI call span
    that is not the second span of its call); every span stays in its trace.
    """
    where: list[str] = ["is_call = 1"]
    params: list[object] = []
    if spec.since_ns is not None:
        where.append("start_time_ns >= ?")
        params.append(spec.since_ns)
    if spec.until_ns is not None:
        where.append("start_time_ns < ?")
        params.append(spec.until_ns)
    terms, values = group_terms(spec)
    where.extend(terms)
    params.extend(values)
    if spec.has_findings is True:
        where.append("findings_count > 0")
    elif spec.has_findings is False:
        where.append("findings_count = 0")
    if spec.min_score is not None:
        where.append("security_score >= ?")
        params.append(spec.min_score)
    if spec.text is not None:
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", spec.text) + "%"
        where.append(_TEXT_TERM)
        params.extend([pattern] * len(SEARCHED_COLUMNS))
    return where, params
