"""Each registry version's garbage collector, its own hazards and stops, against the real
binaries: ``gc_preview(..., collector=X)`` names exactly what collector X deletes from the
same tree, and says so when X stops before deleting anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import reginsight as ri
from reginsight import schema1
from tests import storage_scenario as sc
from tests.images import Pushed, Pusher
from tests.registry_server import registry_environment
from tests.versions import VERSIONS

V2 = "docker/registry/v2"


def _collect(version: str, storage: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The real ``garbage-collect`` of that version on a filesystem storage at rest."""
    config = storage.parent / f"gc-{version}.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem: {{rootdirectory: {storage}}}\n"
                      "  delete: {enabled: true}\n")
    return subprocess.run([VERSIONS[version][0], "garbage-collect", *extra, str(config)],
                          capture_output=True, text=True, env=registry_environment(),
                          timeout=120)


def _copy(storage: Path, target: Path, *without: str) -> Path:
    """A copy of ``storage`` less the repositories (or repository folders) named."""
    copy = target / "storage"
    shutil.copytree(storage, copy, symlinks=True)
    for name in without:
        shutil.rmtree(copy / V2 / "repositories" / name)
    return copy


def _assert_preview_is_what_it_deletes(storage: Path, version: str, *extra: str
                                       ) -> ri.Inventory:
    inv = ri.scan_storage(storage, progress=False)
    preview = ri.gc_preview(inv, delete_untagged=bool(extra), collector=sc.collector(version))
    before = sc.blob_bytes(storage)
    result = _collect(version, storage, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    after = sc.blob_bytes(storage)
    blobs = preview[preview["kind"] != "revision"]
    assert dict(zip(blobs["digest"], blobs["size"], strict=True)) == {
        d: s for d, s in before.items() if d not in after}
    inv.attrs = {"preview": preview}  # for the caller's own checks
    return inv


def _assert_it_stops(storage: Path, version: str, *extra: str, words: str) -> None:
    inv = ri.scan_storage(storage, progress=False)
    with pytest.raises(ri.CollectorWouldStop, match=words) as stopped:
        ri.gc_preview(inv, delete_untagged=bool(extra), collector=sc.collector(version))
    assert stopped.value.collector == sc.collector(version)
    before = sc.blob_bytes(storage)
    result = _collect(version, storage, *extra)
    assert result.returncode != 0 and "failed to mark" in result.stdout + result.stderr
    assert sc.blob_bytes(storage) == before  # it stopped before deleting anything


@pytest.fixture(scope="module", params=list(VERSIONS))
def version(request: pytest.FixtureRequest) -> str:
    return request.param


class Tree:
    """What :func:`tree` pushed."""

    bare: list[Pushed]
    cross: dict[str, Pushed]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory, version: str) -> Iterator[tuple[Path, Tree]]:
    """A storage written by that version's registry, at rest:

    - ``o/app``: ``latest`` pushed twice (one untagged image);
    - ``o/emptied``: ``latest`` pushed twice, then the tag removed (``storage_scenario.untag_all``):
      on a filesystem its emptied ``_manifests/tags`` folder stays;
    - ``o/bare``: two images pushed by digest only: no ``_manifests/tags`` folder;
    - ``o/a`` and ``o/b``: the same index ``v1`` of the same child C, whose revision
      ``o/a`` then deleted; ``o/c`` and ``o/d`` the same with another child D, deleted
      from ``o/d``: a repository where the child is no revision comes first, then last.
    """
    server = sc.server(version, tmp_path_factory.mktemp(f"collectors-{version}")).start()
    pusher = Pusher(server.url)
    out = Tree()
    try:
        for repository in ("o/app", "o/emptied"):
            for _ in range(2):
                latest = pusher.image(repository, "latest", layers=(os.urandom(300),))
        sc.untag_all(pusher, version, latest)
        out.bare = [pusher.image("o/bare", None, layers=(os.urandom(400),)) for _ in range(2)]
        out.cross = {}
        for first, last, gone in (("o/a", "o/b", "o/a"), ("o/c", "o/d", "o/d")):
            layer = os.urandom(500)
            for repository in (first, last):
                child = pusher.image(repository, None, layers=(layer,), oci=True)
                pusher.index(repository, "v1", [(child, {"os": "linux",
                                                         "architecture": "amd64"})])
            response = pusher.http.delete(f"/v2/{gone}/manifests/{child.digest}")
            assert response.status_code == 202, response.text
            out.cross[gone] = child
    finally:
        pusher.close()
        server.stop()
    yield server.storage, out


def test_plain_collection_is_the_same_on_both_and_exact(tree, version, tmp_path):
    storage = _copy(tree[0], tmp_path)
    inv = _assert_preview_is_what_it_deletes(storage, version)
    assert inv.attrs["preview"]["breaks"].eq("").all()
    plain = ri.gc_preview(ri.scan_storage(tree[0], progress=False))  # no choice needed
    assert plain.attrs["collector"] == "distribution-2 or distribution-3"


def test_a_repository_pushed_by_digest_only_under_delete_untagged(tree, version, tmp_path):
    storage, pushed = tree
    copy = _copy(storage, tmp_path)
    if version == "2.8":  # 2.x stops: it cannot list the tags of o/bare
        _assert_it_stops(copy, version, "--delete-untagged",
                         words="o/bare has manifests but no _manifests/tags")
        return
    # 3.x passes o/bare by: its blobs are swept, its revision links stay
    inv = _assert_preview_is_what_it_deletes(copy, version, "--delete-untagged")
    preview = inv.attrs["preview"].set_index("digest")
    repository = copy / V2 / "repositories/o/bare/_manifests/revisions/sha256"
    for image in pushed.bare:
        for digest in (image.digest, image.config, *image.layers):
            row = preview.loc[digest]
            assert row["reason"] == "repository without tags (its revisions stay)"
            assert f"o/bare@{image.digest}" in row["breaks"].split(", ")
        assert (repository / image.digest.split(":")[1] / "link").read_text() == image.digest
        assert not (copy / V2 / "blobs/sha256" / image.digest[7:9]
                    / image.digest[7:] / "data").exists()


def test_a_child_marked_first_where_it_is_no_revision_under_delete_untagged(
        tree, version, tmp_path):
    storage, pushed = tree
    copy = _copy(storage, tmp_path, "o/bare")  # else 2.x stops
    inv = _assert_preview_is_what_it_deletes(copy, version, "--delete-untagged")
    # o/emptied has no tag left, but its tags folder stays on a filesystem: 2.x goes on
    folders = inv.folders[inv.folders["repository"] == "o/emptied"]
    assert "_manifests/tags" in set(folders["folder"])
    assert not inv.tags["repository"].eq("o/emptied").any()
    preview = inv.attrs["preview"]
    broken = set(ri.broken_images(preview)["tag"])
    lost = set(preview["digest"])
    c, d = pushed.cross["o/a"], pushed.cross["o/d"]
    # o/a comes first and holds no revision of C: 3.x marks C there without going
    # into it, then passes C by in o/b; its layer goes, and o/b:v1 breaks. D is gone
    # from o/d, which comes after o/c: 3.x keeps D's blobs. 2.x deletes both.
    assert {c.config, *c.layers} <= lost and "o/b:v1" in broken
    if version == "3.0":
        assert not {d.config, *d.layers} & lost and "o/c:v1" not in broken
        reasons = set(preview.loc[preview["digest"].isin(c.layers), "reason"])
        assert reasons == {"child of a tagged index, marked first in another repository"}
    else:
        assert {d.config, *d.layers} <= lost and "o/c:v1" in broken


def test_a_repository_without_layers(tree, version, tmp_path):
    copy = _copy(tree[0], tmp_path, "o/bare", "o/app/_layers")
    if version == "2.8":  # never visited: its manifests mark nothing
        inv = _assert_preview_is_what_it_deletes(copy, version)
        assert set(inv.attrs["preview"]["reason"]) >= {"repository never visited (no _layers)"}
        return
    _assert_it_stops(copy, version, words="o/app has manifests but no _layers")
    with pytest.raises(ri.CollectorsDiffer, match=r"Distribution 3\.x: stops"):
        ri.gc_preview(ri.scan_storage(copy, progress=False))


def _schema1_storage(tmp_path: Path) -> Path:
    """A storage a 2.x registry wrote: ``o/old:v1`` a schema1 image, ``o/new:latest``
    pushed twice."""
    server = sc.server("2.8", tmp_path / "registry").start()
    try:
        with ri.Registry(server.url) as reg:
            layer = os.urandom(300)
            blob = reg.upload_blob("o/old", layer)
            doc = {"schemaVersion": 1, "name": "o/old", "tag": "v1", "architecture": "amd64",
                   "fsLayers": [{"blobSum": blob}],
                   "history": [{"v1Compatibility": json.dumps({"id": "a" * 64})}]}
            reg.put_manifest("o/old", "v1", schema1.sign(doc, schema1.generate_key()),
                             "application/vnd.docker.distribution.manifest.v1+prettyjws")
        pusher = Pusher(server.url)
        try:
            pusher.image("o/new", "latest", layers=(os.urandom(200),))
            pusher.image("o/new", "latest", layers=(os.urandom(200),))
        finally:
            pusher.close()
    finally:
        server.stop()
    return server.storage


def test_distribution_3_stops_on_a_schema1_manifest_it_must_read(tmp_path):
    storage = _schema1_storage(tmp_path)
    # a storage a 2.x registry wrote, collected by 3.x after an upgrade
    for extra in ((), ("--delete-untagged",)):
        _assert_it_stops(_copy(storage, tmp_path / f"v3{len(extra)}"), "3.0", *extra,
                         words="schema1")
        _assert_preview_is_what_it_deletes(_copy(storage, tmp_path / f"v2{len(extra)}"),
                                           "2.8", *extra)


def test_figures_that_depend_on_the_collector_say_so(tmp_path):
    """On a storage 3.x cannot collect (a tagged schema1 manifest), what a cleanup
    frees depends on the version: asked without one, the library refuses to guess, and
    the report gives 2.x's bytes and says 3.x would free nothing."""
    from reginsight.present._report import render_report

    storage = _schema1_storage(tmp_path)
    inv = ri.scan_storage(storage, progress=False)
    rules = {"keep_last": 0, "protect": "^v1$", "now": inv.taken_at}  # keep o/old:v1 only
    plan = ri.plan_cleanup(inv, collector="distribution-2", **rules)
    assert plan.attrs["reclaimable_bytes"] > 0 and plan.attrs["collector"] == "distribution-2"
    with pytest.raises(ri.CollectorsDiffer, match="schema1"):
        ri.plan_cleanup(inv, **rules)
    with pytest.raises(ri.CollectorWouldStop, match="schema1"):
        ri.plan_cleanup(inv, collector="distribution-3", **rules)
    inv.save(tmp_path / "saved")  # out of core: it models no particular collector
    with pytest.raises(ri.InventoryError, match="1 schema1 manifests"):
        ri.reclaimable(ri.Inventory.open(tmp_path / "saved"), plan)
    page = render_report(inv, plots=False, keep_last=0, older_than=None, protect="^v1$")
    assert "as Distribution 2.x&#39;s garbage-collect frees them" in page
    assert "Distribution 3.x&#39;s garbage-collect would stop before deleting anything" in page
