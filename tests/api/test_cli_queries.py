"""`llmtrace-otel traces | trace ID | stats`: the same filters and documents as the API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.keyword_findings import KeywordFindings
from tests.support.openapi_check import call, check
from tests.support.proxy_harness import running_proxy
from tests.support.traffic import KEYWORD, TRACE_ID, send_traffic


@dataclass
class Store:
    db: Path
    url: str  # the proxy that wrote it, still running, for API comparisons
    calls: int


@pytest.fixture(scope="module")
def store(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    tmp = tmp_path_factory.mktemp("cli")
    with running_proxy(upstream.url, tmp, capture_content=True,
                       enrichers=[KeywordFindings(KEYWORD)]) as proxy:
        count = send_traffic(proxy)
        proxy.spans(count)
        yield Store(Path(proxy.settings.sqlite_path), proxy.url, count)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmtrace_otel", *args], capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_traces_json_is_the_api_page(store: Store) -> None:
    for flags, params in [
        ((), {}),
        (("--provider", "anthropic"), {"provider": "anthropic"}),
        (("--status", "error"), {"status": "error"}),
        (("--has-findings",), {"has_findings": "true"}),
        (("--no-findings", "--model", "gpt-4o-mini"), {"has_findings": "false",
                                                        "model": "gpt-4o-mini"}),
        (("--min-score", "0.5", "--since", "1h"), {"min_score": "0.5", "since": "1h"}),
        (("--limit", "2"), {"limit": "2"}),
    ]:
        result = cli("traces", "--db", str(store.db), "--json", *flags)
        assert result.returncode == 0, result.stderr
        page = json.loads(result.stdout)
        check("/api/v1/traces", 200, page)
        assert page == call(store.url, "/api/v1/traces", params).body, flags


def test_traces_table_pages_with_the_cursor(store: Store) -> None:
    first = cli("traces", "--db", str(store.db), "--limit", "4")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].split()[:3] == ["time", "(UTC)", "operation"] and "findings" in lines[0]
    assert sum("chat" in line for line in lines[1:]) == 4
    cursor = lines[-1].split("--cursor ")[1]
    rest = cli("traces", "--db", str(store.db), "--limit", "4", "--cursor", cursor)
    assert sum("chat" in line for line in rest.stdout.splitlines()[1:]) == store.calls - 4
    assert "more:" not in rest.stdout


def test_trace_command(store: Store) -> None:
    table = cli("trace", TRACE_ID, "--db", str(store.db))
    assert table.returncode == 0, table.stderr
    assert sum("chat gpt-4o-mini" in line for line in table.stdout.splitlines()) == 2
    as_json = json.loads(cli("trace", TRACE_ID, "--db", str(store.db), "--json").stdout)
    check("/api/v1/traces/{trace_id}", 200, as_json)
    assert as_json == call(store.url, f"/api/v1/traces/{TRACE_ID}").body
    flagged = call(store.url, "/api/v1/traces", {"has_findings": "true"}).body["items"][0]
    shown = cli("trace", flagged["trace_id"], "--db", str(store.db))
    assert shown.stdout.count(f"prompt_injection (high, input) {KEYWORD}") == 2
    missing = cli("trace", "0" * 32, "--db", str(store.db))
    assert missing.returncode == 1 and "no stored spans" in missing.stderr
    bad = cli("trace", "nope", "--db", str(store.db))
    assert bad.returncode == 2 and "32 hex digits" in bad.stderr


def test_stats_command(store: Store) -> None:
    for flags, params in [((), {}), (("--group-by", "model"), {"group_by": "model"}),
                          (("--group-by", "hour", "--since", "1d"),
                           {"group_by": "hour", "since": "1d"})]:
        result = cli("stats", "--db", str(store.db), "--json", *flags)
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        check("/api/v1/stats", 200, document)
        api = call(store.url, "/api/v1/stats", params).body
        if "since" in params:  # "1d" is relative to each call's own clock
            document.pop("since"), api.pop("since")
        assert document == api
    table = cli("stats", "--db", str(store.db), "--group-by", "model").stdout.splitlines()
    assert table[0].split()[:3] == ["model", "calls", "errors"]
    assert table[1].split()[:3] == ["(all)", str(store.calls), "1"]
    assert {line.split()[0] for line in table[2:]} == {"gpt-4o-mini", "gpt-4.1",
                                                      "claude-haiku-4-5"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("traces", "--limit", "0"), "limit must be an integer from 1 to 500"),
        (("traces", "--since", "soon"), "since must be an RFC 3339 time"),
        (("stats", "--group-by", "week"), "group_by must be one of"),
        (("traces", "--status", "broken"), "status must be one of"),
    ],
)
def test_bad_flags_are_clear_errors(store: Store, args: tuple[str, ...], message: str) -> None:
    result = cli(*args, "--db", str(store.db))
    assert result.returncode == 2 and message in result.stderr


def test_missing_store_names_the_file(tmp_path: Path) -> None:
    result = cli("traces", "--db", str(tmp_path / "none.db"))
    assert result.returncode == 1 and "none.db" in result.stderr


def test_traces_status_ok_lists_the_successes_with_their_cost(store: Store) -> None:
    table = cli("traces", "--db", str(store.db), "--status", "ok").stdout.splitlines()
    header = table[0].split()
    assert header[header.index("out") + 1] == "cost"  # "time (UTC)" and a time: two words
    rows = [line.split() for line in table[1:]]
    assert len(rows) == store.calls - 1  # every call but the upstream 500
    assert {row[header.index("status")] for row in rows} == {"ok"}
    costs = [row[header.index("cost")] for row in rows]
    assert all(cost.startswith("$0.0") and "e-" not in cost for cost in costs), costs
    errors = cli("traces", "--db", str(store.db), "--status", "error").stdout
    assert "error server_error" in errors


def test_trace_accepts_a_unique_prefix_of_the_id(store: Store) -> None:
    whole = cli("trace", TRACE_ID, "--db", str(store.db)).stdout
    assert cli("trace", TRACE_ID[:8], "--db", str(store.db)).stdout == whole
    assert cli("trace", TRACE_ID[:8].upper(), "--db", str(store.db)).stdout == whole
    missing = cli("trace", "ffff0000", "--db", str(store.db))
    assert missing.returncode == 2 and "no stored trace id starts with ffff0000" in \
        missing.stderr
    ids = sorted({c["trace_id"] for c in call(store.url, "/api/v1/traces").body["items"]})
    shared = next((a[:n] for a, b in zip(ids, ids[1:], strict=False)
                   for n in range(4, 32) if a[:n] == b[:n] and a[:n + 1] != b[:n + 1]), None)
    if shared is not None:  # two of the random ids share a prefix of 4+ digits
        ambiguous = cli("trace", shared, "--db", str(store.db))
        assert ambiguous.returncode == 2 and "more than one trace id" in ambiguous.stderr
    short = cli("trace", TRACE_ID[:3], "--db", str(store.db))
    assert short.returncode == 2 and "at least 4" in short.stderr


def test_search_finds_text_in_captured_messages_and_names(store: Store) -> None:
    flagged = call(store.url, "/api/v1/traces", {"q": KEYWORD.lower()}).body["items"]
    assert len(flagged) == 1 and flagged[0]["findings_count"] == 2
    result = cli("traces", "--db", str(store.db), "--search", "CLAUDE", "--json")
    assert [c["provider"] for c in json.loads(result.stdout)["items"]] == ["anthropic"]
    stats = call(store.url, "/api/v1/stats", {"q": "claude"}).body
    assert stats["totals"]["calls"] == 1
    assert call(store.url, "/api/v1/traces", {"q": "%"}).body["items"] == []  # literal, no LIKE
