"""scan_storage over S3: the real registry's s3 driver writing into a local S3 server
(moto) on loopback, read back through fsspec/s3fs, checked against the bucket's
objects (boto3) and the real garbage collector run on copies of the storage."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
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


# ------------------------------------------------ the concurrent listing and reads

def _store(s3: S3Server, root: str, **attributes: object):
    from reginsight.inventory._layout import V2
    from reginsight.inventory._scan import open_store

    store = open_store(f"s3://{BUCKET}{root}", s3.storage_options(), V2)
    for name, value in attributes.items():
        setattr(store, name, value)
    return store


def _one_listing(s3: S3Server, root: str) -> object:
    """The same storage through fsspec's generic store: one recursive listing, every
    file read (the independent way the split listing and the skipped reads are
    checked against)."""
    from reginsight.inventory._stores import FsspecStore

    store = _store(s3, root)
    return FsspecStore(store.fs, store.top, store.shown)


def _listed(store) -> set[tuple[object, str, object]]:
    try:
        return {(entry, path, None if entry.kind == "folder" else store.details(handle)[0])
                for entry, path, handle in store.entries()}
    finally:
        store.close()


def _scan(store) -> ri.Inventory:
    from reginsight.inventory._scan import _Scan

    try:
        return _Scan(store, store.shown, progress=False).run()
    finally:
        store.close()


def _same_inventory(left: ri.Inventory, right: ri.Inventory) -> None:
    for (name, frame), (_, other) in zip(left.frames(), right.frames(), strict=True):
        if name in ("tag_history", "uploads"):
            continue  # times and uploads are compared on their own below
        pd.testing.assert_frame_equal(frame.reset_index(drop=True),
                                      other.reset_index(drop=True), obj=name)


@pytest.mark.parametrize("page_keys", [1, 3, 1000])
def test_split_listing_finds_what_one_listing_finds(s3_filled, page_keys):
    """Pages of 1 and 3 keys split every folder of the real registry's tree: the
    concurrent walk must find every file and repository folder one listing finds."""
    s3, _, _ = s3_filled
    split = _store(s3, ROOT, page_keys=page_keys)
    found = _listed(split)
    assert found == _listed(_one_listing(s3, ROOT))
    assert len(found) > 50


@pytest.mark.parametrize("through", ["presigned", "botocore"])
def test_split_scan_equals_the_generic_scan_and_reads_no_matching_link(s3_filled,
                                                                       monkeypatch, through):
    """Through presigned URLs (the fast way), and through botocore's calls (kept for
    configurations a URL cannot carry), the same inventory as the generic store."""
    s3, _, _ = s3_filled
    from reginsight.inventory import _s3http, _s3store

    read: list[str] = []
    in_flight, most = [0], [0]
    real_get = _s3http.PresignedRequests.get

    async def spy_get(self, key, limit):
        read.append(key)
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        try:
            return await real_get(self, key, limit)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(_s3http.PresignedRequests, "get", spy_get)
    if through == "botocore":
        monkeypatch.setattr(_s3http.PresignedRequests, "usable", staticmethod(lambda fs: False))
        real_body = _s3store.S3Store._get

        async def spy_body(self, path, size, limit):
            read.append(path.partition("/")[2])
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            try:
                return await real_body(self, path, size, limit)
            finally:
                in_flight[0] -= 1

        monkeypatch.setattr(_s3store.S3Store, "_get", spy_body)
    inv = _scan(_store(s3, ROOT, page_keys=2))
    reference = _scan(_one_listing(s3, ROOT))
    _same_inventory(inv, reference)  # (uploads: against what was pushed, above)
    # every link's ETag named what it holds: no link was read, only the manifests,
    # configs and upload start times
    assert any("/blobs/" in key for key in read)
    assert not [key for key in read if key.endswith("/link")]
    assert most[0] > 1
    if through == "presigned":  # counted inside the bound (botocore's: waiting ones too)
        assert most[0] <= _s3store.CONCURRENCY


def test_a_link_holding_another_digest_than_its_path_is_read(s3_filled, tmp_path):
    """The registry trusts a link's content, not its path: an ETag that does not match
    the path's digest means the link is read, and what it holds is used."""
    s3, _, _ = s3_filled
    root = "/tampered"
    s3.copy_prefix(BUCKET, ROOT.lstrip("/") + "/", root.lstrip("/") + "/")
    client = s3.client()
    links = sorted(key for key in s3.objects(BUCKET, root.lstrip("/") + "/")
                   if "/_manifests/revisions/" in key or "/current/link" in key)
    revision = next(k for k in links if "/_manifests/revisions/" in k)
    tag = next(k for k in links if k.endswith("/current/link"))
    other = next(k for k in links if "/_manifests/revisions/" in k
                 and k.split("/_manifests/")[0] == tag.split("/_manifests/")[0]
                 and k.split("/")[-2] != client.get_object(
                     Bucket=BUCKET, Key=tag)["Body"].read().decode().split(":")[1])
    other_digest = f"sha256:{other.split('/')[-2]}"
    client.put_object(Bucket=BUCKET, Key=tag, Body=other_digest.encode())
    client.put_object(Bucket=BUCKET, Key=revision, Body=b"sha256:" + b"0" * 64)
    inv = _scan(_store(s3, root))
    _same_inventory(inv, _scan(_one_listing(s3, root)))
    name, tag_name = tag.split("/repositories/")[1].split("/_manifests/tags/")
    assert set(inv.tags.loc[(inv.tags["repository"] == name)
                            & (inv.tags["tag"] == tag_name.split("/")[0]), "digest"]) == {
        other_digest}
    assert (inv.errors["error"].str.contains("not in the storage")).any()


TRICKY = [
    "blobs/sha256/0a/0a{h}/data", "blobs/sha256/0a/0a{h}/stray", "blobs/sha256/ff/ff{h}/data",
    "blobs/sha512/ab/ab{h}{h}/data",
    "repositories/a/_layers/sha256/{h}/link", "repositories/a-b/_layers/sha256/{h}/link",
    "repositories/a.b/_manifests/revisions/sha256/{h}/link", "repositories/a/README",
    "repositories/a/b/_manifests/tags/t.1/current/link",
    "repositories/a/b/_manifests/tags/t-1/index/sha256/{h}/link",
    "repositories/a/b/_manifests/junk", "repositories/a/b/c/d/e/_uploads/u1/startedat",
    "repositories/a/b/c/d/e/_uploads/u1/data", "repositories/z/_manifests/tags/x/junk",
    "repositories/_x/_layers/sha256/{h}/link", "elsewhere/file",
    # keys a listing must carry escaped (EncodingType=url) and give back as they are
    "repositories/sp ace/_layers/sha256/{h}/link", "repositories/plus+sign/x",
    "repositories/\u00fcn\u00ef/_uploads/u/data", "repositories/pct%41/x",
]


@pytest.mark.parametrize("page_keys", [1, 2, 5, 1000])
def test_split_listing_on_names_that_sort_around_the_slash(s3_filled, page_keys):
    """``a-b`` and ``a.b`` sort before ``a/`` and ``a0`` after: folders and files
    interleave in key order, stray files sit beside folders, names nest deep."""
    s3, _, _ = s3_filled
    root = "tricky"
    client = s3.client()
    for number, pattern in enumerate(TRICKY * 3):
        key = f"{root}/docker/registry/v2/" + pattern.format(h=f"{number:02d}" * 31 + "ab")
        client.put_object(Bucket=BUCKET, Key=key, Body=b"sha256:" + b"1" * 64)
    split = _store(s3, f"/{root}", page_keys=page_keys)
    assert _listed(split) == _listed(_one_listing(s3, f"/{root}"))


class _Looping:
    """An S3 whose listing answers the same truncated page again and again."""

    def __init__(self, answer: dict) -> None:
        self.answer, self.calls = answer, 0
        import fsspec.asyn

        self.loop = fsspec.asyn.get_loop()

    async def _call_s3(self, method: str, **params: object) -> dict:
        self.calls += 1
        return self.answer


@pytest.mark.parametrize("answer", [
    {"Contents": [{"Key": "r/docker/registry/v2/blobs/x", "Size": 1}], "IsTruncated": True,
     "NextContinuationToken": "same", "CommonPrefixes": []},
    {"Contents": [], "IsTruncated": True, "NextContinuationToken": "t"},
    {"Contents": [{"Key": "elsewhere/x", "Size": 1}], "IsTruncated": False},
    {"Contents": [{"Key": "r/docker/registry/v2/blobs/x", "Size": 1}], "IsTruncated": True,
     "CommonPrefixes": [{"Prefix": "r/docker/registry/v2/blobs/"}],
     "NextContinuationToken": "t"},
], ids=["same-page", "empty-truncated", "other-prefix", "folder-is-itself"])
def test_a_listing_that_does_not_advance_is_an_error_not_a_loop(answer):
    from reginsight.inventory._s3store import S3Store

    fake = _Looping(answer)
    store = S3Store(fake, "bucket/r/docker/registry/v2", "s3://bucket/r")
    with pytest.raises(ri.InventoryError, match="does not advance"):
        list(store.entries())
    assert fake.calls < 20


@pytest.mark.parametrize("page_keys", [1, 1000])
def test_every_unfinished_upload_is_counted_page_by_page(s3_filled, page_keys):
    """Uploads and their parts come in pages too (a crashed registry leaves thousands)."""
    s3, _, _ = s3_filled
    root, client = "uploads", s3.client()
    expected = {}
    for number in range(3):
        key = f"{root}/docker/registry/v2/repositories/o/r{number}/_uploads/u{number}/data"
        upload = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        for part in range(1, number + 2):  # parts of 5 MiB but the last
            client.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=part,
                               Body=b"x" * (5 * 2**20 if part <= number else 100 + part))
        expected[f"{BUCKET}/{key}"] = number * 5 * 2**20 + 100 + number + 1
    client.put_object(Bucket=BUCKET, Key=f"{root}/docker/registry/v2/blobs/x", Body=b"x")
    elsewhere = client.create_multipart_upload(Bucket=BUCKET, Key="other/data")["UploadId"]
    try:
        store = _store(s3, f"/{root}", page_keys=page_keys)
        try:
            assert store.multipart_sizes() == expected
        finally:
            store.close()
    finally:
        client.abort_multipart_upload(Bucket=BUCKET, Key="other/data", UploadId=elsewhere)


def test_a_missing_bucket_is_said(s3_filled):
    s3, _, _ = s3_filled
    with pytest.raises(ri.InventoryError, match="no such bucket: nosuchbucket"):
        ri.scan_storage("s3://nosuchbucket/storage", storage_options=s3.storage_options())


def test_scan_progress_names_each_phase(s3_filled, capsys):
    s3, _, _ = s3_filled
    ri.scan_storage(f"s3://{BUCKET}{ROOT}", storage_options=s3.storage_options())
    err = capsys.readouterr().err
    for phase in ("list: ", "read manifests: ", "read configs: "):
        assert f"scan s3://{BUCKET}{ROOT}: {phase}" in err, err
