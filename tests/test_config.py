"""Configuration precedence, validation errors, and the docs staying in step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmtrace_otel.config import FIELDS, ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_without_any_source() -> None:
    assert load_settings(env={}) == Settings()


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9001\nupstream:\n  url: http://file:1\n"
                           "sqlite:\n  path: file.db\n")
    env = {"LLMTRACE_SERVER_PORT": "9002", "LLMTRACE_UPSTREAM_URL": "http://env:2"}
    settings = load_settings(path, env=env, overrides={"port": "9003"})
    assert settings.port == 9003  # flag
    assert settings.upstream_url == "http://env:2"  # env over file
    assert settings.sqlite_path == "file.db"  # file over default
    assert settings.host == Settings().host  # default


def test_config_file_from_env_var(tmp_path: Path) -> None:
    path = write(tmp_path, "logging:\n  format: json\n")
    assert load_settings(env={"LLMTRACE_CONFIG": path}).log_format == "json"


def test_standard_otel_variables_keep_their_meaning() -> None:
    env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
           "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    settings = load_settings(env=env)
    assert settings.capture_content is True
    assert settings.otlp_protocol == "http/protobuf"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLMTRACE_SERVER_PORT": "eighty"}, "server.port (env LLMTRACE_SERVER_PORT)"),
        ({"LLMTRACE_SERVER_PORT": "70000"}, "is not a port number"),
        ({"LLMTRACE_UPSTREAM_URL": "ftp://x"},
         "upstream.url (env LLMTRACE_UPSTREAM_URL): 'ftp://x' is not an http(s) URL"),
        ({"LLMTRACE_UPSTREAM_READ_TIMEOUT_S": "0"}, "must be > 0 seconds"),
        ({"LLMTRACE_OTLP_PROTOCOL": "udp"}, "is not one of grpc, http/protobuf"),
        ({"LLMTRACE_LOGGING_FORMAT": "xml"}, "'xml' is not one of text, json"),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "maybe"},
         "expected true/false"),
        ({"LLMTRACE_PRICING_FILE": "/no/such/prices.yaml"}, "does not exist"),
    ],
)
def test_invalid_values_are_precise_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env=env)
    assert message in str(caught.value)


def test_unknown_file_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"server.prot \(file .*\): unknown key; did you mean "
                                          r"server.port\?"):
        load_settings(path, env={})


def test_wrong_type_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: [1]\n")
    with pytest.raises(ConfigError, match=r"server.port \(file .*\): expected a number"):
        load_settings(path, env={})


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [spec.key for spec in FIELDS if f"`{spec.key}`" not in doc or spec.env not in doc
               or spec.flag not in doc]
    assert not missing, f"docs/configuration.md lacks: {missing}"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmtrace_otel", *args], capture_output=True,
                          text=True, env=env or {"PATH": "/usr/bin:/bin"}, timeout=60)


def test_validate_prints_masked_config() -> None:
    result = run_cli("validate", "--upstream-url", "https://user:hunter2@example.com")
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
    assert "hunter2" not in result.stdout
    assert "https://****@example.com" in result.stdout


def test_validate_fails_with_precise_message() -> None:
    result = run_cli("validate", "--port", "-1")
    assert result.returncode == 2
    assert ("invalid configuration: server.port (flag --port): -1 is not a port number"
            in result.stderr)
