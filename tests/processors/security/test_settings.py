"""security.* settings: defaults, env/flag parsing, clear errors, pipeline wiring."""

from __future__ import annotations

import dataclasses

import pytest

from llmtrace_otel.config import ConfigError, Enforcement, load_settings
from llmtrace_otel.proxy.security_guard import SecurityGuard
from llmtrace_otel.wiring import build_pipeline, build_proxy
from llmtrace_processors.content_policy import ContentPolicyProcessor
from llmtrace_processors.security.findings import Severity
from llmtrace_processors.security.processor import SecurityProcessor


def test_defaults_analyse_without_enforcing() -> None:
    settings = load_settings(env={})
    assert settings.security_enabled is True
    assert settings.security_min_severity == "low"
    assert settings.security_enforcement == "off"


def test_env_values_are_parsed() -> None:
    settings = load_settings(env={
        "LLMTRACE_SECURITY_ENFORCEMENT": "block",
        "LLMTRACE_SECURITY_ENFORCE_TYPES": "prompt_injection,pii.credit_card",
        "LLMTRACE_SECURITY_ENFORCE_MIN_SEVERITY": "medium",
        "LLMTRACE_SECURITY_FAIL_CLOSED": "yes",
    })
    server = build_proxy(dataclasses.replace(settings, sqlite_enabled=False), env={})
    try:
        guard = next(g for g in server.context.guards.guards if isinstance(g, SecurityGuard))
    finally:
        server.telemetry.shutdown()
    assert guard.mode is Enforcement.BLOCK
    assert guard.enforce_types == ("prompt_injection", "pii.credit_card")
    assert guard.min_severity is Severity.MEDIUM
    assert guard.fail_closed is True
    assert sorted(d.name for d in guard.detectors) == ["injection", "pii"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LLMTRACE_SECURITY_ENFORCEMENT": "deny"},
         r"security.enforcement \(env LLMTRACE_SECURITY_ENFORCEMENT\): 'deny' is not one of "
         r"off, flag, block"),
        ({"LLMTRACE_SECURITY_MIN_SEVERITY": "severe"}, r"security.min_severity \(env .*'severe'"),
        ({"LLMTRACE_SECURITY_ENFORCE_MIN_SEVERITY": "x"}, r"security.enforce_min_severity"),
        ({"LLMTRACE_SECURITY_ENFORCE_TYPES": " , "}, r"security.enforce_types \(env .*: names no"),
        ({"LLMTRACE_SECURITY_GUARD_MAX_CHARS": "0"},
         r"security.guard_max_chars \(env .*\): must be >= 1"),
        ({"LLMTRACE_SECURITY_ENABLED": "perhaps"}, r"security.enabled"),
    ],
)
def test_bad_values_fail_at_startup_naming_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_pipeline_places_security_before_the_content_policy(tmp_path: object) -> None:
    settings = load_settings(env={}, overrides={"sqlite_enabled": False,
                                                "security_min_severity": "medium"})
    telemetry = build_pipeline(settings, env={})
    try:
        assert telemetry.needs_content
        chain, seen = telemetry.head._next, []  # type: ignore[union-attr]
        while chain is not None and hasattr(chain, "set_next"):
            seen.append(chain)
            chain = chain._next
        kinds = [type(p) for p in seen]
        assert kinds.index(SecurityProcessor) < kinds.index(ContentPolicyProcessor)
        security = seen[kinds.index(SecurityProcessor)]
        assert security.min_severity is Severity.MEDIUM  # type: ignore[attr-defined]
    finally:
        telemetry.shutdown()


def test_guard_is_built_only_when_enforcing() -> None:
    off = load_settings(env={}, overrides={"sqlite_enabled": False})
    on = load_settings(env={}, overrides={"sqlite_enabled": False, "security_enforcement": "flag"})
    for settings, expected in ((off, []), (on, ["security"])):
        server = build_proxy(settings, env={})
        try:
            names = list(server.context.guards.names)
            assert [n for n in names if n != "tenancy"] == expected  # tenancy: its own tests
        finally:
            server.telemetry.shutdown()
