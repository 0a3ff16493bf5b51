"""The trace viewer at /ui in headless Chromium, against the real proxy after real traffic."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.keyword_findings import KeywordFindings
from tests.support.openapi_check import call
from tests.support.proxy_harness import RunningProxy, running_proxy
from tests.support.traffic import KEYWORD, TRACE_ID, openai_client, send_traffic
from tests.ui.conftest import screenshot

XSS_PROMPT = ('<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
              '<svg onload="window.__xss=3"></svg> & "quotes"')
XSS_MODEL = '<img src=x onerror="window.__xss=4">'
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));
"""


@dataclass
class Viewer:
    proxy: RunningProxy
    calls: int

    @property
    def url(self) -> str:
        return self.proxy.url + "/ui/"

    def span_id(self, **params: str) -> str:
        return str(call(self.proxy.url, "/api/v1/traces", params).body["items"][0]["span_id"])


@pytest.fixture(scope="module")
def viewer(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    with running_proxy(upstream.url, tmp_path_factory.mktemp("ui"), capture_content=True,
                       enrichers=[KeywordFindings(KEYWORD)]) as proxy:
        count = send_traffic(proxy)
        client = openai_client(proxy)
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": XSS_PROMPT}])
        client.chat.completions.create(model=XSS_MODEL,
                                       messages=[{"role": "user", "content": "x"}])
        proxy.spans(count + 2)
        yield Viewer(proxy, count + 2)


def rows(page: Any) -> int:
    return int(page.locator("#calls tbody tr").count())


def test_list_page_shows_calls_totals_and_charts(viewer: Viewer, page: Any) -> None:
    page.goto(viewer.url)
    page.wait_for_selector("#calls tbody tr")
    assert rows(page) == viewer.calls
    assert page.locator("#totals .card").first.inner_text().startswith(str(viewer.calls))
    for chart in ("chart-calls", "chart-tokens", "chart-cost"):
        assert page.locator(f"#{chart} rect.bar").count() >= 1, chart
    assert page.locator("#chart-latency circle.dot").count() >= 2  # p50 and p95 points
    bars = page.locator("#chart-calls rect.bar title").all_text_contents()
    assert sum(int(text.rsplit(": ", 1)[1].replace(",", "")) for text in bars) == viewer.calls
    assert page.locator("#calls tr.err").count() == 1
    assert page.locator("#calls td.flagged").inner_text().startswith("2 ")
    assert page.locator("#more").is_hidden()
    assert not page.page_errors
    screenshot(page, "viewer-list")


def test_filters_narrow_the_list(viewer: Viewer, page: Any) -> None:
    page.goto(viewer.url)
    page.wait_for_selector("#calls tbody tr")
    page.fill("#filters input[name=provider]", "anthropic")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**provider=anthropic**")
    page.wait_for_selector("#calls tbody tr")
    assert rows(page) == 1
    assert "claude" in page.locator("#calls tbody tr").inner_text()
    page.goto(viewer.url + "?status=error&since=1h")
    page.wait_for_selector("#calls tbody tr")
    assert rows(page) == 1, page.locator("#calls tbody").inner_text()
    assert page.locator("#calls tr.err").count() == 1
    page.goto(viewer.url + "?has_findings=true")
    page.wait_for_selector("#calls tbody tr")
    assert rows(page) == 1
    page.goto(viewer.url + "?model=no-such-model")
    page.wait_for_selector("#empty")
    assert rows(page) == 0 and page.locator("#totals .card").first.inner_text().startswith("0")


def test_detail_page_highlights_findings_in_the_captured_text(viewer: Viewer,
                                                               page: Any) -> None:
    page.goto(viewer.url + "?has_findings=true")
    page.click("#calls tbody tr a")
    page.wait_for_selector("#call-title")
    assert "/ui/calls/" in page.url
    marks = page.locator("#conversation mark.finding")
    assert marks.count() == 2 and set(marks.all_inner_texts()) == {KEYWORD}
    assert page.locator("#findings tbody tr").count() == 2
    assert page.locator("#findings tbody tr").first.inner_text().split("\t")[-1] == "highlighted"
    assert page.locator("svg.timeline rect.span.current").count() == 1
    assert page.locator("svg.timeline circle.finding-dot").count() == 2
    assert page.locator("#attributes th", has_text="gen_ai.request.model").count() == 1
    assert "gpt-4.1" in page.locator("dl.facts").inner_text()
    assert not page.page_errors
    screenshot(page, "viewer-call-findings")


def test_detail_page_timeline_marks_time_to_first_chunk(viewer: Viewer, page: Any) -> None:
    calls = call(viewer.proxy.url, "/api/v1/traces").body["items"]
    streamed = next(c for c in calls if c["stream"])
    page.goto(f"{viewer.url}calls/{streamed['span_id']}")
    page.wait_for_selector("svg.timeline")
    assert page.locator("svg.timeline line.ttfc").count() == 1
    assert "first chunk after" in page.locator("svg.timeline line.ttfc title").text_content()
    assert page.locator("dl.facts").inner_text().count(" ms") >= 2


def test_trace_with_two_calls_links_its_spans(viewer: Viewer, page: Any) -> None:
    trace = call(viewer.proxy.url, f"/api/v1/traces/{TRACE_ID}").body
    first, second = (span["span_id"] for span in trace["spans"])
    page.goto(f"{viewer.url}calls/{first}")
    page.wait_for_selector("ul.siblings")
    assert page.locator("svg.timeline rect.span").count() == 2
    page.click(f"ul.siblings a[href='/ui/calls/{second}']")
    page.wait_for_url(f"**/ui/calls/{second}")
    page.wait_for_selector("#call-title")
    assert page.locator("ul.siblings strong").count() == 1


def test_attacker_controlled_text_renders_inert(viewer: Viewer, page: Any) -> None:
    page.add_init_script(WATCH_CSP)
    page.goto(f"{viewer.url}calls/{viewer.span_id(model='gpt-4o-mini', limit='1')}")
    page.wait_for_selector("#conversation .msg")
    text = page.locator("#conversation").inner_text()
    assert XSS_PROMPT in text  # shown literally, as text
    assert page.locator("#conversation img, #conversation script, #conversation svg").count() == 0
    # The raw attribute is the semconv JSON string, shown as text too.
    assert json.dumps(XSS_PROMPT)[1:-1] in page.locator("#attributes").inner_text()
    page.goto(viewer.url)
    page.wait_for_selector("#calls tbody tr")
    assert XSS_MODEL in page.locator("#calls").inner_text()
    assert page.locator("#calls img").count() == 0
    page.goto(f"{viewer.url}calls/{viewer.span_id(model=XSS_MODEL)}")
    page.wait_for_selector("#call-title")
    assert XSS_MODEL in page.locator("#call-title").inner_text()
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") is None
    # Nothing even tried to run: the CSP (a second line of defence) saw no inline script.
    assert page.evaluate("window.__csp") == []
    assert not page.page_errors
    screenshot(page, "viewer-xss-inert")


def test_load_more_pages_with_the_cursor(upstream: FakeUpstream, tmp_path: Path,
                                         page: Any) -> None:
    with running_proxy(upstream.url, tmp_path) as proxy:
        client = openai_client(proxy)
        for i in range(57):
            client.chat.completions.create(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": str(i)}])
        proxy.spans(57)
        page.goto(proxy.url + "/ui/")
        page.wait_for_selector("#calls tbody tr")
        assert rows(page) == 50
        page.click("#more")
        page.locator("#calls tbody tr").nth(56).wait_for()
        assert rows(page) == 57
        ids = page.locator("#calls tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.spanId)")
        assert len(set(ids)) == 57
        assert page.locator("#more").is_hidden()


def test_viewer_asks_for_the_admin_token(upstream: FakeUpstream, tmp_path: Path,
                                         page: Any) -> None:
    token = "viewer-token-0123456789"
    with running_proxy(upstream.url, tmp_path, api_admin_token=token) as proxy:
        openai_client(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        proxy.spans(1)
        page.goto(proxy.url + "/ui/")
        page.wait_for_selector("#token-form")
        assert page.locator("#token-refused").count() == 0  # asked, not refused yet
        screenshot(page, "viewer-token")
        page.fill("#token-form input", "wrong-token-0123456789")
        page.click("#token-form button")
        # The form asks again only once the API has answered 401 to the wrong token; waiting
        # for that answer (not for the form, which is on the page all along) keeps the next
        # token from being typed into a form that the late 401 is about to replace.
        page.wait_for_selector("#token-refused")
        assert "refused" in page.locator("#token-refused").inner_text()
        assert rows(page) == 0
        page.fill("#token-form input", token)
        page.click("#token-form button")
        page.wait_for_selector("#calls tbody tr")
        assert rows(page) == 1
