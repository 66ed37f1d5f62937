"""The notebooks run top to bottom against the real registry (nbclient), and are
kept without outputs in git."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.images import Pusher
from tests.supply_chain import SupplyChain

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_the_five_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["cleanup.ipynb", "disk_audit.ipynb",
                                           "quickstart.ipynb", "storage_audit.ipynb",
                                           "supply_chain.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


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
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    # allow_errors is off: a failing cell raises here
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = json.dumps([c.get("outputs", []) for c in notebook.cells])
    assert f"{prefix}/app" in outputs  # it read this test's registry, not something else
