"""Mutation testing of the modules where a silent bug costs a user money or safety.

``make mutation`` (docs/testing.md). For each target module (tools/mutation_targets.py):
every mutant is the module with one small change to its syntax tree (a comparison, an
operator, a number, a boolean, a call such as ``min``/``max`` swapped, a call or a ``raise``
removed); the module's own tests run against it in a fresh process, and a mutant is
*killed* when they fail (or hang past the time limit). A survivor is a change that no test
notices: a missing test, or an equivalent mutant (listed by name, with the reason, in the
targets file, and left out of the score).

Why our own small script rather than mutmut 3: mutmut copies the sources into
``mutants/`` and imports them from there, which misses ``processors/`` (installed under the
import name ``llmtrace_processors`` by setuptools' package-dir, never importable from a
copy), and it runs its own test selection. Here the mutated tree (:mod:`tools.mutants`) is
compiled in memory and served to the import system under the module's own name, in a
process forked from one that has already imported the libraries, so a mutant costs only
its tests.
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.mutants import Mutant, mutants, mutate  # noqa: E402
from tools.mutation_targets import TARGETS, Target  # noqa: E402

#: Imported once before forking (the tests' shared support pulls in the product and its
#: libraries), so that each mutant's process imports only our own code again.
_PRELOAD = ("pytest", "openai", "anthropic", "jsonschema", "tests.conftest")
#: Our own packages: forgotten in each mutant's process, so that they are imported afresh
#: with the mutant (third-party libraries stay imported).
_OURS = ("llmtrace_otel", "llmtrace_processors", "tests")


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
    rows = ["| module | mutant | why it is left out |", "|---|---|---|"]
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
