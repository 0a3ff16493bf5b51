"""The root of the port is the proxy's own: a pointer to the viewer, never a relayed 404 call."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import openai

from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import RunningProxy, running_proxy


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _get(url: str, accept: str = "*/*", method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": accept}, method=method)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_root_points_at_the_viewer_and_is_neither_relayed_nor_stored(
        proxy: RunningProxy, upstream: FakeUpstream) -> None:
    status, headers, _ = _get(proxy.url + "/", accept="text/html,application/xhtml+xml")
    assert status == 302 and headers["Location"] == "/ui/"
    status, headers, body = _get(proxy.url + "/")
    assert status == 200 and headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["links"] == {"ui": "/ui/", "api": "/api/v1/", "metrics": "/metrics",
                                 "health": "/health"}
    assert _get(proxy.url + "/", method="HEAD")[0] == 200
    assert _get(proxy.url + "/favicon.ico")[0] == 204
    status, _, body = _get(proxy.url + "/robots.txt")
    assert status == 200 and b"Disallow: /" in body
    # A real call after them: the only span and the only request the upstream saw.
    openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert [span.name for span in proxy.spans(1)] == ["chat gpt-4o-mini"]
    assert [request.path for request in upstream.requests] == ["/v1/chat/completions"]


def test_root_without_the_viewer_lists_what_there_is(upstream: FakeUpstream,
                                                     tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, api_enabled=False) as proxy:
        status, _, body = _get(proxy.url + "/", accept="text/html")
        assert status == 200  # nothing to redirect a browser to
        assert json.loads(body)["links"] == {"metrics": "/metrics", "health": "/health"}
        assert proxy.spans() == []
