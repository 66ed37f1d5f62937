"""scan_storage over S3: the real registry's s3 driver writing into a local S3 server
(moto) on loopback, read back through fsspec/s3fs, checked against the bucket's
objects (boto3) and the real garbage collector run on copies of the storage."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import reginsight as ri
from tests import storage_scenario as sc
from tests.images import Pusher
from tests.registry_server import RegistryServer, _merge, _yaml, registry_environment
from tests.s3_server import S3Server
from tests.versions import VERSIONS

BUCKET, ROOT = "registry", "/storage"
BLOBS = "storage/docker/registry/v2/blobs/"


@pytest.fixture(scope="module", params=list(VERSIONS))
def version(request: pytest.FixtureRequest) -> str:
    """Each real registry version in turn, with its own s3 driver: "2.8", "3.0"."""
    return request.param


@pytest.fixture(scope="module")
def s3_filled(tmp_path_factory: pytest.TempPathFactory, version: str
              ) -> Iterator[tuple[S3Server, RegistryServer, sc.Scenario]]:
    workdir = tmp_path_factory.mktemp("s3")
    s3 = S3Server(workdir / "moto").start()
    server = None
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        server = sc.server(version, workdir / "registry", overrides={
            "storage": s3.registry_storage(BUCKET, ROOT)}).start()
        pusher = Pusher(server.url)
        try:
            scenario = sc.build(pusher, "s3")
        finally:
            pusher.close()
        server.stop()  # the collector runs on a registry at rest
        yield s3, server, scenario
    finally:
        if server is not None:
            server.stop()
        s3.stop()


@pytest.fixture(scope="module")
def s3_scanned(s3_filled) -> ri.Inventory:
    s3, _, _ = s3_filled
    return ri.scan_storage(f"s3://{BUCKET}{ROOT}", storage_options=s3.storage_options(),
                           progress=False)


def _blob_sizes(s3: S3Server, prefix: str) -> dict[str, int]:
    return {f"{key.split('/')[-4]}:{key.split('/')[-2]}": size
            for key, size in s3.objects(BUCKET, prefix).items() if key.endswith("/data")}


def test_s3_categories_match_what_was_pushed_and_the_bucket(s3_filled, s3_scanned):
    s3, _, scenario = s3_filled
    assert s3_scanned.errors.empty, s3_scanned.errors
    assert s3_scanned.registry == f"s3://{BUCKET}{ROOT}"
    blobs = ri.disk_blobs(s3_scanned)
    for category in ("tagged", "untagged", "unreferenced"):
        assert set(blobs.loc[blobs["category"] == category, "digest"]) == getattr(
            scenario, category), category
    usage = ri.disk_usage(s3_scanned).set_index("category")["bytes"]
    in_bucket = _blob_sizes(s3, BLOBS)
    assert usage[["tagged", "untagged", "unreferenced"]].sum() == sum(in_bucket.values())
    # an unfinished upload is a multipart upload on S3: its parts are counted
    assert usage["uploads"] == scenario.upload_bytes
    assert s3_scanned.uploads["started"].notna().all()


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_s3_gc_preview_equals_the_real_collector(s3_filled, s3_scanned, tmp_path,
                                                 delete_untagged, version):
    s3, server, _ = s3_filled
    copy = f"/gc-{int(delete_untagged)}"
    s3.copy_prefix(BUCKET, ROOT.lstrip("/") + "/", copy.lstrip("/") + "/")
    config = tmp_path / "config.yml"
    config.write_text(_yaml(_merge(server.config(), {
        "storage": {"s3": {"rootdirectory": copy}}})) + "\n")
    prefix = copy.lstrip("/") + "/docker/registry/v2/blobs/"
    before = _blob_sizes(s3, prefix)
    server.garbage_collect(*(["--delete-untagged"] if delete_untagged else []), config=config)
    after = _blob_sizes(s3, prefix)
    freed = {d: s for d, s in before.items() if d not in after}
    preview = ri.gc_preview(s3_scanned, delete_untagged=delete_untagged,
                            collector=sc.collector(version))
    blobs = preview[preview["kind"] != "revision"]
    assert dict(zip(blobs["digest"], blobs["size"], strict=True)) == freed
    # only 2.x --delete-untagged breaks the tagged index
    assert (preview["breaks"] != "").any() == (delete_untagged and version == "2.8")


@contextmanager
def _filling(s3: S3Server, version: str, root: str, tmp_path
             ) -> Iterator[tuple[RegistryServer, Pusher]]:
    """A registry of ``version`` on its own root of the bucket, and a pusher to fill it;
    stopped after, so that its collector runs on a storage at rest."""
    server = sc.server(version, tmp_path / "registry", overrides={
        "storage": s3.registry_storage(BUCKET, root)}).start()
    pusher = Pusher(server.url)
    try:
        yield server, pusher
    finally:
        pusher.close()
        server.stop()


def test_on_s3_a_repository_whose_tags_were_all_removed_has_no_tags_folder(
        s3_filled, version, tmp_path):
    """An emptied folder stays on a filesystem, not on S3: there the tags folder goes
    with the last tag, 2.x --delete-untagged stops on it and 3.x passes it by."""
    s3, _, _ = s3_filled
    root = "/emptied"
    with _filling(s3, version, root, tmp_path) as (server, pusher):
        for _ in range(2):
            latest = pusher.image("o/emptied", "latest", layers=(os.urandom(300),))
        pusher.image("o/kept", "v1", layers=(os.urandom(200),))
        sc.untag_all(pusher, version, latest)
    inv = ri.scan_storage(f"s3://{BUCKET}{root}", storage_options=s3.storage_options(),
                          progress=False)
    folders = set(inv.folders.loc[inv.folders["repository"] == "o/emptied", "folder"])
    assert "_manifests" in folders and "_manifests/tags" not in folders
    prefix = root.lstrip("/") + "/docker/registry/v2/blobs/"
    before = _blob_sizes(s3, prefix)
    collect = subprocess.run([server.binary, "garbage-collect", "--delete-untagged",
                              str(server.config_path)], capture_output=True, text=True,
                             env=registry_environment(), timeout=300)
    freed = {d: s for d, s in before.items() if d not in _blob_sizes(s3, prefix)}
    if version == "2.8":
        with pytest.raises(ri.CollectorWouldStop, match="o/emptied has manifests but no"):
            ri.gc_preview(inv, delete_untagged=True, collector="distribution-2")
        assert collect.returncode != 0 and not freed
        return
    assert collect.returncode == 0, collect.stdout + collect.stderr
    preview = ri.gc_preview(inv, delete_untagged=True, collector="distribution-3")
    assert dict(zip(preview["digest"], preview["size"], strict=True)) == freed
    assert set(preview["reason"]) == {"repository without tags (its revisions stay)"}


def test_on_s3_the_collector_meets_repositories_in_key_order(s3_filled, version, tmp_path):
    """3.x marks a digest once, wherever it meets it first. Its S3 driver walks keys in
    byte order, so ``o/x-y/...`` comes before ``o/x/...`` (a filesystem walk: after):
    the child C that ``o/x`` no longer holds is gone into from ``o/x-y`` first, and
    kept. 2.x deletes the untagged child whatever the order."""
    s3, _, _ = s3_filled
    root = "/order"
    with _filling(s3, version, root, tmp_path) as (server, pusher):
        layer = os.urandom(500)
        for repository in ("o/x", "o/x-y"):
            child = pusher.image(repository, None, layers=(layer,), oci=True)
            pusher.index(repository, "v1", [(child, {"os": "linux", "architecture": "amd64"})])
        response = pusher.http.delete(f"/v2/o/x/manifests/{child.digest}")
        assert response.status_code == 202, response.text
    inv = ri.scan_storage(f"s3://{BUCKET}{root}", storage_options=s3.storage_options(),
                          progress=False)
    preview = ri.gc_preview(inv, delete_untagged=True, collector=sc.collector(version))
    prefix = root.lstrip("/") + "/docker/registry/v2/blobs/"
    before = _blob_sizes(s3, prefix)
    server.garbage_collect("--delete-untagged")
    freed = {d: s for d, s in before.items() if d not in _blob_sizes(s3, prefix)}
    blobs = preview[preview["kind"] != "revision"]
    assert dict(zip(blobs["digest"], blobs["size"], strict=True)) == freed
    lost = {child.config, *child.layers} & set(freed)
    assert bool(lost) == (version == "2.8")
