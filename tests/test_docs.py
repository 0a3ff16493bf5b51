"""The docs point at things that exist, and list every path the proxy keeps for itself."""

from __future__ import annotations

import re
from pathlib import Path

from llmtrace_otel.api import API_PREFIX
from llmtrace_otel.receiver.http import METRICS_PATH as OTLP_METRICS_PATH
from llmtrace_otel.receiver.http import TRACES_PATH as OTLP_TRACES_PATH
from llmtrace_otel.ui import UI_PREFIX
from llmtrace_otel.web.ops import HEALTH_PATH, METRICS_PATH
from llmtrace_otel.web.root import ROOT_PATHS

ROOT = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\]\(([^)#\s]+\.(?:md|png|yaml))(?:#[^)]*)?\)")
_MENTION = re.compile(r"\bdocs/[\w.-]+\.md\b")


def _markdown() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_local_link_of_the_docs_resolves() -> None:
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in _markdown()
              for target in _LINK.findall(page.read_text())
              if "://" not in target and not (page.parent / target).exists()]
    assert not broken, broken


def test_every_docs_file_named_in_the_code_exists() -> None:
    sources = [ROOT / "pyproject.toml", ROOT / "Makefile",
               *(ROOT / "llmtrace_otel").rglob("*.py"), *(ROOT / "processors").rglob("*.py")]
    missing = sorted({f"{path.relative_to(ROOT)}: {name}" for path in sources
                      for name in _MENTION.findall(path.read_text())
                      if not (ROOT / name).exists()})
    assert not missing, missing


def test_reserved_paths_lists_every_path_the_proxy_answers_itself() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    section = doc.split("## Reserved paths", 1)[1].split("\n## ", 1)[0]
    paths = (HEALTH_PATH, METRICS_PATH, API_PREFIX, UI_PREFIX, *ROOT_PATHS, OTLP_TRACES_PATH,
             OTLP_METRICS_PATH)
    missing = [path for path in paths if f"`{path}" not in section]
    assert not missing, f"docs/configuration.md, Reserved paths, lacks {missing}"
