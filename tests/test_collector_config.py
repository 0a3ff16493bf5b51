"""Static checks of the shipped OpenTelemetry Collector / Tempo / Prometheus configurations.

No Collector binary runs here, so these tests catch what a Collector would reject at start-up
(a pipeline naming an undefined component, an unknown component type, a bad pipeline name)
plus the wiring this project relies on (proxy -> Collector -> Jaeger/Tempo/Prometheus).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_SYSTEM_INSTRUCTIONS,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "collector-config"
SECTIONS = ("receivers", "processors", "exporters")
PIPELINE_NAME = re.compile(r"^(traces|metrics|logs)(/[^/\s]+)?$")

#: Component types we use or document, all shipped in otelcol-contrib. Canonical 2026 names
#: plus the older spellings that still work as deprecated aliases.
KNOWN_TYPES: Mapping[str, frozenset[str]] = {
    "receivers": frozenset({"otlp", "prometheus"}),
    # Connectors are an exporter of one pipeline and a receiver of another.
    "connectors": frozenset({"forward", "routing"}),
    "processors": frozenset(
        {"attributes", "batch", "filter", "memory_limiter", "redaction", "resource", "transform"}
    ),
    "exporters": frozenset(
        {
            "clickhouse",
            "debug",
            "otlp_grpc",
            "otlp_http",
            "prometheus",
            "prometheus_remote_write",
            # deprecated aliases (accepted by otelcol-contrib, not used in our own files)
            "otlp",
            "otlphttp",
            "prometheusremotewrite",
        }
    ),
}
#: Deprecated alias -> canonical type (Collector naming convention, 2026).
DEPRECATED_TYPES: Mapping[str, str] = {
    "otlp": "otlp_grpc",  # only as an exporter: the `otlp` receiver keeps its name
    "otlphttp": "otlp_http",
    "prometheusremotewrite": "prometheus_remote_write",
}
#: Opt-in GenAI content attributes that the redaction example must strip.
CONTENT_KEYS = (GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, GEN_AI_SYSTEM_INSTRUCTIONS)


def component_type(component_id: str) -> str:
    """``otlp_grpc/jaeger`` -> ``otlp_grpc``; ``batch`` -> ``batch``."""
    return component_id.split("/", 1)[0]


def _as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def collector_config_problems(config: Mapping[str, Any]) -> list[str]:
    """Everything a Collector would refuse (or silently ignore) in ``config``; [] when sound.

    Checks: pipelines exist and are named ``traces|metrics|logs[/name]``; each pipeline has
    receivers and exporters; every referenced receiver/processor/exporter is defined in its
    top-level section (or, for receivers and exporters, under ``connectors``); every defined
    receiver and exporter is used by a pipeline, every connector both as an exporter and as
    a receiver; every component type is one we know otelcol-contrib ships.
    """
    problems: list[str] = []
    pipelines = _as_mapping(_as_mapping(config.get("service")).get("pipelines"))
    if not pipelines:
        return ["service.pipelines is missing or empty"]
    defined = {section: _as_mapping(config.get(section)) for section in SECTIONS}
    connectors = _as_mapping(config.get("connectors"))
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}

    for name, pipeline in pipelines.items():
        if not PIPELINE_NAME.match(str(name)):
            problems.append(
                f"pipeline {name!r}: name must be traces, metrics or logs, optionally '/<name>'"
            )
        pipeline = _as_mapping(pipeline)
        for section in SECTIONS:
            refs = pipeline.get(section) or []
            if not isinstance(refs, list):
                problems.append(f"pipeline {name!r}: {section} must be a list, got {refs!r}")
                continue
            if section != "processors" and not refs:
                problems.append(f"pipeline {name!r}: needs at least one entry in {section}")
            for ref in refs:
                used[section].add(ref)
                if section != "processors" and ref in connectors:
                    continue
                if ref not in defined[section]:
                    problems.append(
                        f"pipeline {name!r} references {section[:-1]} {ref!r}, which is not "
                        f"defined under top-level {section!r} (defined: {sorted(defined[section])})"
                    )

    for section in ("receivers", "exporters"):
        for component_id in sorted(set(defined[section]) - used[section]):
            problems.append(f"{section[:-1]} {component_id!r} is defined but used by no pipeline")
    for component_id in sorted(connectors):
        for section, role in (("exporters", "an exporter"), ("receivers", "a receiver")):
            if component_id not in used[section]:
                problems.append(f"connector {component_id!r} is not used as {role} of any pipeline")
    for section in (*SECTIONS, "connectors"):
        for component_id in (connectors if section == "connectors" else defined[section]):
            kind = component_type(component_id)
            if kind not in KNOWN_TYPES[section]:
                problems.append(
                    f"{section[:-1]} {component_id!r}: type {kind!r} is not in the allow-list of "
                    f"otelcol-contrib {section} {sorted(KNOWN_TYPES[section])}"
                )
    return problems


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{path}: top level must be a mapping, got {type(loaded)}"
    return loaded


def _relative(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


YAML_FILES = sorted([*CONFIG_DIR.rglob("*.yaml"), *CONFIG_DIR.rglob("*.yml")])
COLLECTOR_FILES = [path for path in YAML_FILES if "service" in _load(path)]


def _collector(relative: str) -> dict[str, Any]:
    return _load(CONFIG_DIR / relative)


# -- the checker itself ------------------------------------------------------------------------

GOOD = {
    "receivers": {"otlp": {"protocols": {"grpc": {}}}},
    "processors": {"memory_limiter": {}},
    "exporters": {"otlp_grpc/jaeger": {"endpoint": "jaeger:4317"}},
    "service": {
        "pipelines": {
            "traces": {
                "receivers": ["otlp"],
                "processors": ["memory_limiter"],
                "exporters": ["otlp_grpc/jaeger"],
            }
        }
    },
}


def test_checker_accepts_a_sound_config() -> None:
    assert collector_config_problems(GOOD) == []
    assert component_type("otlp_grpc/jaeger") == "otlp_grpc"
    assert component_type("batch") == "batch"


def test_checker_reports_undefined_component() -> None:
    broken = {**GOOD, "processors": {}}
    [problem] = collector_config_problems(broken)
    assert "references processor 'memory_limiter'" in problem
    assert "not defined under top-level 'processors'" in problem


def test_checker_understands_connectors() -> None:
    routed = {
        **GOOD,
        "connectors": {"routing/x": {"table": []}},
        "service": {"pipelines": {
            "traces/in": {"receivers": ["otlp"], "exporters": ["routing/x"]},
            "traces/out": {"receivers": ["routing/x"], "exporters": ["otlp_grpc/jaeger"]},
        }},
    }
    assert collector_config_problems(routed) == []
    half = {**routed, "service": {"pipelines": {
        "traces/in": {"receivers": ["otlp"], "exporters": ["routing/x", "otlp_grpc/jaeger"]}}}}
    assert collector_config_problems(half) == [
        "connector 'routing/x' is not used as a receiver of any pipeline"]
    odd = {**routed, "connectors": {"routing/x": {}, "teleport": {}}}
    assert any("connector 'teleport': type 'teleport' is not in the allow-list" in problem
               for problem in collector_config_problems(odd))


def test_checker_reports_unused_unknown_and_misnamed() -> None:
    broken = {
        **GOOD,
        "exporters": {"otlp_grpc/jaeger": {}, "zipkin/old": {}},
        "service": {
            "pipelines": {
                "spans": {"receivers": ["otlp"], "exporters": ["otlp_grpc/jaeger"]},
                "metrics/x": {"receivers": ["otlp"], "exporters": []},
            }
        },
    }
    problems = "\n".join(collector_config_problems(broken))
    assert "pipeline 'spans': name must be traces, metrics or logs" in problems
    assert "pipeline 'metrics/x': needs at least one entry in exporters" in problems
    assert "exporter 'zipkin/old' is defined but used by no pipeline" in problems
    assert "exporter 'zipkin/old': type 'zipkin' is not in the allow-list" in problems
    assert collector_config_problems({"receivers": {}}) == [
        "service.pipelines is missing or empty"
    ]


# -- every shipped file ------------------------------------------------------------------------


def test_expected_files_exist() -> None:
    expected = {
        "jaeger/otel-collector.yaml",
        "tempo/otel-collector.yaml",
        "tempo/tempo.yaml",
        "prometheus/otel-collector.yaml",
        "prometheus/prometheus.yml",
        "genai-content-redaction/otel-collector.yaml",
        "enrichment/otel-collector.yaml",
        "clickhouse/otel-collector.yaml",
    }
    assert expected <= {_relative(path) for path in YAML_FILES}
    assert len(COLLECTOR_FILES) == 6


@pytest.mark.parametrize("path", YAML_FILES, ids=_relative)
def test_yaml_parses(path: Path) -> None:
    _load(path)


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=_relative)
def test_collector_config_is_sound(path: Path) -> None:
    problems = collector_config_problems(_load(path))
    assert not problems, f"{_relative(path)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=_relative)
def test_collector_config_conventions(path: Path) -> None:
    """Our own files: canonical component names, memory_limiter first, reachable receivers."""
    config = _load(path)
    for component_id in config.get("exporters", {}):
        kind = component_type(component_id)
        assert kind not in DEPRECATED_TYPES, (
            f"{_relative(path)}: exporter {component_id!r} uses the deprecated type {kind!r}; "
            f"write {DEPRECATED_TYPES[kind]!r}"
        )
    for name, pipeline in config["service"]["pipelines"].items():
        processors = pipeline.get("processors") or []
        assert processors[:1] == ["memory_limiter"], (
            f"{_relative(path)}: pipeline {name!r} must start with memory_limiter, got {processors}"
        )
    for receiver_id, receiver in config["receivers"].items():
        if component_type(receiver_id) == "otlp":
            for protocol, settings in receiver["protocols"].items():
                endpoint = (settings or {}).get("endpoint", "")
                assert endpoint.startswith("0.0.0.0:"), (
                    f"{_relative(path)}: {receiver_id}.{protocol} must listen on 0.0.0.0 "
                    f"(the default, localhost, is unreachable from other containers)"
                )


# -- wiring ------------------------------------------------------------------------------------


def _pipeline_exporters(config: Mapping[str, Any], pipeline: str) -> list[str]:
    exporters: list[str] = config["service"]["pipelines"][pipeline]["exporters"]
    return exporters


@pytest.mark.parametrize(
    ("relative", "exporter", "endpoint"),
    [
        ("jaeger/otel-collector.yaml", "otlp_grpc/jaeger", "jaeger:4317"),
        ("tempo/otel-collector.yaml", "otlp_grpc/tempo", "tempo:4317"),
    ],
)
def test_traces_go_to_the_backend_over_otlp(relative: str, exporter: str, endpoint: str) -> None:
    config = _collector(relative)
    assert config["receivers"]["otlp"]["protocols"].keys() == {"grpc", "http"}
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    settings = config["exporters"][exporter]
    assert settings["endpoint"] == endpoint
    assert settings["tls"]["insecure"] is True
    assert "batch" in settings["sending_queue"]
    assert exporter in _pipeline_exporters(config, "traces")
    assert config["exporters"]["debug"]["verbosity"] == "basic"
    # The proxy pushes metrics on the same connection; a metrics pipeline must accept them.
    assert config["service"]["pipelines"]["metrics"]["receivers"] == ["otlp"]


def test_clickhouse_pipeline_stores_traces_and_metrics_in_batches() -> None:
    """docs/deployment.md's very-high-volume path: OTLP in, ClickHouse out, batched, retried,
    with a TTL (what the PostgreSQL store does with partition drops)."""
    config = _collector("clickhouse/otel-collector.yaml")
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    clickhouse = config["exporters"]["clickhouse"]
    assert clickhouse["endpoint"].startswith("tcp://clickhouse:9000")
    assert clickhouse["create_schema"] is True and clickhouse["async_insert"] is True
    assert clickhouse["ttl"] == "720h" and clickhouse["traces_table_name"] == "otel_traces"
    assert clickhouse["sending_queue"]["batch"]["min_size"] >= 10_000
    assert clickhouse["retry_on_failure"]["enabled"] is True
    for pipeline in ("traces", "metrics"):
        assert "clickhouse" in _pipeline_exporters(config, pipeline)
        assert config["service"]["pipelines"][pipeline]["receivers"] == ["otlp"]


def test_prometheus_collector_scrapes_the_proxy_and_serves_otlp_metrics() -> None:
    config = _collector("prometheus/otel-collector.yaml")
    [scrape] = config["receivers"]["prometheus/llmtrace"]["config"]["scrape_configs"]
    assert (scrape["job_name"], scrape["metrics_path"]) == ("llmtrace", "/metrics")
    assert scrape["static_configs"][0]["targets"] == ["llmtrace:8080"]
    remote_write = config["exporters"]["prometheus_remote_write"]
    assert remote_write["endpoint"].endswith("/api/v1/write")
    assert config["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:8889"
    pipelines = config["service"]["pipelines"]
    assert pipelines["metrics/scrape"]["receivers"] == ["prometheus/llmtrace"]
    assert pipelines["metrics/scrape"]["exporters"] == ["prometheus_remote_write"]
    assert pipelines["metrics/otlp"]["receivers"] == ["otlp"]
    assert pipelines["metrics/otlp"]["exporters"] == ["prometheus"]


def test_prometheus_scrapes_the_proxy_directly() -> None:
    config = _load(CONFIG_DIR / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert "llmtrace" in jobs, f"no llmtrace job in {sorted(jobs)}"
    job = jobs["llmtrace"]
    assert job["metrics_path"] == "/metrics"
    assert ["localhost:8080"] in [static["targets"] for static in job["static_configs"]]


def test_tempo_config_receives_otlp_and_stores_locally() -> None:
    config = _load(CONFIG_DIR / "tempo" / "tempo.yaml")
    protocols = config["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert config["storage"]["trace"]["backend"] == "local"
    # Tempo 3.0 rejects these 2.x-only blocks; keeping them out keeps the file valid for both.
    assert not {"ingester", "compactor"} & config.keys()


def test_redaction_example_strips_genai_content() -> None:
    config = _collector("genai-content-redaction/otel-collector.yaml")
    traces = config["service"]["pipelines"]["traces"]
    processors = traces["processors"]
    assert "attributes/drop_genai_content" in processors
    assert "transform/drop_genai_content_in_events" in processors
    deleted = {
        action["key"]
        for action in config["processors"]["attributes/drop_genai_content"]["actions"]
        if action["action"] == "delete"
    }
    assert set(CONTENT_KEYS) <= deleted
    statements = [
        statement
        for group in config["processors"]["transform/drop_genai_content_in_events"][
            "trace_statements"
        ]
        for statement in group["statements"]
    ]
    for key in CONTENT_KEYS:
        assert f'delete_key(spanevent.attributes, "{key}")' in statements


def test_readmes_index_every_folder() -> None:
    index = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    folders = sorted(path for path in CONFIG_DIR.iterdir() if path.is_dir())
    assert folders
    for folder in folders:
        assert (folder / "README.md").is_file(), f"{folder.name}/README.md is missing"
        assert f"{folder.name}/" in index, f"collector-config/README.md lacks {folder.name}/"
        readme = (folder / "README.md").read_text(encoding="utf-8")
        for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
            assert variable in readme, f"{folder.name}/README.md does not mention {variable}"


# -- enrichment: GenAI spans through llmtrace-otel collect and back --------------------------


def test_enrichment_routes_genai_spans_through_llmtrace_and_back_without_a_loop() -> None:
    from llmtrace_otel.config import load_settings
    from llmtrace_otel.receiver.dialects import genai_legacy, openinference, openllmetry

    config = _collector("enrichment/otel-collector.yaml")
    pipelines = config["service"]["pipelines"]
    [route] = config["connectors"]["routing/genai"]["table"]
    assert route["context"] == "span"
    assert route["pipelines"] == ["traces/genai"]
    # The condition names a key of every dialect the receiver normalises.
    for key in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system",
                "openinference.span.kind", "llm.request.type"):
        assert f'attributes["{key}"] != nil' in route["condition"], key
    assert "gen_ai.system" in genai_legacy.TRIGGER_KEYS
    assert "openinference.span.kind" in openinference.TRIGGER_KEYS
    assert "llm.request.type" in openllmetry.TRIGGER_KEYS
    assert config["connectors"]["routing/genai"]["default_pipelines"] == ["traces/other"]
    assert pipelines["traces/in"]["exporters"] == ["routing/genai"]
    assert pipelines["traces/genai"]["exporters"] == ["otlp_grpc/llmtrace"]
    assert "otlp_grpc/tempo" in pipelines["traces/other"]["exporters"]
    # llmtrace-otel's default receiver port, and a retrying exporter towards it.
    llmtrace = config["exporters"]["otlp_grpc/llmtrace"]
    default_port = load_settings(env={}).receiver_grpc_endpoint.rsplit(":", 1)[1]
    assert llmtrace["endpoint"] == f"llmtrace:{default_port}"
    assert llmtrace["retry_on_failure"]["enabled"] is True
    # Enriched spans come back on a second receiver whose pipeline never routes again.
    enriched = pipelines["traces/enriched"]
    assert enriched["receivers"] == ["otlp/enriched"]
    assert "routing/genai" not in enriched["exporters"]
    assert "otlp_grpc/llmtrace" not in enriched["exporters"]
    assert "otlp_grpc/tempo" in enriched["exporters"]
    back = config["receivers"]["otlp/enriched"]["protocols"]["grpc"]["endpoint"]
    front = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert back != front
    readme = (CONFIG_DIR / "enrichment" / "README.md").read_text(encoding="utf-8")
    assert f"--otlp-endpoint http://otel-collector:{back.rsplit(':', 1)[1]}" in readme
    assert pipelines["metrics"]["receivers"] == ["otlp", "otlp/enriched"]
