"""A damaged or hostile storage tree: errors rows or a typed error, never a crash, and
the scan never writes. Each case damages a copy of a real registry's storage."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import reginsight as ri
from reginsight.inventory._layout import blob_path, classify, link_target
from tests import storage_scenario as sc
from tests.registry_server import REGISTRY_BINARY, registry_environment

V2 = "docker/registry/v2"


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in root.rglob("*")}


def _repo(storage: Path, name: str) -> Path:
    return storage / V2 / "repositories" / "b" / name


def _scan(storage: Path) -> ri.Inventory:
    before = _snapshot(storage)
    inv = ri.scan_storage(storage, progress=False)
    assert _snapshot(storage) == before  # read-only
    return inv


def test_a_root_that_is_not_a_registry_storage(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ri.InventoryError, match="not a registry storage"):
        ri.scan_storage(tmp_path, progress=False)
    with pytest.raises(ri.InventoryError, match="not a registry storage"):
        ri.scan_storage(tmp_path / "missing", progress=False)


@pytest.mark.parametrize("content", [b"", b"sha256:nothex", b"../../../../etc/passwd",
                                     b"\xff\xfe", b"sha256:" + b"a" * 64 + b"\n"])
def test_an_empty_or_garbled_tag_link_is_an_error_row(storage, content):
    (_repo(storage, "app") / "_manifests/tags/latest/current/link").write_bytes(content)
    inv = _scan(storage)
    errors = inv.errors[inv.errors["stage"] == "tag link"]
    assert errors[["repository", "reference"]].astype(str).values.tolist() == [
        ["b/app", "latest"]]
    assert "latest" not in set(inv.tags.loc[inv.tags["repository"] == "b/app", "tag"])
    # the other repository is whole, and the collector is still predictable
    assert set(inv.tags.loc[inv.tags["repository"] == "b/multi", "tag"]) == {"v1", "solo"}
    ri.gc_preview(inv)


def test_a_garbled_revision_link_makes_gc_preview_refuse(storage):
    revisions = _repo(storage, "app") / "_manifests/revisions/sha256"
    link = next(revisions.iterdir()) / "link"
    link.write_bytes(b"garbage")
    inv = _scan(storage)
    assert (inv.errors["stage"] == "revision link").sum() == 1
    assert ri.disk_usage(inv)["bytes"].sum() > 0  # the rest is still accounted
    with pytest.raises(ri.InventoryError, match="cannot predict garbage-collect"):
        ri.gc_preview(inv)


def _real_gc(storage: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    config = storage.parent / "gc.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {storage}}}\n"
                      "  delete: {enabled: true}\n")
    return subprocess.run([REGISTRY_BINARY, "garbage-collect", *extra, str(config)],
                          capture_output=True, text=True, env=registry_environment(),
                          timeout=120)


def test_a_link_to_a_missing_blob_is_skipped_as_the_registry_skips_it(storage):
    missing = "sha256:" + hashlib.sha256(b"never pushed").hexdigest()
    revision = _repo(storage, "app") / "_manifests/revisions/sha256" / missing[7:]
    revision.mkdir(parents=True)
    (revision / "link").write_text(missing)
    inv = _scan(storage)
    row = inv.errors[inv.errors["reference"] == missing]
    assert row["stage"].tolist() == ["revision"] and "not in the storage" in row["error"].iloc[0]
    assert missing not in set(inv.manifests["digest"])
    # the real collector skips it too, and deletes exactly what the preview says
    preview = ri.gc_preview(inv)
    before = sc.blob_bytes(storage)
    assert _real_gc(storage).returncode == 0
    after = sc.blob_bytes(storage)
    assert {d: s for d, s in before.items() if d not in after} == dict(
        zip(preview["digest"], preview["size"], strict=True))


def test_a_corrupt_manifest_blob_is_an_error_row(storage):
    inv = _scan(storage)
    digest = str(inv.tags.loc[inv.tags["tag"] == "solo", "digest"].iloc[0])
    (storage / V2 / blob_path(digest)).write_bytes(b'{"schemaVersion": 2, "layers": [')
    damaged = _scan(storage)
    row = damaged.errors[damaged.errors["reference"] == digest]
    assert row["stage"].tolist() == ["manifest"]
    assert digest not in set(damaged.manifests["digest"])
    with pytest.raises(ri.InventoryError, match="cannot predict"):
        ri.gc_preview(damaged)
    # and the registry's own collector indeed stops, deleting nothing
    before = sc.blob_bytes(storage)
    assert _real_gc(storage).returncode != 0
    assert sc.blob_bytes(storage) == before


def test_a_symbolic_link_out_of_the_root_is_not_followed(storage, tmp_path):
    outside = tmp_path / "outside"
    (outside / "_manifests/tags/secret/current").mkdir(parents=True)
    (outside / "_manifests/tags/secret/current/link").write_text("sha256:" + "b" * 64)
    os.symlink(outside, _repo(storage, "escape"))
    os.symlink(outside / "_manifests/tags/secret",
               _repo(storage, "app") / "_manifests/tags/secret")
    revision = next((_repo(storage, "multi") / "_manifests/revisions/sha256").iterdir())
    (tmp_path / "outside-link").write_bytes((revision / "link").read_bytes())
    (revision / "link").unlink()
    os.symlink(tmp_path / "outside-link", revision / "link")
    inv = _scan(storage)
    refused = inv.errors[inv.errors["stage"] == "path"]
    assert len(refused) == 3 and refused["error"].str.contains("symbolic link").all()
    with pytest.raises(ri.InventoryError, match="cannot predict garbage-collect"):
        ri.gc_preview(inv)
    assert f"sha256:{revision.name}" not in set(
        inv.manifests.loc[inv.manifests["repository"] == "b/multi", "digest"])
    assert "b/escape" not in set(inv.tags["repository"].astype(str))
    assert "secret" not in set(inv.tags["tag"])


def test_the_layout_parser_names_only_what_the_layout_defines():
    hexa = "ab" * 32
    assert classify(f"blobs/sha256/ab/{hexa}/data").digest == f"sha256:{hexa}"
    assert classify(f"blobs/sha256/ab/{hexa}/data/extra") is None
    assert classify("repositories/_manifests/tags/x/current/link") is None
    assert classify(f"repositories/a/b/_layers/sha256/{hexa}/link").repository == "a/b"
    assert classify("repositories/a/_uploads/u1/hashstates/sha256/0") is None
    assert link_target(f"sha256:{hexa}".encode()) == f"sha256:{hexa}"
    assert link_target(b"sha256:" + b"g" * 64) is None


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_a_repository_without_layers_is_never_visited_by_the_collector(storage,
                                                                     delete_untagged):
    shutil.rmtree(_repo(storage, "multi") / "_layers")
    inv = _scan(storage)  # Distribution 2.x (3.x stops there: tests/test_collectors.py)
    preview = ri.gc_preview(inv, delete_untagged=delete_untagged, collector="distribution-2")
    never = preview[preview["reason"] == "repository never visited (no _layers)"]
    assert len(never) > 0 and set(never["breaks"]) >= {"b/multi:solo"}
    before = sc.blob_bytes(storage)
    assert _real_gc(storage, *(["--delete-untagged"] if delete_untagged else [])
                    ).returncode == 0
    after = sc.blob_bytes(storage)
    blobs = preview[preview["kind"] != "revision"]
    assert {d: s for d, s in before.items() if d not in after} == dict(
        zip(blobs["digest"], blobs["size"], strict=True))


def test_the_local_walk_and_the_fsspec_listing_find_the_same_files(scenario_storage):
    import fsspec

    from reginsight.inventory._localstore import LocalStore
    from reginsight.inventory._stores import FsspecStore

    top = str(scenario_storage / V2)
    local = {(entry, path[len(top):]) for entry, path, _ in
             LocalStore(str(scenario_storage), V2).entries()}
    listed = {(entry, path[len(top):]) for entry, path, _ in
              FsspecStore(fsspec.filesystem("file"), top, top).entries()}
    assert local == listed
    assert {entry.kind for entry, _ in local} == {
        "blob", "layer", "revision", "tag", "tag_index", "upload_data", "upload_started",
        "folder"}
    assert {entry.folder for entry, _ in local if entry.kind == "folder"} == {
        "_layers", "_manifests", "_manifests/tags", "_uploads"}
