"""The notebooks run top to bottom against the real registry (nbclient), and are
kept without outputs in git."""

from __future__ import annotations

import ast
import json
import os
import types
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import reginsight as ri
from tests.images import Pusher
from tests.supply_chain import SupplyChain

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_the_six_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["cleanup.ipynb", "disk_audit.ipynb",
                                           "out_of_core.ipynb", "quickstart.ipynb",
                                           "storage_audit.ipynb", "supply_chain.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


#: calls that delete from a registry whatever their arguments
DELETING = frozenset({"delete_tag", "delete_digest", "delete_manifest", "delete_blob", "untag"})


def _code_cells(path: Path) -> list[ast.Module]:
    notebook = nbformat.read(path, as_version=4)
    return [ast.parse(cell.source) for cell in notebook.cells if cell.cell_type == "code"]


def _false_by_default(value: ast.expr) -> bool:
    """True when ``value`` evaluates to exactly False with no environment variable set
    (``False``, ``os.environ.get("X") == "yes"``, ...); anything it cannot evaluate
    that way (other names, calls) is not a guard."""
    environ = types.SimpleNamespace(get=lambda key, default=None: default)
    fake_os = types.SimpleNamespace(environ=environ, getenv=environ.get)
    try:
        got = eval(compile(ast.Expression(value), "<guard>", "eval"),  # noqa: S307
                   {"__builtins__": {}, "os": fake_os})
    except (NameError, AttributeError, TypeError, ValueError, KeyError):
        return False  # it needs more than an empty environment: no guard
    return got is False


def _guards(cells: list[ast.Module]) -> set[str]:
    """Names every binding of which in the notebook is a plain assignment of a value
    that is False by default (a ``for``, ``with ... as``, ``+=``, import or def
    rebinding a name disqualifies it)."""
    values: dict[str, list[ast.expr | None]] = {}
    plain: set[int] = set()  # the Name nodes of NAME = value
    for cell in cells:
        for node in ast.walk(cell):
            if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name)
                                                    for t in node.targets):
                for target in node.targets:
                    values.setdefault(target.id, []).append(node.value)
                    plain.add(id(target))
            elif (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del)
                  and id(node) not in plain):
                values.setdefault(node.id, []).append(None)  # tuples, for, with, +=, ...
            elif isinstance(node, ast.alias | ast.FunctionDef | ast.ClassDef):
                name = node.asname or node.name if isinstance(node, ast.alias) else node.name
                values.setdefault(name.split(".")[0], []).append(None)
    return {name for name, assigned in values.items()
            if all(v is not None and _false_by_default(v) for v in assigned)}


def _deleting_calls(cell: ast.Module) -> list[ast.Call]:
    """Calls that delete: ``dry_run=`` anything but True, or a deleting method."""
    found = []
    for node in ast.walk(cell):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", None))
        live = any(k.arg == "dry_run" and not (isinstance(k.value, ast.Constant)
                                               and k.value.value is True)
                   for k in node.keywords)
        if live or name in DELETING:
            found.append(node)
    return found


def _guarded(cell: ast.Module, call: ast.Call, guards: set[str]) -> bool:
    """Whether ``call`` sits in the body (not the else) of an ``if GUARD:``."""

    def visit(node: ast.AST, inside: bool) -> bool | None:
        if node is call:
            return inside
        for field, value in ast.iter_fields(node):
            children = value if isinstance(value, list) else [value]
            for child in children:
                if not isinstance(child, ast.AST):
                    continue
                guarded = inside or (isinstance(node, ast.If) and field == "body"
                                     and isinstance(node.test, ast.Name)
                                     and node.test.id in guards)
                found = visit(child, guarded)
                if found is not None:
                    return found
        return None

    return bool(visit(cell, False))


def unguarded_deletions(path: Path) -> list[str]:
    """Every deleting call of a notebook that runs without an explicit opt-in."""
    cells = _code_cells(path)
    guards = _guards(cells)
    return [f"{path.name} cell {n}: {ast.unparse(call)}"
            for n, cell in enumerate(cells) for call in _deleting_calls(cell)
            if not _guarded(cell, call, guards)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_never_deletes_unless_asked(path):
    """"Run All" against the default registry must not delete: every deleting call
    sits under ``if NAME:`` where NAME is False unless the user sets it."""
    assert unguarded_deletions(path) == []


def test_the_deletion_check_sees_what_it_must(tmp_path):
    def notebook(*cells: str) -> Path:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        out = tmp_path / f"n{len(list(tmp_path.iterdir()))}.ipynb"
        nbformat.write(nb, out)
        return out

    delete = "result = ri.apply_cleanup(reg, plan, dry_run=False)"
    assert unguarded_deletions(notebook(delete))
    assert unguarded_deletions(notebook("reg.delete_manifest(r, d)"))
    assert unguarded_deletions(notebook("ri.apply_cleanup(reg, plan, dry_run=DRY)"))
    assert unguarded_deletions(notebook("DELETE = True", f"if DELETE:\n    {delete}"))
    assert unguarded_deletions(notebook("DELETE = False", "DELETE = os.environ.get('X')",
                                        f"if DELETE:\n    {delete}"))
    assert unguarded_deletions(notebook("DELETE = False",
                                        f"if DELETE:\n    pass\nelse:\n    {delete}"))
    assert unguarded_deletions(notebook("DELETE = os.environ.get('X', 'yes') == 'yes'",
                                        f"if DELETE:\n    {delete}"))
    assert not unguarded_deletions(notebook("import os\nDELETE = False",
                                            f"if DELETE:\n    {delete}"))
    assert not unguarded_deletions(notebook(
        "DELETE = os.environ.get('REGINSIGHT_DELETE') == 'yes'", f"if DELETE:\n    {delete}"))
    assert unguarded_deletions(notebook("DELETE = False", "for DELETE in [1]:\n    pass",
                                        f"if DELETE:\n    {delete}"))
    assert not unguarded_deletions(notebook("ri.apply_cleanup(reg, plan)",
                                            "ri.apply_cleanup(reg, plan, dry_run=True)"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_against_the_registry(path, registry_server, prefix, tmp_path,
                                                monkeypatch):
    pusher = Pusher(registry_server.url)
    for n, day in enumerate(["2024-01-01", "2024-06-01", "2026-11-20"]):
        pusher.image(f"{prefix}/app", f"1.{n}", layers=(b"base" * 500, bytes([n]) * 300),
                     created=f"{day}T00:00:00Z")
    latest = pusher.image(f"{prefix}/tool", "0.1", created="2023-01-01T00:00:00Z")
    pusher.manifest(f"{prefix}/tool", "latest", latest.raw, latest.media_type)
    for _ in range(2):  # a tag that moved: one untagged manifest for the disk audit
        pusher.image(f"{prefix}/app", "nightly", created="2026-11-21T00:00:00Z")
    chain = SupplyChain(pusher)  # for the supply-chain notebook
    newest = pusher.image(f"{prefix}/app", "1.3", created="2026-11-22T00:00:00Z")
    chain.cosign_signature(f"{prefix}/app", newest.digest)
    chain.spdx_sbom(f"{prefix}/app", newest)
    chain.cosign_signature(f"{prefix}/app", "sha256:" + "0" * 64)  # an orphan
    pusher.close()
    monkeypatch.setenv("REGINSIGHT_REGISTRY", registry_server.url)
    monkeypatch.setenv("REGINSIGHT_STORAGE", str(registry_server.storage))
    monkeypatch.setenv("REGINSIGHT_REPOSITORIES", f"{prefix}/*")
    monkeypatch.setenv("REGINSIGHT_COLLECTOR", "distribution-2")  # Debian's 2.8
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("REGINSIGHT_DELETE", raising=False)
    monkeypatch.setenv("REGINSIGHT_LARGE_ROWS", "300000")  # the out-of-core path, quickly
    # the kernel imports this checkout, whatever (if anything) is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(NOTEBOOKS[0].parent.parent), *filter(None, [os.environ.get("PYTHONPATH")])]))

    def tags() -> dict[str, list[str]]:
        with ri.Registry(registry_server.url) as reg:
            return {repo: reg.tags(repo) for repo in reg.repositories()
                    if repo.startswith(f"{prefix}/")}

    before = tags()
    outputs = _execute(path, tmp_path)
    assert f"{prefix}/app" in outputs  # it read this test's registry, not something else
    assert tags() == before  # Run All deleted nothing
    if path.stem == "disk_audit":  # the collector of the registry it read, named (what
        # it frees; or, once other tests damaged the shared storage, why it cannot say)
        assert "distribution-2: " in outputs and "distribution-3: " not in outputs
        assert "untagged manifests; a plain garbage-collect" in outputs
    if path.stem == "cleanup":  # the delete path, asked for: it deletes and checks itself
        assert "DELETE is off" in outputs and "would delete" in outputs
        monkeypatch.setenv("REGINSIGHT_DELETE", "yes")
        outputs = _execute(path, tmp_path)
        assert "DELETE is off" not in outputs
        assert "<td>deleted</td>" in outputs
        assert "1.0" in before[f"{prefix}/app"] and "1.0" not in tags()[f"{prefix}/app"]


def _execute(path: Path, folder: Path) -> str:
    """Run a notebook top to bottom (a failing cell raises); its outputs as JSON."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return json.dumps([c.get("outputs", []) for c in notebook.cells])
