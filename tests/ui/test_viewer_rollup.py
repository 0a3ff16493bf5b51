"""The viewer on a store large enough that its default 24 h stats come from the hourly rollup:
the latency cards say they are approximate, and the totals are the API's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export import SpanExportResult

from llmtrace_otel.exporters.sqlite import SQLiteSpanExporter
from tests.support.call_spans import make_calls
from tests.support.fake_upstream import FakeUpstream
from tests.support.openapi_check import call
from tests.support.proxy_harness import running_proxy
from tests.ui.conftest import screenshot


def test_latency_cards_are_marked_approximate_when_from_the_rollup(
    upstream: FakeUpstream, tmp_path: Path, page: Any
) -> None:
    spans = make_calls(12_000, start_ns=time.time_ns() - 20 * 3600 * 10**9, step_ns=5 * 10**9)
    exporter = SQLiteSpanExporter(tmp_path / "spans.db")  # the harness's store path
    for offset in range(0, len(spans), 512):
        assert exporter.export(spans[offset:offset + 512]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with running_proxy(upstream.url, tmp_path) as proxy:
        stats = call(proxy.url, "/api/v1/stats", {"since": "24h"}).body
        assert stats["percentiles"] == "histogram" and stats["totals"]["calls"] > 10_000
        page.goto(proxy.url + "/ui/")
        page.wait_for_selector("#totals .card")
        cards = page.locator("#totals .card")
        assert cards.first.inner_text().startswith(f"{stats['totals']['calls']:,}")
        latency = [card for card in cards.all() if "latency" in card.inner_text()]
        assert len(latency) == 2
        for card in latency:
            assert card.inner_text().startswith("≈ ")
            assert "within 4.9 %" in str(card.get_attribute("title"))
        screenshot(page, "viewer-rollup")
        assert page.page_errors == []
