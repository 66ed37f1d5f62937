"""The architecture holds: no import cycle at any depth, the public surface unmoved."""

from __future__ import annotations

import ast
from pathlib import Path

import reginsight as ri

PACKAGE = Path(ri.__file__).parent


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every module of the package this file imports, at any depth (inside functions
    too), except under ``if TYPE_CHECKING:``."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                for alias in child.names:
                    target = f"{base}.{alias.name}"
                    found.add(target if target in known else base)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_at_any_depth():
    graph = import_graph()
    assert len(graph) > 40 and sum(map(len, graph.values())) > 100  # the graph was read
    assert cycles(graph) == []


def test_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["reginsight.registry._digest"] = {"reginsight.registry._client"}
    assert any("reginsight.registry._client" in c and "reginsight.registry._digest" in c
               for c in cycles(graph))


def test_submodules_never_import_the_package_root():
    for name, targets in import_graph().items():
        if name != "reginsight":
            assert "reginsight" not in targets, name


def test_dir_offers_the_lazily_loaded_names():
    names = dir(ri)
    for name in ("crawl", "plot_storage", "explore", "Inventory", "image_created", "Registry"):
        assert name in names
    assert set(ri.__all__) <= set(names)


def test_reginsight_error_is_the_base_and_registry_error_still_catches_all():
    assert ri.RegistryError is ri.ReginsightError
    for error in (ri.InventoryError, ri.CleanupStopped, ri.OtherTagsAffected, ri.TagMoved,
                  ri.SignatureInvalid, ri.PlanError, ri.NotFound):
        assert issubclass(error, ri.RegistryError)
        assert error.__module__ == "reginsight._errors"
    assert ri.schema1.SignatureInvalid is ri.SignatureInvalid


def test_version_has_one_owner():
    from importlib.metadata import version

    from reginsight._version import __version__

    assert ri.__version__ == __version__ == version("reginsight")
