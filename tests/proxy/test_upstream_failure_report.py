"""An unreachable upstream is reported once, at WARNING, and never with secrets."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import openai
import pytest

from tests.support.proxy_harness import running_proxy

MESSAGES = [{"role": "user", "content": "Hello"}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_outage_is_a_warning_without_credentials_or_query(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    caplog.set_level(logging.INFO, logger="llmtrace_otel.proxy.upstream")
    with running_proxy(f"http://user:SECRET-PASS@127.0.0.1:{port}", tmp_path) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-x", max_retries=0,
                               default_query={"key": "QUERY-KEY"})
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as caught:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert caught.value.status_code == 502
            message = str(caught.value.body)
            assert "SECRET-PASS" not in message and "QUERY-KEY" not in message
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # not one per call
    text = warnings[0].getMessage()
    assert f"upstream http://127.0.0.1:{port}: cannot connect" in text
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "SECRET-PASS" not in logged and "QUERY-KEY" not in logged
