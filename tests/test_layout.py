"""The layout shows the design: no import cycle among the modules of one package.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a
cycle hidden that way is still a cycle in the design. Shared helpers live in a
leaf module both sides import (``gantry/ctp/_report.py``, ``gantry/model/_editor.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import gantry

ROOT = Path(gantry.__file__).resolve().parent

# Packages whose cycle is known and not yet broken (see docs/internals.md).
KNOWN: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["gantry", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(here + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != name)
    return out


def intra_package_cycles() -> list[list[str]]:
    """Cycles among sibling modules (the package's ``__init__`` left out)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if path.name == "__init__.py":
            continue
        parent = name.rpartition(".")[0]
        graph[name] = {
            t
            for t in _imports(name, path, modules)
            if t.rpartition(".")[0] == parent and modules[t].name != "__init__.py"
        }
    cycles, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append(stack[stack.index(nxt) :])
            elif state[nxt] == 0:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [])
    return cycles


def test_finder_sees_a_cycle(tmp_path: Path) -> None:
    # the finder itself can fail: it reads relative imports and in-function imports
    assert _imports(
        "gantry.x._a",
        _write(tmp_path / "a.py", "def f():\n    from . import _b\n"),
        {"gantry.x._a": Path(), "gantry.x._b": Path()},
    ) == {"gantry.x._b"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_no_import_cycle_inside_a_package() -> None:
    found = [c for c in intra_package_cycles() if c[0].rpartition(".")[0] not in KNOWN]
    assert found == [], f"import cycles inside a package: {found}"
