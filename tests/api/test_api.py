"""The query API on the real proxy after real traffic (openai/anthropic SDKs -> proxy -> fake
upstream -> spans -> SQLite or PostgreSQL), every answer checked against docs/openapi.yaml."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from llmtrace_otel.api import api_routes
from llmtrace_otel.api.handlers import ApiContext
from tests.support.fake_upstream import FakeUpstream
from tests.support.keyword_findings import SCORE, KeywordFindings
from tests.support.openapi_check import call, fetch, spec
from tests.support.proxy_harness import RunningProxy, running_proxy
from tests.support.stores import BACKENDS, backend_settings
from tests.support.traffic import KEYWORD, TRACE_ID, openai_client, send_traffic

LIST, TRACE, SPAN, STATS, FINDINGS = (
    "/api/v1/traces",
    "/api/v1/traces/{trace_id}",
    "/api/v1/spans/{span_id}",
    "/api/v1/stats",
    "/api/v1/findings",
)


@dataclass
class Loaded:
    proxy: RunningProxy
    calls: int


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request: pytest.FixtureRequest, upstream: FakeUpstream,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """A proxy after real traffic, storing in SQLite or in PostgreSQL: each test runs on
    both and must get the same documents."""
    upstream.clear()
    with running_proxy(upstream.url, tmp_path_factory.mktemp("api"), capture_content=True,
                       enrichers=[KeywordFindings(KEYWORD)],
                       **backend_settings(request.param, request)) as proxy:
        count = send_traffic(proxy)
        proxy.spans(count)
        yield Loaded(proxy, count)


def items(loaded: Loaded, **params: str) -> list[dict]:
    answer = call(loaded.proxy.url, LIST, {"limit": "500", **params}, template=LIST)
    assert answer.status == 200, answer.body
    return answer.body["items"]


def test_list_returns_every_call_newest_first_as_documented(loaded: Loaded) -> None:
    calls = items(loaded)
    assert len(calls) == loaded.calls
    starts = [c["start_time_ns"] for c in calls]
    assert starts == sorted(starts, reverse=True)
    exported = {format(s.context.span_id, "016x") for s in loaded.proxy.spans(loaded.calls)}
    assert {c["span_id"] for c in calls} == exported
    streamed = [c for c in calls if c["stream"]]
    assert len(streamed) == 1 and streamed[0]["ttft_ms"] > 0
    assert all(c["input_tokens"] for c in calls if c["status_code"] != "ERROR")


def test_filters(loaded: Loaded) -> None:
    assert {c["provider"] for c in items(loaded, provider="anthropic")} == {"anthropic"}
    assert len(items(loaded, provider="anthropic")) == 1
    assert {c["request_model"] for c in items(loaded, model="gpt-4.1")} == {"gpt-4.1"}
    # The model a listing shows is the one that answered: filtering by it finds the calls.
    answered = {c["response_model"] for c in items(loaded, model="gpt-4o-mini")} - {None}
    assert len(answered) == 1 and answered != {"gpt-4o-mini"}
    (dated,) = answered
    assert {c["span_id"] for c in items(loaded, model=dated)} == \
        {c["span_id"] for c in items(loaded, model="gpt-4o-mini")}
    stats = call(loaded.proxy.url, STATS, {"model": dated}, template=STATS).body
    assert stats["totals"]["calls"] == len(items(loaded, model="gpt-4o-mini")) == 4
    errors = items(loaded, status="error")
    assert len(errors) == 1 and errors[0]["http_status"] == 500
    # The proxy leaves a success UNSET (as OTel instrumentation should); "ok" finds it.
    successes = items(loaded, status="ok")
    assert len(successes) == loaded.calls - 1
    assert {c["status_code"] for c in successes} == {"UNSET"}
    assert items(loaded, status="OK") == successes == items(loaded, status="unset")
    stats = call(loaded.proxy.url, STATS, {"status": "ok"}, template=STATS).body
    assert stats["totals"]["calls"] == loaded.calls - 1 and stats["totals"]["errors"] == 0
    flagged = items(loaded, has_findings="true")
    assert len(flagged) == 1 and flagged[0]["findings_count"] == 2
    assert flagged[0]["security_score"] == pytest.approx(SCORE)
    assert flagged[0]["max_severity"] == "high"
    assert {c["max_severity"] for c in items(loaded, has_findings="false")} == {None}
    assert len(items(loaded, has_findings="false")) == loaded.calls - 1
    assert items(loaded, min_score="50") == flagged
    assert items(loaded, min_score="95") == []
    assert len(items(loaded, since="1h")) == loaded.calls
    assert items(loaded, until="2000-01-01") == []
    assert items(loaded, since="2100-01-01T00:00:00Z") == []
    middle = sorted(c["start_time"] for c in items(loaded))[3]
    assert len(items(loaded, since=middle)) == 4
    assert items(loaded, tenant="nobody") == []
    assert items(loaded, provider="x' OR '1'='1") == []


def test_keyset_pagination_walks_every_call_once_even_while_calls_arrive(loaded: Loaded) -> None:
    url = loaded.proxy.url
    first = call(url, LIST, {"limit": "3"}, template=LIST).body
    assert len(first["items"]) == 3 and first["next_cursor"]
    seen = [c["span_id"] for c in first["items"]]
    cursor = first["next_cursor"]
    pages = 1
    while cursor:
        page = call(url, LIST, {"limit": "3", "cursor": cursor}, template=LIST).body
        seen += [c["span_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
    assert pages == math.ceil(loaded.calls / 3)
    assert len(seen) == len(set(seen)) == loaded.calls
    assert seen == [c["span_id"] for c in items(loaded)]
    # A page boundary is a position, not an offset: resuming from the first page's cursor
    # gives the same calls as before, however many calls arrived since.
    assert [c["span_id"] for c in call(url, LIST, {"limit": "3", "cursor": first[
        "next_cursor"]}).body["items"]] == seen[3:6]
    filtered = call(url, LIST, {"limit": "2", "model": "gpt-4o-mini"}, template=LIST).body
    rest = call(url, LIST, {"limit": "2", "model": "gpt-4o-mini",
                            "cursor": filtered["next_cursor"]}, template=LIST).body
    models = {c["request_model"] for c in filtered["items"] + rest["items"]}
    assert models == {"gpt-4o-mini"} and len(filtered["items"] + rest["items"]) == 4


def test_trace_and_span(loaded: Loaded) -> None:
    url = loaded.proxy.url
    answer = call(url, f"/api/v1/traces/{TRACE_ID.upper()}", template=TRACE)
    assert answer.status == 200
    trace = answer.body
    assert trace["summary"]["spans"] == 2 and len(trace["spans"]) == 2
    assert {s["parent_span_id"] for s in trace["spans"]} == {"00f067aa0ba902b7",
                                                            "00f067aa0ba902b8"}
    assert trace["summary"]["input_tokens"] == sum(s["input_tokens"] for s in trace["spans"])
    flagged = items(loaded, has_findings="true")[0]
    span = call(url, f"/api/v1/spans/{flagged['span_id']}", template=SPAN).body
    assert span["findings_count"] == 2
    assert [f["type"] for f in span["findings"]] == ["prompt_injection"] * 2
    assert span["findings"][0]["evidence"] == KEYWORD
    assert KEYWORD in span["attributes"]["gen_ai.input.messages"]
    assert span["resource"]["service.name"] == "llmtrace-otel"
    assert call(url, "/api/v1/traces/" + "0" * 32, template=TRACE).status == 404
    assert call(url, "/api/v1/spans/" + "0" * 16, template=SPAN).status == 404
    bad = call(url, "/api/v1/spans/xyz", template=SPAN)
    assert bad.status == 400 and bad.body["error"]["param"] == "span_id"
    assert call(url, "/api/v1/traces/123", template=TRACE).status == 400


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)), 1) - 1]


def test_findings_are_counted_by_severity_and_type(loaded: Loaded) -> None:
    answer = call(loaded.proxy.url, FINDINGS, {"since": "1h"}, template=FINDINGS)
    assert answer.status == 200, answer.body
    document = answer.body
    assert (document["calls"], document["findings"]) == (1, 2)
    assert document["max_score"] == pytest.approx(SCORE)
    assert document["by_severity"] == [{"type": None, "severity": "high", "findings": 2,
                                        "calls": 1}]
    assert document["by_type"] == [{"type": "prompt_injection", "severity": "high",
                                    "findings": 2, "calls": 1}]
    for params in ({"has_findings": "false"}, {"provider": "anthropic"}):
        empty = call(loaded.proxy.url, FINDINGS, params, template=FINDINGS).body
        assert (empty["calls"], empty["findings"], empty["by_type"]) == (0, 0, [])
    assert call(loaded.proxy.url, FINDINGS, {"group_by": "model"},
                template=FINDINGS).status == 400


def test_stats_match_the_stored_calls(loaded: Loaded) -> None:
    url = loaded.proxy.url
    calls = items(loaded)
    totals = call(url, STATS, template=STATS).body["totals"]
    assert totals["calls"] == loaded.calls and totals["errors"] == 1
    assert totals["error_rate"] == pytest.approx(1 / loaded.calls)
    assert totals["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)
    assert totals["output_tokens"] == sum(c["output_tokens"] or 0 for c in calls)
    assert totals["cost_usd"] == pytest.approx(sum(c["cost_usd"] or 0 for c in calls))
    durations = [c["duration_ms"] for c in calls]
    assert totals["latency_p50_ms"] == pytest.approx(nearest_rank(durations, 0.5))
    assert totals["latency_p95_ms"] == pytest.approx(nearest_rank(durations, 0.95))
    by_model = call(url, STATS, {"group_by": "model"}, template=STATS).body
    groups = {g["key"]: g for g in by_model["groups"]}
    assert set(groups) == {"gpt-4o-mini", "gpt-4.1", "claude-haiku-4-5"}
    assert groups["gpt-4o-mini"]["calls"] == 4 and groups["gpt-4.1"]["errors"] == 1
    assert by_model["groups"][0]["key"] == "gpt-4o-mini"  # largest first
    mini = [c["duration_ms"] for c in calls if c["request_model"] == "gpt-4o-mini"]
    assert groups["gpt-4o-mini"]["latency_p95_ms"] == pytest.approx(nearest_rank(mini, 0.95))
    hourly = call(url, STATS, {"group_by": "hour"}, template=STATS).body
    assert sum(g["calls"] for g in hourly["groups"]) == loaded.calls
    assert all(g["key"].endswith(":00:00Z") for g in hourly["groups"])
    only = call(url, STATS, {"provider": "anthropic", "since": "1d"}, template=STATS).body
    assert only["totals"]["calls"] == 1 and only["since"].endswith("Z")
    empty = call(url, STATS, {"until": "2000-01-01"}, template=STATS).body["totals"]
    assert empty["calls"] == 0 and empty["error_rate"] is None
    assert empty["latency_p50_ms"] is None


@pytest.mark.parametrize(
    ("path", "template", "params", "param"),
    [
        (LIST, LIST, {"limit": "0"}, "limit"),
        (LIST, LIST, {"limit": "501"}, "limit"),
        (LIST, LIST, {"limit": "ten"}, "limit"),
        (LIST, LIST, {"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        (LIST, LIST, {"cursor": "!!"}, "cursor"),
        (LIST, LIST, {"since": "yesterday"}, "since"),
        (LIST, LIST, {"since": "1h", "until": "2h"}, "until"),
        (LIST, LIST, {"status": "failed"}, "status"),
        (LIST, LIST, {"has_findings": "maybe"}, "has_findings"),
        (LIST, LIST, {"min_score": "nan"}, "min_score"),
        (LIST, LIST, {"provider": "x" * 300}, "provider"),
        (LIST, LIST, {"modle": "gpt-4o"}, "modle"),
        (LIST, LIST, [("model", "a"), ("model", "b")], "model"),
        (STATS, STATS, {"group_by": "week"}, "group_by"),
        (STATS, STATS, {"limit": "3"}, "limit"),
        ("/api/v1/traces/" + TRACE_ID, TRACE, {"x": "1"}, None),
    ],
)
def test_bad_input_is_a_clear_400(loaded: Loaded, path: str, template: str,
                                  params: dict[str, str], param: str | None) -> None:
    answer = call(loaded.proxy.url, path, params, template=template)
    assert answer.status == 400
    error = answer.body["error"]
    assert error["code"] == "invalid_parameter" and error["param"] == param
    assert error["message"]


def test_read_only_and_reserved_paths_are_never_proxied(proxy: RunningProxy,
                                                        upstream: FakeUpstream) -> None:
    # Its own proxy: the /v1/models call below is proxied and stored, which would add a call
    # to the module's shared `loaded` store that the other tests count.
    url = proxy.url
    before = len(upstream.requests)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = call(url, LIST, method=method)
        assert answer.status == 405 and answer.body["error"]["code"] == "method_not_allowed"
    for path in ("/api/v1", "/api/v1/", "/api/v1/budgets/x", "/api/v1/traces/a/b"):
        answer = call(url, path)
        assert answer.status == 404 and answer.body["error"]["code"] == "not_found", path
    page = fetch(url + "/ui/calls/0123456789abcdef")
    assert page.status == 200 and "text/html" in page.headers["content-type"]
    assert len(upstream.requests) == before
    # Everything else is still the proxy's.
    assert fetch(url + "/v1/models").status == 200
    assert len(upstream.requests) == before + 1
    assert fetch(url + "/health").status == 200


def test_admin_token(upstream: FakeUpstream, tmp_path: Path) -> None:
    token = "s3cret-token-0123456789"
    with running_proxy(upstream.url, tmp_path, api_admin_token=token) as proxy:
        openai_client(proxy).chat.completions.create(model="gpt-4o-mini",
                                               messages=[{"role": "user", "content": "x"}])
        proxy.spans(1)
        for given in (None, "wrong-token-0123456789", token + "x", token[:-1]):
            answer = call(proxy.url, LIST, token=given, template=LIST)
            assert answer.status == 401 and answer.body["error"]["code"] == "unauthorized"
            assert answer.headers["www-authenticate"].startswith("Bearer")
        basic = fetch(proxy.url + LIST, headers={"Authorization": f"Basic {token}"})
        assert basic.status == 401
        assert call(proxy.url, "/api/v1/nope", token=None).status == 401
        ok = call(proxy.url, LIST, token=token, template=LIST)
        assert ok.status == 200 and len(ok.body["items"]) == 1
        assert call(proxy.url, STATS, token=token, template=STATS).status == 200
        # The viewer's static files hold no data and load without the token.
        assert fetch(proxy.url + "/ui/static/app.js").status == 200


def test_no_store_yet_and_store_disabled(upstream: FakeUpstream, tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy:
        assert call(proxy.url, LIST, template=LIST).body["items"] == []
        assert call(proxy.url, STATS, template=STATS).body["totals"]["calls"] == 0
        assert call(proxy.url, "/api/v1/spans/" + "a" * 16, template=SPAN).status == 404
    with running_proxy(upstream.url, tmp_path, sqlite_enabled=False) as proxy:
        answer = call(proxy.url, LIST, template=LIST)
        assert answer.status == 503 and answer.body["error"]["code"] == "store_disabled"


def test_store_unreadable_is_503_without_internals(upstream: FakeUpstream,
                                                   tmp_path: Path) -> None:
    db = tmp_path / "not-ours.db"
    db.write_text("this is not a database")
    with running_proxy(upstream.url, tmp_path, sqlite_path=str(db)) as proxy:
        answer = call(proxy.url, LIST, template=LIST)
        assert answer.status == 503 and answer.body["error"]["code"] == "store_unavailable"
        assert str(db) not in answer.body["error"]["message"]


def test_api_disabled_leaves_the_paths_to_the_proxy(upstream: FakeUpstream,
                                                    tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, api_enabled=False) as proxy:
        before = len(upstream.requests)
        fetch(proxy.url + "/api/v1/traces")
        fetch(proxy.url + "/ui/")
        assert [r.path for r in upstream.requests[before:]] == ["/api/v1/traces", "/ui/"]


def test_every_route_is_documented_and_the_spec_is_valid() -> None:
    from openapi_spec_validator import validate

    validate(spec())
    documented = set(spec()["paths"])
    routes = {pattern for pattern, _, _ in api_routes(ApiContext(None))}
    expected = {LIST: r"/api/v1/traces", TRACE: r"/api/v1/traces/([^/]+)",
                SPAN: r"/api/v1/spans/([^/]+)", STATS: r"/api/v1/stats",
                FINDINGS: r"/api/v1/findings"}
    assert documented == set(expected)
    assert set(expected.values()) <= routes
    assert yaml.safe_load(Path(__file__).resolve().parents[2].joinpath(
        "docs/openapi.yaml").read_text())["openapi"].startswith("3.1")
