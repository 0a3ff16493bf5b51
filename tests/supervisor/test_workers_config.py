"""``server.workers``: its sources, 0 = one per core, and the rule that refuses several workers
with per-process (memory) rate limits or budgets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmtrace_otel.config import ConfigError, load_settings, worker_count

LIMITS = {"LLMTRACE_LIMITS_REQUESTS_PER_S": "5"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmtrace_otel", *args], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)


def test_workers_from_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  workers: 2\n")
    assert load_settings(path, env={}).workers == 2
    assert load_settings(path, env={"LLMTRACE_SERVER_WORKERS": "3"}).workers == 3
    assert load_settings(path, env={"LLMTRACE_SERVER_WORKERS": "3"},
                         overrides={"workers": "4"}).workers == 4
    assert load_settings(env={}).workers == 1  # one process unless asked


def test_the_workers_flag_reaches_the_settings() -> None:
    result = run_cli("validate", "--workers", "3")
    assert result.returncode == 0, result.stderr
    line = next(row for row in result.stdout.splitlines() if "server.workers " in row)
    assert line.split()[1:] == ["3", "(flag", "--workers)"]


def test_zero_workers_is_one_per_core() -> None:
    assert load_settings(env={"LLMTRACE_SERVER_WORKERS": "0"}).workers == 0
    assert worker_count(0) == len(os.sched_getaffinity(0))
    assert worker_count(5) == 5


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "server.workers (env LLMTRACE_SERVER_WORKERS)"),
    ("257", "server.workers (env LLMTRACE_SERVER_WORKERS)"),
    ("two", "server.workers (env LLMTRACE_SERVER_WORKERS)"),
])
def test_an_impossible_number_of_workers_is_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"LLMTRACE_SERVER_WORKERS": value})
    assert message in str(caught.value)


@pytest.mark.parametrize(("env", "yaml", "shared"), [
    (LIMITS, "", "rate limits"),
    ({"LLMTRACE_LIMITS_TOKENS_PER_MIN": "100000"}, "", "rate limits"),
    ({"LLMTRACE_BUDGETS_DAILY_HARD_USD": "10"}, "", "budgets"),
    ({"LLMTRACE_BUDGETS_MONTHLY_SOFT_USD": "10"}, "", "budgets"),
    ({**LIMITS, "LLMTRACE_BUDGETS_HOURLY_HARD_USD": "1"}, "", "rate limits and budgets"),
    ({}, "tenants:\n  team-a:\n    requests_per_s: 5\n", "rate limits"),
    ({}, "tenants:\n  team-a:\n    tokens_per_min: 1000\n", "rate limits"),
    ({}, "tenants:\n  team-a:\n    budgets:\n      daily: {hard_usd: 5}\n", "budgets"),
    ({}, "tenants:\n  team-a:\n    agents:\n      bot:\n        budgets: {daily: {hard_usd: 1}}\n",
     "budgets"),
], ids=["requests", "tokens", "hard budget", "soft budget", "both", "tenant requests",
        "tenant tokens", "tenant budget", "agent budget"])
def test_several_workers_with_memory_limits_or_budgets_are_refused(
    tmp_path: Path, env: dict[str, str], yaml: str, shared: str,
) -> None:
    path = write(tmp_path, yaml) if yaml else None
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={**env, "LLMTRACE_SERVER_WORKERS": "4"})
    message = str(caught.value)
    assert (f"server.workers (env LLMTRACE_SERVER_WORKERS): 4 workers with state.backend="
            f"memory would each keep their own {shared} (4 separate limits): set "
            "state.backend=redis (and state.redis_url) to share them, or server.workers=1"
            ) in message


def test_one_worker_per_core_counts_as_several(tmp_path: Path) -> None:
    cores = worker_count(0)
    if cores < 2:
        pytest.skip("one core: server.workers=0 is one worker here")
    with pytest.raises(ConfigError, match=f"{cores} workers with state.backend=memory"):
        load_settings(env={**LIMITS, "LLMTRACE_SERVER_WORKERS": "0"})


@pytest.mark.parametrize("env", [
    {**LIMITS, "LLMTRACE_STATE_BACKEND": "redis"},  # shared by every worker
    {"LLMTRACE_BUDGETS_DAILY_HARD_USD": "10", "LLMTRACE_STATE_BACKEND": "redis"},
    {},  # nothing to share
    {**LIMITS, "LLMTRACE_TENANCY_ENABLED": "false"},  # nothing enforced
    {**LIMITS, "LLMTRACE_SERVER_WORKERS": "1"},  # one process keeps one limit
], ids=["redis limits", "redis budgets", "no limits", "tenancy off", "one worker"])
def test_several_workers_are_accepted_when_nothing_per_process_is_enforced(
    env: dict[str, str],
) -> None:
    settings = load_settings(env={"LLMTRACE_SERVER_WORKERS": "4", **env})
    assert settings.workers == int(env.get("LLMTRACE_SERVER_WORKERS", "4"))


def test_tenants_that_only_map_api_keys_need_no_shared_state(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants:\n  team-a:\n    key_ids: [key-1f2e3d4c5b6a7980]\n")
    assert load_settings(path, env={"LLMTRACE_SERVER_WORKERS": "4"}).workers == 4


def test_the_command_line_refuses_them_with_the_reason() -> None:
    result = run_cli("validate", "--workers", "2", "--requests-per-s", "5")
    assert result.returncode == 2
    assert ("server.workers (flag --workers): 2 workers with state.backend=memory"
            in result.stderr)
    assert "set state.backend=redis" in result.stderr
