"""Mutants of a Python module: where its syntax tree can be changed, and the tree with one
change made (``tools/mutation.py`` runs the tests against them; docs/testing.md).

Operators: a comparison (``<`` to ``<=``, ``==`` to ``!=``, ``in`` to ``not in``, ``is`` to
``is not``), an arithmetic operator, ``and``/``or``, a ``not`` or unary minus removed, a number
plus one, a boolean flipped, ``min``/``max``, ``floor``/``ceil`` or ``any``/``all`` swapped, a
call statement or a ``raise`` removed, ``break``/``continue`` swapped. Not mutated: strings
(messages, regexes), annotations, docstrings, decorators, logging calls, and module-level
tables of facts (a test can only check a fact against a second copy of it).

A mutant's name is ``<scope>: <change>`` (``#n`` from the second such change in the same
scope on), stable while the code around it changes.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Mutant", "Site", "mutants", "mutate"]

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
