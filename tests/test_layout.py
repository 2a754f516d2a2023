"""The package's shape: no import cycle, no stdlib-shadowing module, no module only tests use."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "django_webhooks"

#: Modules nothing in the package imports, because Django, django-q2 or the user loads them:
#: the app config, admin/API/URL modules, task paths stored in broker messages and schedules,
#: management commands, migrations and the public modules users import.
ENTRY_POINTS = {
    "django_webhooks",
    "django_webhooks.apps",
    "django_webhooks.admin",
    "django_webhooks.api.urls",
    "django_webhooks.metrics.urls",
    "django_webhooks.portal.urls",
    "django_webhooks.tasks",
    "django_webhooks.testing",
    "django_webhooks.receiving",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules ``name`` imports (``from . import x`` counts as importing ``x`` only)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
                elif target in known:
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_shadows_the_standard_library():
    shadowing = {name for name in modules() if name.rpartition(".")[2] in sys.stdlib_module_names}
    assert shadowing == set()


def test_every_module_is_used_by_the_package_or_is_an_entry_point():
    graph = import_graph()
    imported = set().union(*graph.values())
    packages = {name for name, path in modules().items() if path.name == "__init__.py"}
    unused = {
        name
        for name in graph
        if name not in imported
        and name not in packages  # loaded with their modules
        and name not in ENTRY_POINTS
        and ".migrations." not in name
        and ".management.commands." not in name
        and not name.endswith((".migrations", ".management", ".management.commands"))
    }
    assert unused == set()
