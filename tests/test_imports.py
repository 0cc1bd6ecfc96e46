"""The import graph of the package: no cycles, and imports only go down the layers.

Every ``import``/``from ... import`` of every module is read (module-level and inside
functions; those under ``if TYPE_CHECKING:`` are left out, as they never run). The layers
are those of docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import bitscout

PACKAGE = Path(bitscout.__file__).resolve().parent

#: Package (or top-level module) -> layer; a module may import its own layer's or lower ones.
LAYERS: dict[str, int] = {
    "errors": 0, "_optuna_adapter": 0, "_atomic": 0, "_allocator": 0,
    "config": 1,
    "graph": 2, "quant": 2, "data": 2,
    "space": 3, "models": 3, "training": 3, "experiment": 3,
    "metrics": 4, "strategies": 4,
    "evaluation": 5,
    "study": 6,
    "compare": 7, "report": 7, "export": 7,
    "api": 8,
    "cli": 9, "__main__": 9,
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(rel.parts).removesuffix(".__init__"), path


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported bitscout module, line) for every import that runs."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skipped.update(id(n) for n in ast.walk(sub))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module] if node.module else []
        else:
            continue
        for name in names:
            if name == "bitscout" or name.startswith("bitscout."):
                yield name, node.lineno


def _package_edges() -> dict[str, dict[str, str]]:
    """Importing unit -> imported unit -> one place it happens (``module:line``)."""
    edges: dict[str, dict[str, str]] = {}
    for module, path in _modules():
        src = _unit(module)
        for target, line in _imports(module, path):
            dst = _unit(target)
            if dst not in (src, "bitscout"):
                edges.setdefault(src, {}).setdefault(dst, f"{module}:{line}")
    return edges


def _cycles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                strong(w)
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

    for v in list(edges):
        if v not in index:
            strong(v)
    return out


def test_the_walker_sees_function_level_imports_and_finds_a_cycle() -> None:
    # The checker itself: a function-level import counts, a TYPE_CHECKING one does not.
    edges = _package_edges()
    assert "study" in edges["cli"]  # cli imports study inside its run functions
    assert _cycles({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}, "d": {"a": ""}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_packages() -> None:
    edges = _package_edges()
    cycles = _cycles(edges)
    shown = [
        " -> ".join(c) + " (" + ", ".join(f"{a}->{b} at {edges[a][b]}" for a in c for b in c if b in edges.get(a, {})) + ")"
        for c in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(shown)


def test_every_package_has_a_layer() -> None:
    units = {_unit(m) for m, _ in _modules()} - {"bitscout"}
    assert units <= set(LAYERS), f"add to LAYERS (and docs/ARCHITECTURE.md): {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize("package", sorted(set(LAYERS)))
def test_imports_only_go_down_the_layers(package: str) -> None:
    edges = _package_edges().get(package, {})
    upward = {dst: where for dst, where in edges.items() if LAYERS.get(dst, -1) > LAYERS[package]}
    assert not upward, f"{package} (layer {LAYERS[package]}) imports a higher layer: {upward}"
