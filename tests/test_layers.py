"""The library's layers are its folders, and imports run one way (DESIGN.md §2):

    data, core  ->  experiment  ->  analysis  ->  publish  ->  the command line and ``sequnet/__init__``

A module may import from its own layer and the layers before it, never from a later one; and no two modules import
each other, directly or through others. Imports inside functions count too: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sequnet"
RANK = {"data": 0, "core": 0, "experiment": 1, "analysis": 2, "publish": 3}
TOP = 4                                   # sequnet/__init__.py, cli.py, __main__.py


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(module: str) -> int:
    parts = module.split(".")
    return RANK.get(parts[1], TOP) if len(parts) > 1 else TOP


def imports(path: Path) -> set[str]:
    """The sequnet modules ``path`` imports (``from sequnet.x import y`` counts y when y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sequnet")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sequnet"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).is_file() or \
                    (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                found.add(sub if is_module else node.module)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: {m for m in imports(p) if m in MODULES and m != name} for name, p in MODULES.items()}


def test_every_module_sits_in_a_layer_folder():
    loose = [n for n in MODULES if rank(n) == TOP and n not in ("sequnet", "sequnet.cli", "sequnet.__main__")]
    assert not loose, f"modules outside the layer folders {sorted(RANK)}: {loose}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_one_way(name):
    upward = sorted(m for m in GRAPH[name] if rank(m) > rank(name))
    assert not upward, f"{name} (layer {rank(name)}) imports from later layers: {upward}"


def test_no_import_cycles():
    done, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            # a package's __init__ re-exporting its own modules is not a cycle between modules
            if not nxt.startswith(node + ".") and not node.startswith(nxt + "."):
                visit(nxt)
        stack.pop()
        done.add(node)

    for name in sorted(GRAPH):
        visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_is_over_about_400_lines():
    long = {n: len(p.read_text().splitlines()) for n, p in MODULES.items() if len(p.read_text().splitlines()) > 420}
    assert not long, f"modules over about 400 lines: {long}"
