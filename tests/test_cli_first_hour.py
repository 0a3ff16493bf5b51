"""What a newcomer meets first on the command line: a busy port, a typo, --help."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run([sys.executable, "-m", "llmtrace_otel", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, timeout=timeout)


def test_a_busy_port_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--sqlite-path", str(tmp_path / "s.db"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (f"llmtrace-otel: cannot listen on 127.0.0.1:{port}: another process is already "
            f"using port {port}") in result.stderr
    assert "--port / server.port" in result.stderr


def test_query_commands_help_is_about_queries() -> None:
    for command in ("traces", "stats", "trace"):
        result = run_cli(command, "--help")
        assert result.returncode == 0
        lines = result.stdout.splitlines()
        assert len(lines) < 40, f"{command} --help is {len(lines)} lines"
        assert "--db" in result.stdout and "--config" in result.stdout
        assert "--upstream-url" not in result.stdout  # server settings belong to serve
    assert "--upstream-url" in run_cli("serve", "--help").stdout


def test_validate_reports_every_problem_at_once_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  prot: 9000\nupstream:\n  url: ftp://nowhere\n"
                      "security:\n  enforcement: deny\n")
    result = run_cli("validate", "--config", str(config), "--port", "70000")
    assert result.returncode == 2
    err = result.stderr
    assert "invalid configuration (4 problems):" in err
    assert f"server.prot (file {config}): unknown key; did you mean server.port?" in err
    assert f"upstream.url (file {config}): 'ftp://nowhere' is not an http(s) URL" in err
    assert (f"security.enforcement (file {config}): 'deny' is not one of off, flag, "
            "block") in err
    assert "server.port (flag --port): 70000 is not a port number (0-65535)" in err
    assert "known keys" not in err and len(err.splitlines()) == 5  # no dump of every key


def test_validate_names_the_source_of_each_value_and_flags_misspelled_variables(
        tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("logging:\n  format: json\n")
    result = run_cli("validate", "--config", str(config), "--port", "9001",
                     env={"LLMTRACE_UPSTRAEM_URL": "http://typo", "LLMTRACE_SQLITE_PATH": "x.db"})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]
            if line.startswith("  ")}
    assert rows["server.port"].endswith("(flag --port)")
    assert rows["sqlite.path"].endswith("(env LLMTRACE_SQLITE_PATH)")
    assert rows["logging.format"].endswith(f"(file {config})")
    assert rows["server.host"].endswith("(default)")
    assert ("warning: environment variable LLMTRACE_UPSTRAEM_URL is not a setting and is "
            "ignored; did you mean LLMTRACE_UPSTREAM_URL?") in result.stdout


def test_a_bare_off_in_yaml_is_the_off_choice(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("security:\n  enforcement: off\n  stream_scan: off\n")
    result = run_cli("validate", "--config", str(config))
    assert result.returncode == 0, result.stderr
