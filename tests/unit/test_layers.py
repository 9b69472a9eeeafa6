"""The package's layers (docs/ARCHITECTURE.md): imports only point down; no two packages import each other.

Read from the source with :mod:`ast`, imports inside functions included: a lazy import is
still a dependency.  A new top-level module or package must be given a layer here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "every8d"

#: Bottom (0) to top.  A module may import its own layer and the layers below it.
LAYERS: dict[int, set[str]] = {
    0: {"__init__", "errors", "arrow_types", "atomic", "paths", "settings", "phones", "pricing", "optout"},
    1: {"client", "child_server"},
    2: {"warehouse"},
    3: {"campaign", "tracking", "callbacks", "batch_state"},
    4: {"hooks", "operators", "sensors", "triggers", "notifications", "assets", "pipelines", "ui", "plugin"},
    5: {"cli", "sandbox", "__main__", "get_provider_info"},
}
LEVEL = {unit: level for level, units in LAYERS.items() for unit in units}


def _unit(module: str) -> str:
    """``every8d.tracking.sync`` -> ``tracking``; ``every8d`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def import_edges() -> dict[str, set[str]]:
    """Top-level unit -> the other top-level units it imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    targets = [".".join([*base, node.module] if node.module else base)]
                else:
                    targets = [node.module or ""]
                if targets[0] == "every8d":  # ``from every8d import settings``: a module name is a unit
                    targets = [
                        f"every8d.{alias.name}" if _is_module(alias.name) else "every8d"
                        for alias in node.names
                    ]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                inside = target == "every8d" or target.startswith("every8d.")
                if inside and _unit(target) != _unit(module):
                    edges[_unit(module)].add(_unit(target))
    return edges


def test_every_unit_has_a_layer():
    units = {_unit(_module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert sorted(units - LEVEL.keys()) == []


def test_imports_only_point_down():
    upward = sorted(
        (source, target)
        for source, targets in import_edges().items()
        for target in targets
        if LEVEL[target] > LEVEL[source]
    )
    assert upward == []


def test_no_two_packages_depend_on_each_other():
    edges = import_edges()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            unit = todo.pop()
            if unit == goal:
                return True
            if unit not in seen:
                seen.add(unit)
                todo.extend(edges.get(unit, ()))
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})
    assert cycles == []


def test_the_client_and_the_foundation_import_nothing_above_them():
    """The client (no Airflow) depends on the foundation only, so another API version is one package."""
    edges = import_edges()
    assert {LEVEL[target] for target in edges["client"]} <= {0}
    assert all(LEVEL[target] == 0 for unit in LAYERS[0] for target in edges.get(unit, ()))
