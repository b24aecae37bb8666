"""The layout is the architecture (docs/project/layout.md), kept by tests as well as by
``.importlinter``: few modules at the top, none too long to read, and no import circle
between any two modules."""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_i2v"
MAX_TOP_LEVEL_MODULES = 12
MAX_MODULE_LINES = 400


def test_the_top_level_holds_few_modules_beside_its_subpackages() -> None:
    modules = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert {
        "session",
        "verdict",
        "generation",
        "measure",
        "report",
        "ab",
        "gpu_check",
    } <= subpackages


def test_every_subpackage_says_what_it_is_for() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        assert init.read_text(encoding="utf-8").lstrip().startswith('"""'), (
            f"{init} has no docstring"
        )


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the groups of modules that import each other in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))
    return circles


def test_the_circle_finder_finds_a_circle() -> None:
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_two_modules_import_each_other_even_through_others() -> None:
    """Every import counts, also those inside functions and those for type checking only (they
    never run, but a circle of types is still two modules that cannot be read apart)."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter, in the test extra")
    graph = grimp.build_graph("pytest_i2v", exclude_type_checking_imports=False)
    edges = {
        module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules
    }
    assert strongly_connected(edges) == []
