"""``receiver.on_proxy``: the proxy's own port also accepts OTLP/HTTP into its pipeline."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.receiver.helpers import by_span_id, payload, post_json, span_ids
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy


def test_proxy_port_accepts_otlp_and_still_proxies(upstream: FakeUpstream,
                                                   tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, receiver_on_proxy=True) as proxy:
        data = payload("openinference.json")
        status, _, body = post_json(f"{proxy.url}/v1/traces", data)
        assert (status, body) == (200, {})
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{proxy.url}/v1/traces")))
        with provider.get_tracer("sdk").start_as_current_span(
                "embeddings text-embedding-3-small",
                attributes={"gen_ai.system": "openai", "gen_ai.operation.name": "embeddings",
                            "gen_ai.request.model": "text-embedding-3-small",
                            "gen_ai.usage.prompt_tokens": 12}):
            pass
        provider.shutdown()
        spans = by_span_id(proxy.spans(len(span_ids(data)) + 1))
        assert set(span_ids(data)) <= set(spans)
        llm = dict(spans["1f2e3d4c5b6a7989"].attributes or {})
        assert llm["gen_ai.provider.name"] == "openai" and llm["llmtrace.cost.usd"] > 0
        sdk = [s for s in spans.values() if s.name.startswith("embeddings")]
        assert dict(sdk[0].attributes or {})["gen_ai.usage.input_tokens"] == 12
        # Every other path is still relayed to the upstream.
        request = urllib.request.Request(
            f"{proxy.url}/v1/chat/completions", method="POST",
            data=json.dumps({"model": "gpt-4o-mini",
                             "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-x"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def test_without_the_flag_otlp_paths_are_relayed(upstream: FakeUpstream,
                                                 tmp_path: Path) -> None:
    upstream.clear()
    with running_proxy(upstream.url, tmp_path) as proxy:
        post_json(f"{proxy.url}/v1/traces", {"resourceSpans": []})
        assert [r.path for r in upstream.requests] == ["/v1/traces"]
