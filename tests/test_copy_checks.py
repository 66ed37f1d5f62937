"""What a newcomer met against an independent server (django-oci 0.0.17), played on the
real registries (2.8 and 3.0), with tests/dialect_proxy.py where that server answered
otherwise:

- a crawl the registry refused (no catalog) said "crawl URL: 0 tags in 0.0s" first;
- ``ri.copy`` to another registry HEADed each blob twice;
- a repository whose tags were all deleted dropped out of the summary's count;
- a write answered 201 with a Location naming another digest (the server kept the
  manifest the tag held) passed for done: every write now checks what the registry
  says it stored.
"""

from __future__ import annotations

import hashlib
import io
import json

import pytest

import reginsight as ri
from reginsight._cli import main
from reginsight.present._report import report_data
from tests.dialect_proxy import (
    DialectProxy,
    keeps_tagged_manifest,
    names_stored_digest,
    no_catalog,
)
from tests.images import Pusher, sha256

#: a digest no test stores: what a lying registry names instead of the right one
OTHER = "sha256:" + "0" * 64


def _layer(seed: str, size: int) -> bytes:
    """``size`` bytes of its own for ``seed``: a blob no other test pushes."""
    return hashlib.shake_256(seed.encode()).digest(size)


# ------------------------------------------------------------ a refused crawl


@pytest.mark.parametrize("status", [401, 404, 405])
def test_a_refused_catalog_is_no_crawl_of_zero_tags(any_registry, prefix, capsys, tmp_path,
                                                    status):
    Pusher(any_registry.url).image(f"{prefix}/app", "v1")
    with DialectProxy(any_registry.url, dialects=(no_catalog(status),)) as proxy:
        with ri.Registry(proxy.url) as reg, pytest.raises(ri.CatalogUnavailable):
            ri.crawl(reg, progress=True)  # captured stderr: plain progress lines
        refused = capsys.readouterr().err
        assert main(["report", proxy.url, "-o", str(tmp_path / "report.html")]) == 1
        said = capsys.readouterr().err
        # what a crawl says once done, said only of one that was: a named repository
        with ri.Registry(proxy.url) as reg:
            assert len(ri.crawl(reg, f"{prefix}/app", progress=True).tags) == 1
        crawled = capsys.readouterr().err
    assert "crawl " not in refused and " tags" not in refused
    assert "crawl " not in said and not (tmp_path / "report.html").exists()
    assert said.startswith("reginsight: ") and "catalog" in said
    assert f"crawl {proxy.url}: 1/1 tag" in crawled and " in " in crawled


# ------------------------------------------------------------ one HEAD per blob


def _multi_platform(reg: ri.Registry, repo: str, seed: str) -> tuple[str, set[str]]:
    """An index of two platforms sharing a layer; its digest and every blob digest."""
    shared = reg.upload_blob(repo, _layer(f"{seed}/shared", 3000))
    blobs, children = {shared}, []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux", "created":
                             "2026-01-02T03:04:05Z", "rootfs": {"type": "layers"}}).encode()
        own = _layer(f"{seed}/{arch}", 5000)
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": reg.upload_blob(repo, config), "size": len(config)},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": digest, "size": size} for digest, size in (
                               (shared, 3000), (reg.upload_blob(repo, own), 5000))]}
        blobs |= {doc["config"]["digest"], doc["layers"][1]["digest"]}
        digest = reg.put_manifest(repo, f"{arch}-only", doc)
        children.append({"mediaType": doc["mediaType"], "digest": digest,
                         "size": reg.manifest(repo, digest).size,
                         "platform": {"os": "linux", "architecture": arch}})
    index = reg.put_manifest(repo, "multi", {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children})
    return index, blobs


def _heads(proxy: DialectProxy, blobs: set[str]) -> dict[str, int]:
    return {digest: proxy.count("HEAD", f"/blobs/{digest}") for digest in blobs}


def test_copy_to_another_registry_heads_each_blob_once(any_registry, any_reg, prefix):
    src = f"{prefix}/src"
    index, blobs = _multi_platform(any_reg, src, prefix)
    assert len(blobs) == 5  # a shared layer, two own layers, two configs
    # through the proxy the registry is another one to the client: blobs are streamed
    with DialectProxy(any_registry.url) as proxy, ri.Registry(proxy.url) as dst:
        assert ri.copy(any_reg, f"{src}:multi", dst, f"{prefix}/mirror:multi") == index
        assert _heads(proxy, blobs) == dict.fromkeys(blobs, 1)
        assert proxy.count("PUT", "/blobs/uploads/") == 5  # each blob sent once
        assert proxy.count("POST", "?mount=") == 0
        # again: everything present, one HEAD each, nothing sent
        assert ri.copy(any_reg, f"{src}:multi", dst, f"{prefix}/mirror:multi") == index
        assert _heads(proxy, blobs) == dict.fromkeys(blobs, 2)
        assert proxy.count("PUT", "/blobs/uploads/") == 5
    assert any_reg.manifest(f"{prefix}/mirror", "multi").digest == index
    for digest in blobs:
        assert any_reg.has_blob(f"{prefix}/mirror", digest)


def test_copy_within_a_registry_heads_each_blob_once(any_registry, prefix):
    with DialectProxy(any_registry.url) as proxy, ri.Registry(proxy.url) as reg:
        index, blobs = _multi_platform(reg, f"{prefix}/src", prefix)
        before = _heads(proxy, blobs)
        assert ri.copy(reg, f"{prefix}/src:multi", reg, f"{prefix}/dst:multi") == index
        after = _heads(proxy, blobs)
        assert {digest: after[digest] - before[digest] for digest in blobs} == dict.fromkeys(
            blobs, 1)
        assert proxy.count("POST", "?mount=") == 5  # mounted, none streamed
        assert reg.manifest(f"{prefix}/dst", "multi").digest == index


# ------------------------------------------------------------ a write says what it stored


def _image(reg: ri.Registry, repo: str, seed: str) -> dict:
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers"}, "seed": seed}).encode()
    layer = _layer(seed, 2000)
    return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": reg.upload_blob(repo, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": reg.upload_blob(repo, layer), "size": len(layer)}]}


def _sent(doc: dict) -> str:
    return sha256(json.dumps(doc, indent=3).encode())  # put_manifest's encoding of a dict


def test_copy_to_a_registry_that_kept_the_tagged_manifest_raises(any_registry, any_reg,
                                                                   prefix):
    """django-oci: the tag already names a manifest; the PUT of another one answers 201
    with a Location naming the old one, which stays under the tag."""
    repo = f"{prefix}/app"
    old = any_reg.put_manifest(f"{prefix}/mirror", "v1", _image(any_reg, f"{prefix}/mirror",
                                                                 f"{prefix}/old"))
    new = any_reg.put_manifest(repo, "v1", _image(any_reg, repo, f"{prefix}/new"))
    with DialectProxy(any_registry.url, dialects=(keeps_tagged_manifest(old),)) as proxy, \
            ri.Registry(proxy.url) as dst:
        with pytest.raises(ri.DigestMismatch) as refused:
            ri.copy(any_reg, f"{repo}:v1", dst, f"{prefix}/mirror:v1")
    assert (refused.value.expected, refused.value.actual) == (new, old)
    said = str(refused.value)
    assert f"manifest {prefix}/mirror:v1" in said and "Location" in said
    assert old in said and new in said and "did not store" in said
    assert any_reg.manifest_digest(f"{prefix}/mirror", "v1") == old  # as the error says


@pytest.mark.parametrize(("header", "location"), [(False, True), (True, False), (True, True)],
                         ids=["location", "header", "both"])
def test_a_manifest_put_naming_another_digest_raises(any_registry, any_reg, prefix,
                                                     header, location):
    repo = f"{prefix}/app"
    doc = _image(any_reg, repo, prefix)
    lie = names_stored_digest(OTHER, section="manifests", header=header, location=location)
    with DialectProxy(any_registry.url, dialects=(lie,)) as proxy, \
            ri.Registry(proxy.url) as reg:
        with pytest.raises(ri.DigestMismatch) as refused:
            reg.put_manifest(repo, "v1", doc)
        assert proxy.count("PUT", f"/{repo}/manifests/v1") == 1  # the registry was asked
    assert (refused.value.expected, refused.value.actual) == (_sent(doc), OTHER)


def test_writes_answered_truthfully_pass_the_checks(any_registry, prefix):
    """The control: the real registry's own answers (both headers) pass every check,
    by tag and by digest, blob, chunked blob, mount and manifest alike."""
    repo = f"{prefix}/app"
    with DialectProxy(any_registry.url) as proxy, ri.Registry(proxy.url) as reg:
        doc = _image(reg, repo, prefix)
        assert reg.put_manifest(repo, "v1", doc) == _sent(doc)
        assert reg.put_manifest(repo, _sent(doc), doc) == _sent(doc)
        chunked = _layer(f"{prefix}/chunked", 3000)
        assert reg.upload_blob(repo, io.BytesIO(chunked), chunk_size=1000) == sha256(chunked)
        assert reg.mount_blob(f"{prefix}/other", sha256(chunked), repo)
        assert proxy.count("PATCH") == 3


@pytest.mark.parametrize(("header", "location"), [(False, True), (True, False)],
                         ids=["location", "header"])
def test_a_blob_write_naming_another_digest_raises(any_registry, any_reg, prefix,
                                                   header, location):
    repo = f"{prefix}/blobs"
    small, big = _layer(f"{prefix}/small", 1000), _layer(f"{prefix}/big", 3000)
    any_reg.upload_blob(f"{prefix}/source", big)
    lie = names_stored_digest(OTHER, section="blobs", header=header, location=location)
    with DialectProxy(any_registry.url, dialects=(lie,)) as proxy, \
            ri.Registry(proxy.url) as reg:
        with pytest.raises(ri.DigestMismatch) as one_put:
            reg.upload_blob(repo, small)
        with pytest.raises(ri.DigestMismatch) as chunked:
            reg.upload_blob(repo, io.BytesIO(_layer(f"{prefix}/chunked", 3000)),
                            chunk_size=1000)
        with pytest.raises(ri.DigestMismatch) as mounted:
            reg.mount_blob(repo, sha256(big), f"{prefix}/source")
    assert (one_put.value.expected, one_put.value.actual) == (sha256(small), OTHER)
    assert chunked.value.actual == mounted.value.actual == OTHER


# ------------------------------------------------------------ repositories without tags


def test_a_repository_whose_tags_were_all_deleted_still_counts(any_registry, any_reg,
                                                               prefix, tmp_path):
    pusher = Pusher(any_registry.url)
    for name in ("web", "api", "gone"):
        pusher.image(f"{prefix}/{name}", "v1")
    any_reg.delete_manifest(f"{prefix}/gone", any_reg.manifest_digest(f"{prefix}/gone", "v1"))
    inv = ri.crawl(any_reg, f"{prefix}/*", progress=False)
    assert inv.repositories == tuple(f"{prefix}/{n}" for n in ("api", "gone", "web"))
    assert set(inv.tags["repository"].astype(str)) == {f"{prefix}/web", f"{prefix}/api"}
    summary = ri.storage_summary(inv)
    assert (summary["repositories"], summary["tags"]) == (3, 2)
    # the report's card counts it, and its table of tagless repositories names it
    cards = dict(report_data(inv, plots=False)["cards"])
    assert cards["repositories"] == "3"
    assert list(ri.repositories_without_tags(inv)["repository"]) == [f"{prefix}/gone"]
    # saved and opened out of core: the same figure
    inv.save(tmp_path / "inv")
    with ri.Inventory.open(tmp_path / "inv") as lazy:
        assert ri.storage_summary(lazy)["repositories"] == 3
    # the names tags hold are the count where no crawl recorded what it read
    assert ri.storage_summary(ri.Inventory(
        registry=inv.registry, taken_at=inv.taken_at, **dict(inv.frames())))[
            "repositories"] == 2
