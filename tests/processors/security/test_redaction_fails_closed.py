"""Redaction fails closed (issue: trust, item 2).

Reproduced as the review did: with capture on and ``security.pii_export: redact``, slow
scans opened the security stage's breaker, and the next call's prompt ("my email is
victim@... and my card 4111 ...") was stored verbatim, marked only as skipped. Content the
configuration says must be redacted never leaves unredacted now: it is withheld, counted.
"""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from llmtrace_otel.config import ConfigError, load_settings
from llmtrace_processors.attributes import LLMTRACE_ANALYSIS_SKIPPED, LLMTRACE_CONTENT_WITHHELD
from tests.support.expectations import metric_value
from tests.support.fake_upstream import FakeUpstream
from tests.support.proxy_harness import running_proxy

SECRET_PROMPT = "my email is victim@example.com and my card 4539 1488 0343 6467"


def test_a_skipped_redaction_withholds_the_content(upstream: FakeUpstream,
                                                   tmp_path: Path) -> None:
    with running_proxy(upstream.url, tmp_path, capture_content=True,
                       security_pii_export="redact",
                       # every scan counts as slow: the first opens the breaker
                       breaker_analysis_slow_ms=0.001, breaker_failure_threshold=1,
                       breaker_window=1, breaker_recovery_s=600) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0)
        for _ in range(2):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": SECRET_PROMPT}])
        first, second = proxy.spans(2)
        text = proxy.metrics_text()
    exported_first = json.dumps(dict(first.attributes or {}))
    assert "[PII:" in exported_first and "victim@example.com" not in exported_first
    attributes = dict(second.attributes or {})
    assert "security" in attributes[LLMTRACE_ANALYSIS_SKIPPED]  # type: ignore[operator]
    assert attributes[LLMTRACE_CONTENT_WITHHELD] == "not_redacted"
    assert not [key for key in attributes if key.startswith(("gen_ai.input", "gen_ai.output"))]
    assert "victim@example.com" not in json.dumps(attributes)
    assert "4539 1488" not in exported_first
    assert metric_value(text, "llmtrace_telemetry_dropped_total", stage="content_policy",
                        reason="unredacted_content") == 1
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("spans.db*"))  # WAL too
    assert b"victim@example.com" not in stored and b"4539 1488" not in stored


def test_redaction_without_the_security_stage_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"security.pii_export \(flag --security-pii-export\)"
                                          r": redact needs security.enabled=true"):
        load_settings(env={}, overrides={"security_pii_export": "redact",
                                         "security_enabled": False})
