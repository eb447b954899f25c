"""harness.scoring has no import cycle (lazy imports inside functions count too), and each module imports alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import harness

PACKAGE = Path(harness.__file__).parent / "scoring"


def scoring_imports() -> dict[str, set[str]]:
    """{module: the harness.scoring modules it imports anywhere in its source}, module names without the package."""
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    graph = {}
    for name in modules:
        imported = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported |= {node.module} if node.module else {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness.scoring."):
                imported.add(node.module.rpartition(".")[2])
            elif isinstance(node, ast.Import):
                imported |= {alias.name.rpartition(".")[2] for alias in node.names
                             if alias.name.startswith("harness.scoring.")}
        graph[name] = imported & modules - {name}
    return graph


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    """A path of imports from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        name, path = stack.pop()
        for imported in graph[name]:
            if imported == start:
                return path + [start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, path + [imported]))
    return None


def test_no_import_cycle_in_scoring():
    graph = scoring_imports()
    assert graph["ray_executor"] >= {"child_run"} and "scorer" not in graph["ray_executor"]
    for name in graph:
        assert cycle_from(name, graph) is None, " -> ".join(cycle_from(name, graph))


@pytest.mark.parametrize("module", ["child_run", "scorer", "ray_executor"])
def test_module_imports_alone(module):
    done = subprocess.run([sys.executable, "-c", f"import harness.scoring.{module}"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
