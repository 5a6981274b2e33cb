"""The package's layers, checked from the source: no module imports one above it, at module level
or inside a function, and the import graph has no cycle.

Bottom up: shapes, dtypes and grad-mode state -> the backend registry and backends -> devices
(parsed and checked against the registry) -> Tensor (the handle) -> autograd's graph nodes ->
dispatch -> ops -> the backward engine -> nn / optim / data / serialization -> fit and the
package's front door (devtensor/__init__.py) -> the command line, which uses the front door.
A module may import its own layer (other than in a cycle) or any below.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "devtensor"

# module-name prefix -> layer (the longest matching prefix wins)
LAYERS = {
    "devtensor._blas_env": 0, "devtensor._version": 0, "devtensor.dtypes": 0, "devtensor.geometry": 0, "devtensor.determinism": 0,
    "devtensor.bench": 0, "devtensor.autograd.grad_mode": 0, "devtensor.autocast_mode": 0,
    "devtensor.backends": 1,
    "devtensor.device": 2,
    "devtensor.tensor": 3, "devtensor.printing": 3,
    "devtensor.autograd.node": 4,
    "devtensor.dispatch": 5,
    "devtensor.ops": 6, "devtensor.cuda": 6, "devtensor.autograd.function": 6, "devtensor.graph": 6,
    "devtensor.autograd": 7,
    "devtensor.nn": 8, "devtensor.optim": 8, "devtensor.utils": 8, "devtensor.datasets": 8,
    "devtensor.serialization": 8, "devtensor.compiler": 8, "devtensor.distributed": 8, "devtensor.amp": 8,
    "devtensor.testing": 8, "devtensor.distributions": 8,
    "devtensor.fit": 9, "devtensor": 9,
    "devtensor.cli": 10, "devtensor.__main__": 10,
}


def _module_name(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(mod):
    best = None
    for prefix, layer in LAYERS.items():
        if (mod == prefix or mod.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer)
    assert best is not None, f"{mod} has no layer: add it to LAYERS"
    return best[1]


def _imports(path, mod):
    """(imported module, line) for every import in the file, function-level ones included."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("devtensor")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("devtensor"):
                continue
            for a in node.names:  # `from . import x` may name a submodule
                sub = f"{target}.{a.name}"
                out.append((sub if _is_module(sub) else target, node.lineno))
    return out


def _is_module(name):
    p = ROOT.parent.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def _graph():
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        mod = _module_name(path)
        graph[mod] = [(t, line, path) for t, line in _imports(path, mod) if t != mod]
    return graph


def test_no_module_imports_a_layer_above_it():
    bad = []
    for mod, deps in _graph().items():
        for target, line, path in deps:
            if _is_module(target) and _layer(target) > _layer(mod):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {mod} (layer {_layer(mod)}) imports "
                           f"{target} (layer {_layer(target)})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in deps if _is_module(t)} for m, deps in _graph().items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
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
                cycles.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", ["Tensor = None", "_Tensor = None"])
def test_no_names_injected_after_import(name):
    hits = [str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*.py")
            if any(line.split("#")[0].strip() == name for line in p.read_text().splitlines())]
    assert not hits, f"{name!r} placeholders filled in later by another module: {hits}"
