"""The import graph of ``vikl/``: no cycles, no private names imported from family modules.

The graph is read from the source with ``ast`` (not by importing), so a cycle that
Python resolves by a late import at the bottom of a module still counts. Both
``import a.b`` / ``from a import b`` at module level and imports inside functions are
edges: a function-level import that closes a cycle hides the same tangle.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "vikl"


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@functools.lru_cache(maxsize=None)
def _modules() -> dict[str, pathlib.Path]:
    # vikl.experiments are scripts on top of the public API (they import `vikl`), not
    # part of the library's graph.
    mods = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    return {m: p for m, p in mods.items() if not m.startswith("vikl.experiments")}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@functools.lru_cache(maxsize=None)  # parsed once per run, not once per parametrized case
def import_edges() -> dict[str, frozenset[tuple[str, str]]]:
    """``{module: {(imported module, name or "")}}`` for imports of vikl modules."""
    mods = _modules()
    edges: dict[str, set[tuple[str, str]]] = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        out = edges.setdefault(name, set())
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "vikl":
                        out.add((alias.name, ""))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node)
                if target.split(".")[0] != "vikl":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    # `from vikl import objectives` imports a module, not a name.
                    out.add((sub, "") if sub in mods else (target, alias.name))
    return {name: frozenset(out) for name, out in edges.items()}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, imported in import_edges().items():
        # vikl/__init__.py re-exports everything; a module importing "vikl" itself
        # is the only way to depend on the package surface, and is counted.
        graph[name] = {m for m, _ in imported if m in mods and m != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_vikl_import_graph_has_no_cycle():
    graph = {m: deps - {"vikl"} for m, deps in _graph().items() if m != "vikl"}
    assert find_cycles(graph) == []


def test_no_private_names_imported_from_family_modules():
    bad = []
    for module, imported in import_edges().items():
        for target, name in imported:
            family_module = target.startswith("vikl._distributions.")
            if family_module and name.startswith("_") and target != module:
                bad.append(f"{module} imports {name} from {target}")
    assert bad == []


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m != "vikl"))
def test_library_modules_do_not_import_the_package_surface(module):
    # Importing `vikl` from inside the library ties every module to all others.
    assert "vikl" not in {m for m, _ in import_edges()[module]}


def test_experiments_install_inside_vikl_only():
    # A top-level `experiments` package in site-packages would shadow users' own.
    text = (PACKAGE.parent / "pyproject.toml").read_text()
    assert 'include = ["vikl*"]' in text


def test_no_function_in_the_library_is_over_80_lines():
    # Long functions were where the fit loop tangled (issue 20); keep them short.
    # The docstring does not count: a public entry point documents every argument.
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                doc = node.body[0] if node.body else None
                if (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
                        and isinstance(doc.value.value, str)):
                    lines -= doc.end_lineno - doc.lineno + 1
                if lines > 80:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert long == []
