"""Mutation testing of the modules where a silent bug costs a user money or safety.

``make mutation`` (docs/testing.md). For each target module (tools/mutation_targets.py):
every mutant is the module with one small change to its syntax tree (a comparison, an
operator, a number, a boolean, a call such as ``min``/``max`` swapped, a call or a ``raise``
removed); the module's own tests run against it in a fresh process, and a mutant is
*killed* when they fail (or hang past the time limit). A survivor is a change that no test
notices: a missing test, or an equivalent mutant (listed by name, with the reason, in the
targets file, and left out of the score).

Why our own ~300 lines rather than mutmut 3: mutmut copies the sources into ``mutants/``
and imports them from there, which misses ``processors/`` (installed under the import name
``llmtrace_processors`` by setuptools' package-dir, never importable from a copy), and it
runs its own test selection. Here the mutated tree is compiled in memory and served to
the import system under the module's own name, in a process forked from one that has
already imported the heavy third-party libraries, so a mutant costs only its tests.

Not mutated: strings (messages and regexes), annotations, docstrings, decorators, logging
calls, and module-level tables of facts (IBAN lengths, card ranges, country codes): a test
can only check a fact against a second copy of it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.mutation_targets import TARGETS, Target  # noqa: E402

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
}
_CALL_SWAPS = {"min": "max", "max": "min", "floor": "ceil", "ceil": "floor", "any": "all",
               "all": "any"}
_SYMBOLS = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+",
    ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.And: "and", ast.Or: "or",
}
_LOGGERS = {"_log", "log", "logger", "_logger", "logging"}
#: Imported once before forking (the tests' shared support pulls in the product and its
#: libraries), so that each mutant's process imports only our own code again.
_PRELOAD = ("pytest", "openai", "anthropic", "jsonschema", "tests.conftest")
#: Our own packages: forgotten in each mutant's process, so that they are imported afresh
#: with the mutant (third-party libraries stay imported).
_OURS = ("llmtrace_otel", "llmtrace_processors", "tests")


@dataclass(frozen=True)
class Site:
    """Where and how to mutate: found again by position in a fresh parse of the module."""

    kind: str  # compare | binop | augassign | boolop | unary | number | bool | call | remove | loop
    line: int
    col: int
    end: tuple[int, int]
    index: int  # which operator of a comparison chain
    description: str
    scope: str  # the enclosing class/function names, "<module>" at top level


@dataclass(frozen=True)
class Mutant:
    name: str  # "<scope>: <description>" plus " #n" from the second such mutant on
    site: Site
    snippet: str


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | timeout | equivalent
    seconds: float


@dataclass
class Score:
    module: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(o.status in statuses for o in self.outcomes)

    @property
    def scored(self) -> int:
        return len(self.outcomes) - self.count("equivalent")

    @property
    def percent(self) -> float:
        return 100.0 * self.count("killed", "timeout") / self.scored if self.scored else 100.0


# -- finding mutation sites ---------------------------------------------------------------


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes never mutated: annotations, docstrings, decorators, fact tables."""
    skip: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            skip.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            skip.append(node.returns)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            skip.extend(node.decorator_list)
    for statement in tree.body:
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        if value is not None and not isinstance(value, ast.Constant | ast.UnaryOp):
            skip.append(value)  # a module-level table, not a scalar setting
    return {id(inner) for outer in skip for inner in ast.walk(outer)}


def _scopes(tree: ast.Module) -> dict[int, str]:
    names: dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = child.name if scope == "<module>" else f"{scope}.{child.name}"
            names[id(child)] = inner
            visit(child, inner)

    visit(tree, "<module>")
    return names


def _is_logging(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
        and func.value.id in _LOGGERS


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    name = func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)
    return name if name in _CALL_SWAPS else None


def _sites_of(node: ast.AST) -> Iterator[tuple[str, int, str]]:
    """(kind, index, description) of every mutation of ``node`` itself."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            swap = _COMPARE_SWAPS[type(op)]
            yield "compare", index, f"'{_SYMBOLS[type(op)]}' -> '{_SYMBOLS[swap]}'"
    elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BINOP_SWAPS:
        swap = _BINOP_SWAPS[type(node.op)]
        kind = "binop" if isinstance(node, ast.BinOp) else "augassign"
        equals = "" if kind == "binop" else "="
        yield kind, 0, f"'{_SYMBOLS[type(node.op)]}{equals}' -> '{_SYMBOLS[swap]}{equals}'"
    elif isinstance(node, ast.BoolOp):
        other = "or" if isinstance(node.op, ast.And) else "and"
        yield "boolop", 0, f"'{_SYMBOLS[type(node.op)]}' -> '{other}'"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield "unary", 0, "'not' removed" if isinstance(node.op, ast.Not) else "'-' removed"
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield "bool", 0, f"{node.value} -> {not node.value}"
    elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        yield "number", 0, f"{node.value!r} -> {node.value + 1!r}"
    elif isinstance(node, ast.Call) and (name := _call_name(node)):
        yield "call", 0, f"{name}() -> {_CALL_SWAPS[name]}()"
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await) \
            and not (isinstance(node.value, ast.Call) and _is_logging(node.value)):
        yield "remove", 0, f"call removed: {ast.unparse(node.value)[:60]}"
    elif isinstance(node, ast.Raise):
        yield "remove", 0, "raise removed"
    elif isinstance(node, ast.Break | ast.Continue):
        yield "loop", 0, "break -> continue" if isinstance(node, ast.Break) else \
            "continue -> break"


def find_sites(source: str) -> list[Site]:
    tree = ast.parse(source)
    skipped = _skipped_nodes(tree)
    scopes = _scopes(tree)
    sites = []
    for node in ast.walk(tree):
        if id(node) in skipped or not hasattr(node, "lineno"):
            continue
        end = (node.end_lineno or node.lineno, node.end_col_offset or 0)
        for kind, index, description in _sites_of(node):
            sites.append(Site(kind, node.lineno, node.col_offset, end, index, description,
                              scopes.get(id(node), "<module>")))
    sites.sort(key=lambda s: (s.line, s.col, s.end, s.kind, s.index))
    return sites


def mutants(source: str) -> list[Mutant]:
    lines = source.splitlines()
    seen: Counter[str] = Counter()
    out = []
    for site in find_sites(source):
        base = f"{site.scope}: {site.description}"
        seen[base] += 1
        name = base if seen[base] == 1 else f"{base} #{seen[base]}"
        out.append(Mutant(name, site, lines[site.line - 1].strip()))
    return out


# -- applying one ---------------------------------------------------------------------------


def _target_node(tree: ast.Module, site: Site) -> ast.AST:
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) == site.line and node.col_offset == site.col and \
                (node.end_lineno, node.end_col_offset) == site.end and \
                any(k == site.kind and i == site.index and d == site.description
                    for k, i, d in _sites_of(node)):
            return node
    raise LookupError(f"mutation site {site} not found")


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, replacement: ast.AST) -> None:
        self.target, self.replacement = target, replacement

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return ast.copy_location(self.replacement, node)
        return super().visit(node)


def mutate(source: str, site: Site) -> ast.Module:
    tree = ast.parse(source)
    node: ast.AST = _target_node(tree, site)
    if site.kind == "compare":
        assert isinstance(node, ast.Compare)
        node.ops[site.index] = _COMPARE_SWAPS[type(node.ops[site.index])]()
    elif site.kind in ("binop", "augassign"):
        assert isinstance(node, ast.BinOp | ast.AugAssign)
        node.op = _BINOP_SWAPS[type(node.op)]()
    elif site.kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif site.kind == "unary":
        assert isinstance(node, ast.UnaryOp)
        node.op = ast.UAdd() if isinstance(node.op, ast.USub) else ast.Not()
        if isinstance(node.op, ast.Not):  # "not x" -> "not not x" is "x" as a bool
            node.operand = ast.UnaryOp(ast.Not(), node.operand)
    elif site.kind in ("bool", "number"):
        assert isinstance(node, ast.Constant)
        node.value = (not node.value) if site.kind == "bool" else node.value + 1
    elif site.kind == "call":
        assert isinstance(node, ast.Call)
        func = node.func
        if isinstance(func, ast.Name):
            func.id = _CALL_SWAPS[func.id]
        else:
            assert isinstance(func, ast.Attribute)
            func.attr = _CALL_SWAPS[func.attr]
    elif site.kind == "remove":
        tree = _Replace(node, ast.Pass()).visit(tree)
    elif site.kind == "loop":
        other = ast.Continue() if isinstance(node, ast.Break) else ast.Break()
        tree = _Replace(node, other).visit(tree)
    return ast.fix_missing_locations(tree)


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module, by its import name, from a mutated syntax tree."""

    def __init__(self, name: str, path: Path, tree: ast.Module) -> None:
        self.name, self.path, self.tree = name, path, tree

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin=str(self.path))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__file__ = str(self.path)
        exec(compile(self.tree, str(self.path), "exec"), module.__dict__)


# -- running the tests ----------------------------------------------------------------------


def _pytest_args(target: Target) -> list[str]:
    return ["-q", "-x", "--no-header", "-p", "no:randomly", "-p", "no:cacheprovider",
            "-W", "ignore", *target.tests]


def run_tests(target: Target, tree: ast.Module | None, limit_s: float) -> tuple[str, float]:
    """'passed', 'failed' or 'timeout' for the target's tests in a forked process that
    imports the module from ``tree`` (the module as it is when ``tree`` is None)."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: its own process group, so a timeout ends its servers too
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        for name in [m for m in sys.modules if m.split(".", 1)[0] in _OURS]:
            del sys.modules[name]
        if tree is not None:
            sys.meta_path.insert(0, _MutantFinder(target.import_name, ROOT / target.path, tree))
        import pytest

        code = pytest.main(_pytest_args(target))
        os._exit(int(code))
    deadline = start + limit_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return ("passed" if code == 0 else "failed"), time.monotonic() - start
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.monotonic() - start
        time.sleep(0.02)


def score(target: Target, *, only: Sequence[str] = (), verbose: bool = True) -> Score:
    source = (ROOT / target.path).read_text()
    found = mutants(source)
    unknown = set(target.equivalent) - {m.name for m in found}
    if unknown:
        raise SystemExit(f"{target.path}: equivalent mutants not found (renamed?): "
                         f"{sorted(unknown)}")
    baseline, seconds = run_tests(target, None, 600)
    if baseline != "passed":
        raise SystemExit(f"{target.path}: its tests fail without any mutation; fix them first "
                         f"(.venv/bin/python -m pytest {' '.join(target.tests)})")
    limit = max(20.0, 4 * seconds)
    result = Score(target.path)
    for mutant in found:
        if only and not any(text in mutant.name for text in only):
            continue
        if mutant.name in target.equivalent:
            result.outcomes.append(Outcome(mutant, "equivalent", 0.0))
            continue
        status, took = run_tests(target, mutate(source, mutant.site), limit)
        outcome = Outcome(mutant, {"passed": "survived", "failed": "killed"}.get(status,
                                                                                 status), took)
        result.outcomes.append(outcome)
        if verbose and outcome.status == "survived":
            print(f"  survived  {mutant.name}  (line {mutant.site.line}: {mutant.snippet})",
                  flush=True)
    return result


def table(scores: Sequence[Score]) -> str:
    rows = ["| module | mutants | killed | survived | equivalent | score |",
            "|---|---:|---:|---:|---:|---:|"]
    for s in scores:
        rows.append(f"| `{s.module}` | {len(s.outcomes)} | {s.count('killed', 'timeout')} | "
                    f"{s.count('survived')} | {s.count('equivalent')} | {s.percent:.1f} % |")
    return "\n".join(rows)


def equivalents_table(targets: Sequence[Target]) -> str:
    rows = ["| module | mutant | why it cannot change behaviour |", "|---|---|---|"]
    for target in targets:
        for name, why in target.equivalent.items():
            rows.append(f"| `{target.path}` | `{name}` | {why} |")
    return "\n".join(rows)


def write_docs(scores: Sequence[Score], day: str) -> None:
    """Put the modules just scored into docs/testing.md's score table (the rows of modules
    not run this time are kept, dated as they were) and rewrite the equivalents table."""
    path = ROOT / "docs" / "testing.md"
    text = path.read_text()
    old = _block(text, "mutation-scores")
    rows = {line.split("`")[1]: line for line in old.splitlines() if line.startswith("| `")}
    for line in table(scores).splitlines()[2:]:
        rows[line.split("`")[1]] = line.replace(" |", f" | {day} |", 1)
    header = ["| module | measured | mutants | killed | survived | equivalent | score |",
              "|---|---|---:|---:|---:|---:|---:|"]
    ordered = [rows[t.path] for t in TARGETS if t.path in rows]
    text = _replace_block(text, "mutation-scores", "\n".join(header + ordered))
    path.write_text(_replace_block(text, "mutation-equivalents", equivalents_table(TARGETS)))


def _block(text: str, marker: str) -> str:
    return text.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker} -->", 1)[0]


def _replace_block(text: str, marker: str, body: str) -> str:
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", default=[],
                        help="only the targets whose path contains this (repeatable)")
    parser.add_argument("--only", action="append", default=[],
                        help="only the mutants whose name contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--json", type=Path, help="also write every outcome there")
    parser.add_argument("--write-docs", action="store_true",
                        help="put the scores of the modules run into docs/testing.md")
    parser.add_argument("--min-score", type=float, default=90.0,
                        help="exit 1 when a module scores below this (default 90)")
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if not args.module or any(m in t.path for m in args.module)]
    if args.list:
        for target in targets:
            for mutant in mutants((ROOT / target.path).read_text()):
                mark = "  (equivalent)" if mutant.name in target.equivalent else ""
                print(f"{target.path}:{mutant.site.line}: {mutant.name}{mark}")
        return 0
    for module in _PRELOAD:
        importlib.import_module(module)
    scores = []
    for target in targets:
        print(f"{target.path}: {' '.join(target.tests)}", flush=True)
        started = time.monotonic()
        scores.append(score(target, only=args.only))
        print(f"  {scores[-1].percent:.1f} % in {time.monotonic() - started:.0f} s", flush=True)
    print(table(scores))
    if args.write_docs:
        if args.only:
            parser.error("--write-docs needs every mutant of a module, not --only")
        write_docs(scores, time.strftime("%Y-%m-%d"))
    if args.json:
        args.json.write_text(json.dumps([
            {"module": s.module, "outcomes": [
                {"name": o.mutant.name, "line": o.mutant.site.line, "status": o.status,
                 "seconds": round(o.seconds, 2)} for o in s.outcomes]} for s in scores],
            indent=1))
    return 0 if all(s.percent >= args.min_score for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
