"""The package's layering: a lazy root, and the deprecated names kept as aliases of the new homes.

Truths: ``sys.modules`` of a fresh interpreter (what an import really loaded),
and object identity between an old name and the module it now aliases.
"""

import subprocess
import sys
import warnings

import pytest


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("statement", ["import wgfsim", "import wgfsim.io", "from wgfsim.io import open_run"])
def test_the_root_and_the_readers_load_no_kernel_compiler(statement):
    loaded = _loaded_after(statement)
    assert "numba" not in loaded
    assert "wgfsim.flows" not in loaded


def test_the_root_loads_the_flows_on_first_use():
    assert {"numba", "wgfsim.flows"} <= _loaded_after("import wgfsim; wgfsim.velocity")


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("wgfsim.generator", "wgfsim.methods.generator", "MLPConfig"),
        ("wgfsim.generator.mlp", "wgfsim.methods.generator.mlp", "forward"),
        ("wgfsim.particles", "wgfsim.methods.particles", "SimulationError"),
        ("wgfsim.snapshot", "wgfsim.io.snapshot", "save_field"),
        ("wgfsim.store", "wgfsim.io.writer", "RunStore"),
    ],
)
def test_deprecated_names_warn_and_alias_the_new_module(old, new, name):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    assert getattr(mod, name) is getattr(importlib.import_module(new), name)


# ---------------------------------------------------------------- the import graph

PACKAGE = __import__("pathlib").Path(__file__).resolve().parent.parent / "wgfsim"


def _module_name(path, package) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package=PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level (ast; relative imports resolved).

    ``from P import name`` is an edge to ``P.name`` where that is a module,
    else to ``P``; imports inside functions and classes run on call, not on
    import, and are left out.
    """
    import ast

    modules = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph = {}
    for mod, path in modules.items():
        base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        edges = set()
        stack = list(ast.parse(path.read_text(encoding="utf-8")).body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                src = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                for a in node.names:
                    edges.add(f"{src}.{a.name}" if f"{src}.{a.name}" in modules else src)
            else:
                stack.extend(ast.iter_child_nodes(node))
        graph[mod] = {e for e in edges if e in modules and e != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle's modules."""
    index, low, on, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "wgfsim.scenario.load" in graph["wgfsim.scenario"]  # the walk saw the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path):
    pkg = tmp_path / "wgfsim"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("from . import b\n\ndef f():\n    from .. import c\n")
    (pkg / "sub" / "b.py").write_text("from ..sub.a import f\n")
    (pkg / "c.py").write_text("import wgfsim.sub.b\n")
    graph = import_graph(pkg)
    assert graph["wgfsim.sub.a"] == {"wgfsim.sub.b"}  # the import inside f is no edge
    assert graph["wgfsim.c"] == {"wgfsim.sub.b"}
    assert cycles(graph) == [["wgfsim.sub.a", "wgfsim.sub.b"]]
