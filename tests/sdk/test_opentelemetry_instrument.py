"""No code change: ``opentelemetry-instrument python app.py`` in a real subprocess.

The application below knows nothing about llmtrace-otel or OpenTelemetry. The entry points
(``opentelemetry_instrumentor`` = ``llmtrace``, ``opentelemetry_traces_exporter`` =
``llmtrace_sqlite``) are found by the real ``opentelemetry-instrument`` launcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmtrace_otel.exporters.sqlite import SpanStore
from tests.support.fake_upstream import FakeUpstream, usage_for
from tests.support.otlp_sink import OTLPSink

APP = '''
import os
import openai

client = openai.OpenAI(base_url=os.environ["APP_OPENAI_BASE_URL"], api_key="sk-app",
                       max_retries=0)
reply = client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "Hi"}])
stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                        messages=[{"role": "user", "content": "Hi"}])
text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
assert text == reply.choices[0].message.content, (text, reply)
print("app done:", text)
'''


def run_instrumented(tmp_path: Path, upstream: FakeUpstream, **env: str
                     ) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("OTEL_", "LLMTRACE_", "ANTHROPIC_", "OPENAI_"))}
    clean.update({"APP_OPENAI_BASE_URL": upstream.openai_base_url,
                  "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                  "OTEL_SERVICE_NAME": "instrumented-app", **env})
    result = subprocess.run([str(launcher), sys.executable, str(script)], env=clean,
                            cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "app done: Hello from fake upstream." in result.stdout
    return result


def test_sqlite_exporter_selected_with_otel_traces_exporter(upstream: FakeUpstream,
                                                            tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    # opentelemetry-distro's configurator builds the application's TracerProvider with
    # our exporter; the instrumentation attaches to it.
    run_instrumented(tmp_path, upstream, OTEL_TRACES_EXPORTER="llmtrace_sqlite",
                     LLMTRACE_SQLITE_PATH=str(db))
    calls = SpanStore(db).recent_calls()
    genai = [c for c in calls if c.operation == "chat"]
    http = [c for c in calls if c.name == "POST"]
    assert len(genai) == 2, [c.name for c in calls]
    assert {c.stream for c in genai} == {True, False}
    for call in genai:
        assert call.service_name == "instrumented-app"
        assert call.input_tokens == usage_for("openai", "ok").input_tokens
        assert call.cost_usd is not None and call.cost_usd > 0
    # opentelemetry-instrumentation-httpx ran too; each HTTP span is a child of a call.
    assert {c.parent_span_id for c in http} == {c.span_id for c in genai}


def test_otlp_export_to_a_collector(upstream: FakeUpstream, tmp_path: Path) -> None:
    with OTLPSink() as sink:
        run_instrumented(tmp_path, upstream, OTEL_TRACES_EXPORTER="otlp",
                         OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{sink.grpc_endpoint}",
                         OTEL_EXPORTER_OTLP_INSECURE="true",
                         LLMTRACE_SQLITE_PATH=str(tmp_path / "unused.db"))
        spans = sink.wait_for_spans(4)
    genai = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"]
    assert len(genai) == 2
    for span in genai:
        assert span.name == "chat gpt-4o-mini"
        assert span.kind == "CLIENT"
        assert span.scope_name == "llmtrace_otel.sdk"
        assert span.resource["service.name"] == "instrumented-app"
        assert span.attributes["gen_ai.usage.output_tokens"] == 6
        assert float(str(span.attributes["llmtrace.cost.usd"])) > 0
    # The application has a provider, so our own SQLite exporter stays off (sdk.exporters).
    assert not (tmp_path / "unused.db").exists()


def test_without_a_configurator_the_sqlite_default_applies(upstream: FakeUpstream,
                                                           tmp_path: Path) -> None:
    db = tmp_path / "default.db"
    # No distro and no configurator: nothing sets a TracerProvider, so ours is built.
    run_instrumented(tmp_path, upstream, OTEL_PYTHON_DISTRO="none-such",
                     OTEL_PYTHON_CONFIGURATOR="none-such", LLMTRACE_SQLITE_PATH=str(db))
    calls = SpanStore(db).recent_calls()
    assert sorted(c.name for c in calls) == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert all(c.cost_usd and c.cost_usd > 0 for c in calls)


def test_a_bad_setting_leaves_the_rest_of_auto_instrumentation_running(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    result = run_instrumented(tmp_path, upstream, OTEL_TRACES_EXPORTER="llmtrace_sqlite",
                              LLMTRACE_SQLITE_PATH=str(db), LLMTRACE_SDK_EXPORTERS="sometimes")
    assert ("sdk.exporters (env LLMTRACE_SDK_EXPORTERS): 'sometimes' is not one of auto, on, "
            "off") in result.stderr
    calls = SpanStore(db).recent_calls()
    # No GenAI spans, but the HTTP instrumentation (loaded after ours) still ran.
    assert [c.name for c in calls] == ["POST", "POST"]
