"""The package's shape (docs/architecture.md): module-level imports form no cycle, no module
imports another module's private names, and the input layer knows nothing of the learning side
or the CLI. Read from the source (AST), nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "mdxfer"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def _imports(module: str):
    """(line, imported module, imported name or None, at module level) of ``module``."""
    tree = ast.parse(MODULES[module].read_text())

    def walk(node, top):
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            if isinstance(child, ast.ImportFrom) and child.module and not child.level:
                for a in child.names:
                    full = f"{child.module}.{a.name}"
                    yield child.lineno, full if full in MODULES else child.module, a.name, top
            elif isinstance(child, ast.Import):
                for a in child.names:
                    yield child.lineno, a.name, None, top
            yield from walk(child, inner)

    yield from walk(tree, True)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m in MODULES:
        for _, target, _, top in _imports(m):
            owner = _owner(target) if target.startswith("mdxfer") else None
            if top and owner and owner != m:
                graph[m].add(owner)
    return graph


def test_module_level_imports_have_no_cycle():
    graph, state, cycles = _graph(), {}, []
    assert "mdxfer.inputs" in graph["mdxfer.tables"] and len(MODULES) > 50  # the graph is read

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(path[path.index(n) :] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_no_private_name_is_imported_across_modules():
    found = [
        f"{m}:{line} imports {name} from {target}"
        for m in MODULES
        for line, target, name, _ in _imports(m)
        if target.startswith("mdxfer")
        and name
        and name.startswith("_")
        and not name.startswith("__")
    ]
    assert not found, found


def test_the_input_layer_and_the_md_side_know_nothing_of_learning_or_the_cli():
    """``inputs``, ``tables``, ``errors``, ``fileio``, ``molecule``, ``forcefield``, ``md`` and
    ``campaign`` import neither ``mdxfer.learn`` nor ``mdxfer.cli`` (at any level)."""
    lower = (
        "mdxfer.inputs",
        "mdxfer.tables",
        "mdxfer.errors",
        "mdxfer.fileio",
        "mdxfer.db",
        "mdxfer.molecule",
        "mdxfer.forcefield",
        "mdxfer.md",
        "mdxfer.campaign",
    )
    found = [
        f"{m}:{line} imports {target}"
        for m in MODULES
        if m.startswith(lower)
        for line, target, _, _ in _imports(m)
        if target.startswith(("mdxfer.learn", "mdxfer.cli", "mdxfer.al"))
    ]
    assert not found, found
    # nothing imports the CLI but ``python -m mdxfer``
    assert not [
        m
        for m in MODULES
        if not m.startswith(("mdxfer.cli", "mdxfer.__main__"))
        for _, target, _, _ in _imports(m)
        if target.startswith("mdxfer.cli")
    ]
