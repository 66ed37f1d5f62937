"""The read API against the real Distribution registries (2.8 and 3.0), cross-checked
with skopeo."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import httpx
import pytest

import reginsight as ri
from reginsight.registry.protocol import PAGE_SIZE
from reginsight.registry.protocol._paths import query_param
from tests.dialect_proxy import DialectProxy
from tests.images import Pusher, sha256
from tests.skopeo import inspect_raw, list_tags


@pytest.fixture(scope="module")
def pusher(any_registry):
    p = Pusher(any_registry.url)
    yield p
    p.close()


@pytest.fixture(scope="module")
def images(pusher):
    """A Docker v2 image, an OCI image, and an OCI index of two platforms."""
    repo = "read/images"
    amd = pusher.image(repo, "amd64", oci=True)
    arm = pusher.image(repo, "arm64", oci=True, architecture="arm64", variant="v8")
    return {
        "docker": pusher.image(repo, "docker", layers=(b"a" * 1000, b"b" * 3000)),
        "oci": amd,
        "index": pusher.index(repo, "multi", [
            (amd, {"os": "linux", "architecture": "amd64"}),
            (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ]),
    }


def test_catalog_follows_every_page_of_more_than_250_repositories(any_registry, pusher,
                                                                  any_reg):
    config = pusher.blob("catalog/base", b"{}")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": 2},
        "layers": [],
    }).encode()
    wanted = [f"catalog/r{i:03d}" for i in range(260)]
    for repo in wanted:
        # a cross-repository mount keeps this fast; the manifest makes the repository
        response = pusher.http.post(f"/v2/{repo}/blobs/uploads/",
                                    params={"mount": config, "from": "catalog/base"})
        assert response.status_code == 201
        pusher.manifest(repo, "v1", manifest, "application/vnd.oci.image.manifest.v1+json")

    # the registry's own page size (100 on 2.8 and 3.0): three pages or more, relative
    # Links that carry it
    first = httpx.get(f"{any_registry.url}/v2/_catalog")
    assert first.headers["link"].startswith("</v2/_catalog?")
    assert query_param(first.headers["link"].strip("<>").partition(">")[0], "n") == "100"
    assert len(first.json()["repositories"]) == 100

    with DialectProxy(any_registry.url) as proxy, ri.Registry(proxy.url) as reg:
        names = reg.repositories()
    assert set(wanted) <= set(names)
    assert len(names) == len(set(names))
    assert names == sorted(names)  # the registry's lexical order, unbroken across pages
    # its 100 first, then pages of 1000 (its maximum): 2 requests for up to 1,100 names
    sizes = [query_param(path, "n") for _, path in proxy.seen if "/_catalog" in path]
    assert sizes == [None] + [str(PAGE_SIZE)] * -(-(len(names) - 100) // PAGE_SIZE)
    # explicit small pages, and a page size the registry refuses (400
    # PAGINATION_NUMBER_INVALID above its maximum of 1000) retried smaller
    assert any_reg.repositories(page_size=7) == names
    assert any_reg.repositories(page_size=5000) == names


def test_tags_are_complete_and_sorted_and_match_skopeo(any_registry, pusher, any_reg, prefix):
    repo = f"{prefix}/tags"
    image = pusher.image(repo, "zeta")
    for tag in ("alpha", "1.0", "Mid_1", "beta.2"):
        pusher.manifest(repo, tag, image.raw, image.media_type)
    tags = any_reg.tags(repo)
    assert tags == sorted(["zeta", "alpha", "1.0", "Mid_1", "beta.2"])
    assert tags == sorted(list_tags(any_registry.url, repo))
    assert any_reg.tags(repo, page_size=2) == tags  # three pages on 3.0; 2.8 ignores n


@pytest.mark.parametrize("kind", ["docker", "oci", "index"])
def test_manifest_digest_equals_the_stored_manifest_per_skopeo(any_registry, any_reg, images,
                                                               kind):
    reg = any_reg
    pushed = images[kind]
    raw = inspect_raw(any_registry.url, pushed.repository, pushed.reference)
    stored = sha256(raw)
    assert stored == pushed.digest
    assert reg.manifest_digest(pushed.repository, pushed.reference) == stored
    manifest = reg.manifest(pushed.repository, pushed.reference)
    assert manifest.digest == stored
    assert manifest.raw == raw
    assert manifest.media_type == pushed.media_type
    by_digest = reg.manifest(pushed.repository, stored)
    assert by_digest.raw == raw


def test_harness_without_accept_the_registry_serves_something_else(any_registry,
                                                                   registry_version, images):
    """Why Accept matters: the failure modes our client avoids, seen on the real registry."""
    base = any_registry.url + "/v2/read/images/manifests/"
    oci = httpx.get(base + "oci")
    assert oci.status_code == 404 and "MANIFEST_UNKNOWN" in oci.text
    index = httpx.get(base + "multi")
    if registry_version == "3.0":  # 3.0 serves an index to any client
        assert index.status_code == 200
        assert index.headers["docker-content-digest"] == images["index"].digest
    else:
        assert index.status_code == 404


def test_manifest_models(any_reg, images):
    reg = any_reg
    docker = reg.manifest("read/images", "docker")
    assert isinstance(docker, ri.ImageManifest) and docker.kind == "image"
    assert [layer.size for layer in docker.layers] == [1000, 3000]
    assert docker.config.digest == images["docker"].config
    index = reg.manifest("read/images", "multi")
    assert isinstance(index, ri.ImageIndex) and index.kind == "index"
    assert [str(child.platform) for child in index.manifests] == ["linux/amd64",
                                                                 "linux/arm64/v8"]
    assert index.manifests[0].digest == images["oci"].digest


def _real_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def _v2_image(pusher: Pusher, repo: str) -> tuple[dict, str]:
    """A Docker v2 image of one real layer: 2.8 can convert it to schema1."""
    tar = _real_layer()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-01-02T03:04:05Z",
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
        "history": [{"created": "2026-01-02T03:04:05Z", "created_by": "ADD hello"}],
    }).encode()
    layer = gzip.compress(tar, mtime=0)
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                      "digest": pusher.blob(repo, config), "size": len(config)},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                       "digest": pusher.blob(repo, layer), "size": len(layer)}]}
    return doc, pusher.manifest(repo, "v2", json.dumps(doc).encode(), doc["mediaType"])


def test_signed_schema1_from_the_registry_parses_with_the_registry_digest(registry_server,
                                                                          reg, prefix):
    """Registry 2.8 converts a v2 manifest to signed schema1 for an old client; stored
    again under a tag, reginsight reads it back with the digest the registry gives it."""
    pusher = Pusher(registry_server.url)
    repo = f"{prefix}/schema1"
    doc, v2_digest = _v2_image(pusher, repo)
    old_client = pusher.http.get(f"/v2/{repo}/manifests/v2")  # no Accept: schema1 answer
    assert old_client.headers["content-type"].startswith(
        "application/vnd.docker.distribution.manifest.v1")
    converted_digest = old_client.headers["docker-content-digest"]
    assert converted_digest != v2_digest  # the rewrite changes the digest

    assert reg.manifest_digest(repo, "v2") == v2_digest  # our Accept avoids the rewrite
    stored = pusher.manifest(repo, "old", old_client.content,
                             "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert stored == converted_digest
    manifest = reg.manifest(repo, "old")
    assert isinstance(manifest, ri.Schema1Manifest)
    assert manifest.digest == converted_digest != sha256(manifest.raw)  # payload digest
    assert reg.manifest_digest(repo, "old") == converted_digest
    assert [layer.digest for layer in manifest.layers] == [doc["layers"][0]["digest"]]
    assert manifest.image_config["created"] == "2026-01-02T03:04:05Z"
    assert reg.manifest(repo, converted_digest).digest == converted_digest


def test_distribution_3_never_rewrites_to_schema1(registry_v3, prefix):
    """3.0's counterpart: an old client (no Accept) gets the v2 manifest as pushed,
    its digest unchanged; there is no schema1 to read back (a schema1 push is refused:
    test_write_registry)."""
    pusher = Pusher(registry_v3.url)
    repo = f"{prefix}/schema1"
    doc, v2_digest = _v2_image(pusher, repo)
    old_client = pusher.http.get(f"/v2/{repo}/manifests/v2")
    assert old_client.headers["content-type"] == doc["mediaType"]
    assert old_client.headers["docker-content-digest"] == v2_digest == sha256(old_client.content)
    with ri.Registry(registry_v3.url) as reg:
        assert reg.manifest(repo, "v2").digest == v2_digest


def test_blobs(any_reg, images):
    reg = any_reg
    docker = images["docker"]
    layer = docker.layers[1]
    assert reg.has_blob("read/images", layer)
    assert not reg.has_blob("read/images", "sha256:" + "0" * 64)
    assert reg.blob_size("read/images", layer) == 3000
    with reg.download_blob("read/images", layer, chunk_size=512) as stream:
        first = stream.read(10)
        rest = stream.read()
    assert first + rest == b"b" * 3000
    with pytest.raises(ri.NotFound) as caught:
        reg.blob_size("read/images", "sha256:" + "0" * 64)
    assert caught.value.status == 404


def _blob_file(server, digest: str):
    hex_ = digest.split(":", 1)[1]
    return server.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def test_tampered_blob_raises_digest_mismatch_at_eof(any_registry, pusher, any_reg, prefix):
    registry_server, reg = any_registry, any_reg
    repo = f"{prefix}/tamper"
    data = bytes(range(256)) * 64
    digest = pusher.blob(repo, data)
    path = _blob_file(registry_server, digest)
    path.write_bytes(b"X" + data[1:])  # same length, one byte changed on disk
    with reg.download_blob(repo, digest) as stream, pytest.raises(ri.DigestMismatch) as caught:
        stream.read()
    assert caught.value.expected == digest
    assert caught.value.actual == sha256(b"X" + data[1:])


def test_tampered_manifest_by_digest_raises_digest_mismatch(any_registry, pusher, any_reg,
                                                            prefix):
    registry_server, reg = any_registry, any_reg
    repo = f"{prefix}/tamper"
    image = pusher.image(repo, "v1")
    path = _blob_file(registry_server, image.digest)
    path.write_bytes(image.raw.replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    with pytest.raises(ri.DigestMismatch):
        reg.manifest(repo, image.digest)
    with pytest.raises(ri.DigestMismatch):  # by tag: checked against Docker-Content-Digest
        reg.manifest(repo, "v1")


def test_missing_things_are_typed_not_found(any_reg, prefix):
    reg = any_reg
    with pytest.raises(ri.NotFound) as caught:
        reg.manifest(f"{prefix}/nothing", "latest")
    assert caught.value.codes in (("NAME_UNKNOWN",), ("MANIFEST_UNKNOWN",))
    with pytest.raises(ri.NotFound):
        reg.tags(f"{prefix}/nothing")


@pytest.mark.parametrize("bad", ["UPPER/case", "a/../b", "a%2eb", "x?y", "x#y", "a" * 300, ""])
def test_bad_repository_names_fail_before_any_request(reg, bad):
    with pytest.raises(ri.InvalidReference):
        reg.tags(bad)
    with pytest.raises(ri.InvalidReference):
        reg.manifest(bad, "latest")

