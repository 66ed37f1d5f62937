"""The notebooks run top to bottom (nbclient) on the bundled sample when no registry
is configured, and against a real registry when REGINSIGHT_REGISTRY is set; each from
a folder of its own, with this checkout's reginsight and nothing else of it importable.
They are kept without outputs in git."""

from __future__ import annotations

import ast
import json
import os
import re
import time
import types
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import reginsight as ri
from tests.images import Pusher
from tests.supply_chain import SupplyChain

CHECKOUT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((CHECKOUT / "notebooks").glob("*.ipynb"))
#: what out_of_core may take at its defaults (its kernel's peak resident memory)
OUT_OF_CORE_PEAK = 2 * 10**9


def test_there_are_the_seven_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["cleanup.ipynb", "disk_audit.ipynb",
                                           "out_of_core.ipynb", "quickstart.ipynb",
                                           "storage_audit.ipynb", "supply_chain.ipynb",
                                           "usage.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_configured_in_the_first_code_cell(path):
    """The first code cell says where the notebook reads from, each setting from an
    environment variable; no notebook imports the checkout's benchmarks or tests (it
    would run nowhere else)."""
    cells = _code_cells(path)
    settings = {node.targets[0].id: ast.unparse(node.value) for node in cells[0].body
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    assert settings["REGISTRY"] == "os.environ.get('REGINSIGHT_REGISTRY')"
    if path.stem == "disk_audit":
        assert settings["ROOT"] == "os.environ.get('REGINSIGHT_STORAGE')"
    imported = {alias.name.split(".")[0] for cell in cells for node in ast.walk(cell)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for cell in cells for node in ast.walk(cell)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"benchmarks", "tests"}


def test_the_sample_is_a_fresh_copy_each_time():
    """What a notebook does to its frames stays in that notebook."""
    first = ri.sample()
    assert first.label == "the bundled sample"
    first.tags.loc[0, "tag"] = "changed"
    assert ri.sample().tags["tag"].iloc[0] != "changed"


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


@dataclass(frozen=True)
class Kernel:
    """Where a notebook's kernel runs: ``folder``, its working directory (not
    notebooks/), and ``temp``, its TMPDIR."""

    folder: Path
    temp: Path


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kernel:
    """No REGINSIGHT_* setting, Jupyter's own plot backend, and of this checkout only
    the package importable: a notebook that needs benchmarks/ or tests/, or to be run
    from notebooks/, fails here."""
    for name in [name for name in os.environ if name.startswith("REGINSIGHT_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    site = tmp_path / "site"
    site.mkdir()
    (site / "reginsight").symlink_to(CHECKOUT / "reginsight")  # this checkout's, whatever
    inherited = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if entry and Path(entry).resolve() != CHECKOUT]  # is installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), *inherited]))
    found = Kernel(folder=tmp_path / "work", temp=tmp_path / "tmp")
    found.folder.mkdir()
    found.temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(found.temp))
    return found


@dataclass(frozen=True)
class Run:
    text: str  # every output of every cell, as JSON
    images: int  # outputs that are a picture (a plot)
    peak: int  # the kernel's peak resident memory over the whole run, bytes


#: appended to each notebook run: its kernel's peak resident memory (Linux: KiB)
_PEAK = ("import resource, sys\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss"
         " * (1 if sys.platform == 'darwin' else 1024))")


def _execute(path: Path, kernel: Kernel) -> Run:
    """Run a notebook top to bottom in ``kernel`` (a failing cell raises)."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(_PEAK))
    start = time.monotonic()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(kernel.folder)}}).execute()
    seconds = time.monotonic() - start
    peak = int(notebook.cells.pop().outputs[0]["text"])
    outputs = [cell.get("outputs", []) for cell in notebook.cells]
    images = sum("image/png" in output.get("data", {}) for cell in outputs for output in cell)
    print(f"{path.stem}: {seconds:.1f} s, kernel peak {peak / 2**20:,.0f} MiB")  # for -s
    return Run(json.dumps(outputs), images, peak)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_the_sample(path, kernel):
    """No registry configured: each notebook shows the bundled sample's own figures
    (the disk audit: those of the storage it writes), and writes only where it says."""
    run = _execute(path, kernel)
    sample = ri.sample()
    summary = ri.storage_summary(sample)
    stored = (f"stored {ri.format_bytes(summary['stored_bytes'])}, "
              f"dedup ratio {summary.attrs['dedup_ratio']:.2f}")
    if path.stem not in ("disk_audit", "out_of_core"):
        assert "inventory of the bundled sample" in run.text
    if path.stem == "quickstart":
        assert stored in run.text
        assert f"{len(sample.tags)} tags saved in" in run.text
        assert all(name in run.text for name in sample.tags["repository"].unique())
    if path.stem == "storage_audit":
        assert stored in run.text
        assert run.images >= 4  # storage, layer sharing, sharing matrix, image age
        assert "bundled sample" in (kernel.folder / "audit.html").read_text()
    if path.stem == "supply_chain":
        plan = ri.plan_cleanup(sample, keep_last=1, orphans=True)
        assert (f"{(plan['action'] == 'delete').sum()} of {len(plan)} rows to delete; "
                f"garbage-collect then frees {ri.format_bytes(plan.attrs['reclaimable_bytes'])}"
                ) in run.text
        orphans = plan[plan["reason"].str.startswith("orphaned referrer")]
        assert len(orphans) == 1 and orphans["reason"].iloc[0] in run.text
        assert run.images >= 1
    if path.stem == "cleanup":  # the plan, kept, and what it deletes: nothing here
        plan = ri.plan_cleanup(sample, keep_last=3, older_than="180d",
                               protect=r"^(latest|stable)$", now=sample.taken_at)
        assert (f"{ri.format_bytes(plan.attrs['reclaimable_bytes'])} freed by "
                "garbage-collect") in run.text
        doomed = plan[plan["action"] == "delete"]
        assert len(doomed) and all(f"{repository}@{digest}" in run.text for repository, digest
                                   in doomed[["repository", "digest"]].itertuples(index=False))
        assert "DELETE is off, and the bundled sample is no registry" in run.text
        kept = ri.load_plan(kernel.folder / "plan.csv")
        assert set(kept.loc[kept["action"] == "delete", "digest"]) == set(doomed["digest"])
    if path.stem == "disk_audit":
        # The storage it writes: shop/web:0.9 deleted (a 2 MiB layer, its config and
        # manifest: unreferenced), nightly pushed three times (two untagged images of a
        # 0.5 MiB layer each), a 1 MiB upload, base/os a tagged index of two 1 MiB images
        assert "no storage configured: a made-up one in" in run.text
        assert "1048576" in run.text  # the upload's bytes in disk_usage
        assert ("distribution-2: garbage-collect frees 2.0 MiB; --delete-untagged frees "
                "5.0 MiB and breaks 1 image") in run.text
        assert ("distribution-3: garbage-collect frees 2.0 MiB; --delete-untagged frees "
                "3.0 MiB and breaks 0 images") in run.text
        assert "base/os:2026.10" in run.text  # what 2.x --delete-untagged breaks
        assert "2 untagged manifests; a plain garbage-collect then frees 1.0 MiB more" in run.text
        assert "reginsight cleanup URL --untagged --storage ROOT" in run.text
    if path.stem == "usage":  # the sample's made-up log covers 200 days: every window
        assert "2 sources; 0 malformed lines skipped" in run.text
        for days in (30, 90, 180):
            assert re.search(rf"{days:>3} days: \d+ images not pulled", run.text), days
        assert "days: unknown" not in run.text
        assert re.search(r"[1-9]\d* of \d+ rows to delete; garbage-collect then frees", run.text)
        assert "pulled 20" in run.text  # kept rows say when they were pulled
        assert run.images >= 1  # pulls over time
    if path.stem == "out_of_core":  # at its defaults: a million layer rows
        assert "made up 1,000,000 layer rows" in run.text
        assert "pandas and DuckDB agree on every figure" in run.text
        assert "the bundled sample: the same figures out-of-core as in pandas" in run.text
        assert run.peak < OUT_OF_CORE_PEAK, f"out_of_core peaked at {run.peak:,} bytes"
    assert list(kernel.temp.iterdir()) == [] or path.stem == "quickstart"  # it cleans up


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_against_the_registry(path, kernel, registry_server, prefix,
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
    monkeypatch.setenv("REGINSIGHT_LARGE_ROWS", "300000")  # the out-of-core path, quickly
    # the shared registry logs warnings only: records without a pull (usage says so)
    monkeypatch.setenv("REGINSIGHT_PULLS", str(registry_server.workdir / "registry.log"))

    def tags() -> dict[str, list[str]]:
        with ri.Registry(registry_server.url) as reg:
            return {repo: reg.tags(repo) for repo in reg.repositories()
                    if repo.startswith(f"{prefix}/")}

    before = tags()
    outputs = _execute(path, kernel).text
    assert f"{prefix}/app" in outputs  # it read this test's registry, not the sample
    assert "bundled sample" not in outputs
    assert tags() == before  # Run All deleted nothing
    if path.stem == "disk_audit":  # the collector of the registry it read, named (what
        # it frees; or, once other tests damaged the shared storage, why it cannot say)
        assert "distribution-2: " in outputs and "distribution-3: " not in outputs
        assert "untagged manifests; a plain garbage-collect" in outputs
        assert "made-up" not in outputs
    if path.stem == "cleanup":  # the delete path, asked for: it deletes and checks itself
        assert "DELETE is off" in outputs and "would delete" in outputs
        monkeypatch.setenv("REGINSIGHT_DELETE", "yes")
        outputs = _execute(path, kernel).text
        assert "DELETE is off" not in outputs
        assert "<td>deleted</td>" in outputs
        assert "1.0" in before[f"{prefix}/app"] and "1.0" not in tags()[f"{prefix}/app"]
