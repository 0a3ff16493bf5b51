"""The import contract: arrows between the parts of the product point one way.

Every ``import`` statement counts, lazy ones inside functions and ``TYPE_CHECKING`` ones
included, because a cycle held apart by a lazy import is still a cycle a reader must keep
in their head. Run by ``make lint`` and by ``make test``.
"""

from __future__ import annotations

import ast
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Import name -> source folder (processors/ is installed as llmtrace_processors).
PACKAGES = {"llmtrace_otel": ROOT / "llmtrace_otel", "llmtrace_processors": ROOT / "processors"}
#: The only modules that may import the assembly: the entry points.
ENTRY_POINTS = {"llmtrace_otel.cli", "llmtrace_otel.sdk"}


def _modules() -> Iterator[tuple[str, Path]]:
    for name, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((name, *parts)), path


def _part(module: str) -> str | None:
    """The first-level part a module belongs to (``llmtrace_otel.proxy``, ...)."""
    top, _, rest = module.partition(".")
    if top == "llmtrace_processors":
        return top
    if top != "llmtrace_otel":
        return None
    return f"llmtrace_otel.{rest.split('.')[0]}" if rest else "llmtrace_otel"


def _imports(module: str, path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                yield ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.module


def _graph() -> dict[str, dict[str, set[str]]]:
    """part -> imported part -> the modules that import it."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, path in _modules():
        source = _part(module)
        assert source is not None
        for target in _imports(module, path):
            part = _part(target)
            if part is not None and part != source:
                graph[source][part].add(module)
    return graph


def _cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_cycle_between_parts() -> None:
    graph = _graph()
    cycle = _cycle(graph)
    if cycle is not None:
        steps = [f"{a} -> {b} (in {', '.join(sorted(graph[a][b]))})"
                 for a, b in zip(cycle, cycle[1:], strict=False)]
        raise AssertionError("import cycle between parts:\n  " + "\n  ".join(steps))


def test_processors_never_import_the_product() -> None:
    imported = _graph()["llmtrace_processors"]
    offenders = sorted(module for part, modules in imported.items()
                       if part.startswith("llmtrace_otel") for module in modules)
    assert not offenders, f"llmtrace_processors imports llmtrace_otel in: {offenders}"


def test_config_imports_no_other_part() -> None:
    assert not dict(_graph()["llmtrace_otel.config"]), \
        "llmtrace_otel.config must import no other part of the product"


def test_only_entry_points_import_the_assembly() -> None:
    importers = {part for part, targets in _graph().items() if "llmtrace_otel.wiring" in targets}
    assert importers <= ENTRY_POINTS, f"wiring imported by {sorted(importers - ENTRY_POINTS)}"


def test_every_package_folder_is_installed_and_none_bare() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    folders = {module for module, path in _modules() if path.name == "__init__.py"}
    assert listed == folders, ("pyproject.toml packages differ from the package folders: "
                               f"missing {sorted(folders - listed)}, "
                               f"extra {sorted(listed - folders)}")
    assert not [name for name in listed if name.split(".")[0] == "processors"]
