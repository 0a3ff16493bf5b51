"""Security findings of the filtered calls, counted by severity and by type: what the viewer's
security breakdown shows (``GET /api/v1/findings``).

Only calls with findings are read (``findings_count > 0``, the partial index
``idx_spans_findings_start`` walks them in time order), and of those only their ``events``
column: the statement unnests it with ``json_each`` and groups the ``llmtrace.security.finding``
events by the type and severity attributes (namespaced keys, or the bare ``type`` /
``severity`` some producers write, as ``findings.py`` reads them). The cost therefore grows
with the calls *with findings* in the range, not with all calls. Everything runs in one read
transaction, so the figures agree.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Any, Final

from llmtrace_otel.exporters.sqlite.filters import CallFilter, filter_sql
from llmtrace_otel.exporters.sqlite.findings import FINDING_EVENT
from llmtrace_processors.attributes import (
    LLMTRACE_SECURITY_FINDING_SEVERITY,
    LLMTRACE_SECURITY_FINDING_TYPE,
)
from llmtrace_processors.security.findings import Severity

__all__ = ["MAX_TYPES", "FindingGroup", "FindingSummary", "finding_summary"]

#: Type groups returned at most (the most frequent).
MAX_TYPES: Final = 200
_RANK: Final = {severity.label: int(severity) for severity in Severity}


def _attribute(key: str) -> str:
    """The finding attribute ``key`` of the unnested event ``e``, or its bare last segment."""
    bare = key.rsplit(".", 1)[-1]
    return (f"coalesce(json_extract(e.value, '$.attributes.\"{key}\"'), "
            f"json_extract(e.value, '$.attributes.{bare}'))")


_TYPE: Final = _attribute(LLMTRACE_SECURITY_FINDING_TYPE)
_SEVERITY: Final = f"lower({_attribute(LLMTRACE_SECURITY_FINDING_SEVERITY)})"
_EVENT: Final = "json_extract(e.value, '$.name') = '" + FINDING_EVENT.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class FindingGroup:
    """Findings of one severity (``type`` None) or of one type and severity, and the number of
    calls that have at least one of them."""

    type: str | None
    severity: str | None
    findings: int
    calls: int

    def as_dict(self) -> dict[str, object]:
        return {"type": self.type, "severity": self.severity, "findings": self.findings,
                "calls": self.calls}


@dataclass(frozen=True, slots=True)
class FindingSummary:
    calls: int  # calls with at least one finding
    findings: int
    max_score: float | None  # highest llmtrace.security.score among them (0-100)
    by_severity: tuple[FindingGroup, ...]  # most severe first
    by_type: tuple[FindingGroup, ...]  # most severe first, then most frequent
    truncated: bool  # more than MAX_TYPES type groups matched

    def as_dict(self) -> dict[str, object]:
        return {
            "calls": self.calls,
            "findings": self.findings,
            "max_score": self.max_score,
            "by_severity": [group.as_dict() for group in self.by_severity],
            "by_type": [group.as_dict() for group in self.by_type],
            "truncated": self.truncated,
        }


def _order(group: FindingGroup) -> tuple[int, int, str]:
    return (-_RANK.get(group.severity or "", -1), -group.findings, group.type or "")


def finding_summary(conn: sqlite3.Connection, spec: CallFilter) -> FindingSummary:
    """Counts for the calls ``spec`` selects (with ``has_findings=false``: none)."""
    if spec.has_findings is False:
        return FindingSummary(0, 0, None, (), (), False)
    where, params = filter_sql(replace(spec, has_findings=True))
    clause = " AND ".join(where)
    unnested = f"FROM spans, json_each(spans.events) AS e WHERE {clause} AND {_EVENT}"
    conn.execute("BEGIN")
    try:
        calls, score = conn.execute(f"SELECT count(*), max(security_score) FROM spans "
                                    f"WHERE {clause}", params).fetchone()
        severities: list[Any] = conn.execute(
            f"SELECT {_SEVERITY} AS s, count(*), count(DISTINCT spans.span_id) {unnested} "
            "GROUP BY s", params).fetchall()
        types: list[Any] = conn.execute(
            f"SELECT {_TYPE} AS t, {_SEVERITY} AS s, count(*), count(DISTINCT spans.span_id) "
            f"{unnested} GROUP BY t, s ORDER BY count(*) DESC LIMIT {MAX_TYPES + 1}",
            params).fetchall()
    finally:
        conn.execute("COMMIT")
    by_severity = sorted((FindingGroup(None, s, n, c) for s, n, c in severities), key=_order)
    by_type = sorted((FindingGroup(t, s, n, c) for t, s, n, c in types[:MAX_TYPES]),
                     key=_order)
    return FindingSummary(int(calls), sum(g.findings for g in by_severity),
                          None if score is None else float(score), tuple(by_severity),
                          tuple(by_type), len(types) > MAX_TYPES)
