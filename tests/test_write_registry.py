"""The write half against the real registries (Distribution 2.8 and 3.0), cross-checked
with skopeo."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tracemalloc

import httpx
import pytest

import reginsight as ri
from reginsight import schema1
from tests.images import Pusher, sha256
from tests.skopeo import inspect_raw, skopeo
from tests.test_read_registry import _real_layer
from tests.transports import CountingTransport, DropPatch
from tests.versions import VERSIONS, registry_of, version_of

MiB = 1024 * 1024


def _open_uploads(server, repository: str) -> list[str]:
    """Upload sessions the registry still holds (a cancelled one keeps only hashstates)."""
    root = server.storage / f"docker/registry/v2/repositories/{repository}/_uploads"
    return [p.name for p in root.glob("*") if (p / "startedat").exists()] if root.exists() else []


def _stored(server, repository: str, digest: str) -> bytes:
    return httpx.get(f"{server.url}/v2/{repository}/blobs/{digest}").content


class PatternStream(io.RawIOBase):
    """``size`` pseudo-random bytes, generated as read (nothing held); every 64 KiB
    block differs, so a chunk sent twice or out of place changes the digest."""

    BLOCK = 65536

    def __init__(self, size: int, *, seed: int = 7) -> None:
        self.size, self.seed, self.position = size, seed, 0

    def readable(self) -> bool:
        return True

    def _block(self, number: int) -> bytes:
        return hashlib.shake_128(b"%d:%d" % (self.seed, number)).digest(self.BLOCK)

    def readinto(self, buffer) -> int:
        offset = self.position % self.BLOCK
        n = min(len(buffer), self.size - self.position, self.BLOCK - offset)
        if n <= 0:
            return 0
        buffer[:n] = self._block(self.position // self.BLOCK)[offset:offset + n]
        self.position += n
        return n

    @classmethod
    def digest(cls, size: int) -> str:
        stream, hasher = cls(size), hashlib.sha256()
        while chunk := stream.read(MiB):
            hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()


def test_small_blob_is_one_put_and_skipped_when_present(any_registry, prefix):
    registry_server = any_registry
    transport = CountingTransport()
    repo = f"{prefix}/blobs"
    with ri.Registry(registry_server.url, transport=transport) as reg:
        data = os.urandom(1000)
        digest = reg.upload_blob(repo, data)
        assert digest == sha256(data)
        assert _stored(registry_server, repo, digest) == data
        assert transport.count("PATCH") == 0 and transport.count("PUT") == 1
        assert reg.upload_blob(repo, data) == digest
        assert transport.count("POST") == 1  # second time: HEAD only
        with pytest.raises(ri.DigestMismatch):
            reg.upload_blob(repo, b"other bytes", digest)


def test_stream_goes_in_chunks_with_digest_computed_on_the_way(any_registry, prefix):
    registry_server = any_registry
    transport = CountingTransport()
    repo = f"{prefix}/chunks"
    size = 5 * MiB + 123
    with ri.Registry(registry_server.url, transport=transport) as reg:
        digest = reg.upload_blob(repo, PatternStream(size), chunk_size=MiB)
    assert digest == PatternStream.digest(size)
    assert transport.count("PATCH") == 6
    assert hashlib.sha256(_stored(registry_server, repo, digest)).hexdigest() == digest[7:]


def test_wrong_digest_for_a_stream_cancels_the_upload(any_registry, prefix):
    registry_server = any_registry
    repo = f"{prefix}/wrong"
    with ri.Registry(registry_server.url) as reg, pytest.raises(ri.DigestMismatch):
        reg.upload_blob(repo, PatternStream(3 * MiB), "sha256:" + "0" * 64, chunk_size=MiB)
    assert _open_uploads(registry_server, repo) == []


def test_upload_resumes_from_the_registry_range_after_a_dropped_patch(any_registry, prefix):
    transport = DropPatch(2, delivered=False)
    repo = f"{prefix}/resume"
    size = 4 * MiB
    with ri.Registry(any_registry.url, transport=transport) as reg:
        digest = reg.upload_blob(repo, PatternStream(size), chunk_size=MiB)
    assert digest == PatternStream.digest(size)
    # the upload status (GET) gave the offset; the lost chunk went again, nothing else
    assert transport.count("GET", "/uploads/") == 1
    assert transport.count("PATCH") == 5 and transport.count("PATCH", "(dropped)") == 1


def test_a_patch_refused_at_connect_is_simply_sent_again(registry_server, prefix):
    """Not delivered for sure (connect failed): the transport retries it, no status GET."""
    transport = DropPatch(2, delivered=False, error=httpx.ConnectError)
    with ri.Registry(registry_server.url, transport=transport,
                     retry=ri.RetryPolicy(base=0.01)) as reg:
        digest = reg.upload_blob(f"{prefix}/connect", PatternStream(3 * MiB), chunk_size=MiB)
    assert digest == PatternStream.digest(3 * MiB)
    assert transport.count("GET", "/uploads/") == 0 and reg.retries == 1


def test_a_lost_answer_registry_28_cannot_resume_is_a_typed_error(registry_server, prefix):
    """2.8 signs the offset into _state: once the answer to a PATCH that landed is lost,
    the session can be neither resumed nor cancelled (the stale _state is refused);
    the error is typed and the cancel is tried. 2.8's upload purging removes it later."""
    transport = DropPatch(2, delivered=True)
    repo = f"{prefix}/lost"
    with ri.Registry(registry_server.url, transport=transport) as reg, \
            pytest.raises(ri.RegistryUnreachable, match="connection reset"):
        reg.upload_blob(repo, PatternStream(4 * MiB), chunk_size=MiB)
    assert transport.count("DELETE", "/uploads/") == 1
    assert transport.count("GET", "/uploads/") == 1  # the status asked, and refused


def test_a_lost_answer_distribution_3_resumes(registry_v3, prefix):
    """3.0's counterpart: the PATCH landed, its answer was lost; the upload status
    gives the offset and the upload goes on from there, each chunk sent once more at
    most (the one whose answer was lost is not: the registry has it)."""
    transport = DropPatch(2, delivered=True)
    with ri.Registry(registry_v3.url, transport=transport) as reg:
        digest = reg.upload_blob(f"{prefix}/lost", PatternStream(4 * MiB), chunk_size=MiB)
        assert reg.blob_size(f"{prefix}/lost", digest) == 4 * MiB
    assert digest == PatternStream.digest(4 * MiB)
    assert transport.count("GET", "/uploads/") == 1 and transport.count("PATCH") == 4
    assert transport.count("DELETE", "/uploads/") == 0


def test_200_mb_blob_is_pushed_in_chunks_with_flat_memory(registry_server, prefix):
    size = 200 * MiB
    repo = f"{prefix}/big"
    with ri.Registry(registry_server.url) as reg:
        tracemalloc.start()
        try:
            digest = reg.upload_blob(repo, PatternStream(size))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert reg.blob_size(repo, digest) == size
    assert digest == PatternStream.digest(size)
    print(f"peak traced memory for a 200 MiB upload: {peak / MiB:.1f} MiB")
    assert peak < 40 * MiB  # 8 MiB chunks; the blob is 200 MiB


def test_mount_and_the_202_fallback_is_cancelled(any_registry, any_reg, prefix):
    registry_server, reg = any_registry, any_reg
    data = os.urandom(500)
    digest = reg.upload_blob(f"{prefix}/a", data)
    assert reg.mount_blob(f"{prefix}/b", digest, f"{prefix}/a") is True
    assert reg.has_blob(f"{prefix}/b", digest)
    missing = "sha256:" + "ab" * 32
    assert reg.mount_blob(f"{prefix}/c", missing, f"{prefix}/a") is False
    assert _open_uploads(registry_server, f"{prefix}/c") == []


def _image_doc(reg, repo, *, oci: bool, layers=(b"l1" * 300,), arch="amd64"):
    config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": []}}).encode()
    prefix = "application/vnd.oci.image" if oci else "application/vnd.docker"
    doc = {
        "schemaVersion": 2,
        "mediaType": (f"{prefix}.manifest.v1+json" if oci else
                      "application/vnd.docker.distribution.manifest.v2+json"),
        "config": {"mediaType": (f"{prefix}.config.v1+json" if oci else
                                 "application/vnd.docker.container.image.v1+json"),
                   "digest": reg.upload_blob(repo, config), "size": len(config)},
        "layers": [{"mediaType": (f"{prefix}.layer.v1.tar+gzip" if oci else
                                  "application/vnd.docker.image.rootfs.diff.tar.gzip"),
                    "digest": reg.upload_blob(repo, layer), "size": len(layer)}
                   for layer in layers],
    }
    return doc


@pytest.mark.parametrize("oci", [True, False])
def test_put_manifest_and_index_from_dict_bytes_and_model(any_registry, any_reg, prefix, oci):
    registry_server, reg = any_registry, any_reg
    repo = f"{prefix}/put"
    amd = _image_doc(reg, repo, oci=oci)
    arm = _image_doc(reg, repo, oci=oci, layers=(b"arm" * 100,), arch="arm64")
    amd_digest = reg.put_manifest(repo, "amd", amd)                     # dict
    arm_raw = json.dumps(arm).encode()
    arm_digest = reg.put_manifest(repo, sha256(arm_raw), arm_raw)      # bytes, by digest
    assert arm_digest == sha256(arm_raw)
    index_type = ("application/vnd.oci.image.index.v1+json" if oci else
                  "application/vnd.docker.distribution.manifest.list.v2+json")
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": amd["mediaType"], "digest": amd_digest,
         "size": len(reg.manifest(repo, amd_digest).raw),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": arm["mediaType"], "digest": arm_digest, "size": len(arm_raw),
         "platform": {"os": "linux", "architecture": "arm64"}},
    ]}
    index_digest = reg.put_manifest(repo, "multi", index)
    model = reg.manifest(repo, "multi")
    assert reg.put_manifest(repo, "again", model) == index_digest      # model
    for tag, digest in (("amd", amd_digest), ("multi", index_digest), ("again", index_digest)):
        assert sha256(inspect_raw(registry_server.url, repo, tag)) == digest
    served = httpx.get(f"{registry_server.url}/v2/{repo}/manifests/multi",
                       headers={"Accept": index_type})
    assert served.headers["content-type"] == index_type


def test_put_manifest_refuses_contradictions_before_sending(reg, prefix):
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": []}
    with pytest.raises(ri.ManifestInvalid, match="contradicts"):
        reg.put_manifest(f"{prefix}/x", "t",
                         doc, "application/vnd.docker.distribution.manifest.v2+json")
    with pytest.raises(ri.DigestMismatch):
        reg.put_manifest(f"{prefix}/x", "sha256:" + "1" * 64, doc)
    with pytest.raises(ri.ManifestInvalid):
        reg.put_manifest(f"{prefix}/x", "t", b"not json")


def _schema1_doc(reg, repo, tag):
    layer = _real_layer()
    blob = reg.upload_blob(repo, layer)
    return {"schemaVersion": 1, "name": repo, "tag": tag, "architecture": "amd64",
            "fsLayers": [{"blobSum": blob}],
            "history": [{"v1Compatibility": json.dumps({
                "id": hashlib.sha256(b"x").hexdigest(), "created": "2026-01-02T03:04:05Z",
                "os": "linux", "architecture": "amd64"})}]}


def test_signed_schema1_pushed_by_reginsight_is_accepted_and_read_by_skopeo(
        registry_server, reg, prefix, tmp_path):
    repo = f"{prefix}/schema1"
    key = schema1.generate_key()
    signed = schema1.sign(_schema1_doc(reg, repo, "v1"), key)
    assert [schema1.key_id(k) for k in schema1.verify(signed)] == [schema1.key_id(key)]
    digest = reg.put_manifest(repo, "v1", signed,
                              "application/vnd.docker.distribution.manifest.v1+prettyjws")
    raw = inspect_raw(registry_server.url, repo, "v1")
    # 2.8 stores the signed payload and serves it signed by its own key: the payload,
    # and so the digest, are ours
    assert ri.parse_manifest(raw).digest == digest == ri.parse_manifest(signed).digest
    assert schema1.verify(raw)
    host = registry_server.url.split("://")[1]
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{host}/{repo}:v1").stdout)
    assert info["Digest"] == digest
    assert info["Architecture"] == "amd64"
    manifest = reg.manifest(repo, "v1")
    assert isinstance(manifest, ri.Schema1Manifest) and manifest.digest == digest
    # keys round-trip through PEM and libtrust JWK, keeping the key ID
    for fmt in ("pem", "jwk"):
        path = schema1.save_key(key, tmp_path / f"key.{fmt}", format=fmt)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert schema1.key_id(schema1.load_key(path)) == schema1.key_id(key)


def test_distribution_3_refuses_a_schema1_push_saying_it_dropped_schema1(registry_v3,
                                                                          prefix):
    """3.0 knows no schema1 type (400 MANIFEST_INVALID, "unsupported manifest media
    type"): the push fails typed, saying so, under either schema1 type; nothing stored."""
    repo = f"{prefix}/schema1"
    with ri.Registry(registry_v3.url) as reg:
        signed = schema1.sign(_schema1_doc(reg, repo, "v1"), schema1.generate_key())
        for media_type in ("application/vnd.docker.distribution.manifest.v1+prettyjws",
                           "application/vnd.docker.distribution.manifest.v1+json"):
            with pytest.raises(ri.UnsupportedOperation) as caught:
                reg.put_manifest(repo, "v1", signed, media_type)
            refused = caught.value
            assert refused.status == 400 and refused.codes == ("MANIFEST_INVALID",)
            assert "Distribution 3" in str(refused) and "dropped schema1" in str(refused)
            assert "skopeo copy --format v2s2" in str(refused)
        with pytest.raises(ri.NotFound):
            reg.manifest(repo, "v1")
        # a bad manifest of a type it knows stays what it is: no word of schema1
        with pytest.raises(ri.ResponseError) as bad:
            reg.put_manifest(repo, "v2", _image_doc(reg, repo, oci=True) | {
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": "sha256:" + "0" * 64, "size": 1}]})
        assert not isinstance(bad.value, ri.UnsupportedOperation)
        assert bad.value.codes == ("MANIFEST_BLOB_UNKNOWN",)
        assert "dropped schema1" not in str(bad.value)


def test_tampered_schema1_is_refused_by_verify_and_by_the_registry(reg, prefix):
    repo = f"{prefix}/schema1-bad"
    signed = schema1.sign(_schema1_doc(reg, repo, "v1"), schema1.generate_key())
    tampered = signed.replace(b'"architecture": "amd64"', b'"architecture": "arm64"', 1)
    with pytest.raises(schema1.SignatureInvalid):
        schema1.verify(tampered)
    with pytest.raises(ri.ResponseError) as caught:
        reg.put_manifest(repo, "v1", tampered,
                         "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert "MANIFEST_UNVERIFIED" in caught.value.codes


def test_verify_accepts_schema1_made_by_skopeo(registry_server, prefix):
    """Interop: skopeo (containers/image) converts to v2s1 and signs with its own key."""
    repo = f"{prefix}/v2s1"
    pusher = Pusher(registry_server.url)
    tar = _real_layer()
    import gzip

    layer = gzip.compress(tar, mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "created": "2026-01-02T03:04:05Z",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
                         "history": [{"created": "2026-01-02T03:04:05Z",
                                      "created_by": "ADD hello"}]}).encode()
    doc = {"schemaVersion": 2,
           "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                      "digest": pusher.blob(repo, config), "size": len(config)},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                       "digest": pusher.blob(repo, layer), "size": len(layer)}]}
    pusher.manifest(repo, "v2", json.dumps(doc).encode(), doc["mediaType"])
    host = registry_server.url.split("://")[1]
    skopeo("copy", "--format", "v2s1", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{host}/{repo}:v2", f"docker://{host}/{repo}:v1")
    raw = inspect_raw(registry_server.url, repo, "v1")
    assert json.loads(raw)["schemaVersion"] == 1
    keys = schema1.verify(raw)
    kids = [sig["header"]["jwk"]["kid"] for sig in json.loads(raw)["signatures"]]
    assert [schema1.key_id(k) for k in keys] == kids  # libtrust's key ID, computed here


def test_delete_manifest_and_tag_deletion_that_never_takes_other_tags(any_reg,
                                                                      registry_version, prefix):
    reg = any_reg
    repo = f"{prefix}/del"
    doc = _image_doc(reg, repo, oci=True)
    digest = reg.put_manifest(repo, "keep", doc)
    reg.put_manifest(repo, "drop", doc)
    other = reg.put_manifest(repo, "solo", _image_doc(reg, repo, oci=True, layers=(b"z",)))
    assert ri.tags_pointing_at(reg, repo, digest) == ["drop", "keep"]
    with pytest.raises(ri.TagMoved):
        ri.delete_tag(reg, repo, "solo", expected_digest=digest)
    if registry_version == "3.0":  # the OCI tag DELETE: only that tag goes
        done = ri.delete_tag(reg, repo, "drop")
        assert (done.removed, done.method, done.digest) == (("drop",), "tag", digest)
        assert reg.tags(repo) == ["keep", "solo"]
        assert reg.manifest_digest(repo, digest) == digest  # the manifest stays
        reg.untag(repo, "keep")
        assert reg.tags(repo) == ["solo"] and reg.manifest_digest(repo, digest) == digest
        reg.delete_manifest(repo, digest)
    else:
        with pytest.raises(ri.UnsupportedOperation):  # 2.8: no OCI tag DELETE
            reg.untag(repo, "drop")
        with pytest.raises(ri.OtherTagsAffected) as caught:
            ri.delete_tag(reg, repo, "drop")
        assert caught.value.tags == ("keep",)
        assert reg.tags(repo) == ["drop", "keep", "solo"]  # nothing was deleted
        done = ri.delete_tag(reg, repo, "solo")
        assert (done.removed, done.method, done.digest) == (("solo",), "digest", other)
        done = ri.delete_tag(reg, repo, "drop", delete_other_tags=True)
        assert done.removed == ("drop", "keep")
    with pytest.raises(ri.NotFound):
        reg.manifest(repo, digest)
    with pytest.raises(ri.InvalidReference, match="delete_tag"):
        reg.delete_manifest(repo, "keep")


@pytest.fixture(scope="module", params=list(VERSIONS))
def no_delete_registry(request, tmp_path_factory):
    """A registry of each version with deletion disabled."""
    server = registry_of(request.param, tmp_path_factory.mktemp("nodelete"),
                         storage={"delete": {"enabled": False}}).start()
    yield server
    server.stop()


def test_deletion_disabled_is_405_and_stops(no_delete_registry):
    """2.8 refuses both DELETEs (405); 3.0 refuses the one by digest, yet its tag
    DELETE still removes the tag (v3.0.0 gates only manifest deletion on
    storage.delete.enabled), the manifest kept."""
    transport = CountingTransport()
    v3 = version_of(no_delete_registry) == "3.0"
    with ri.Registry(no_delete_registry.url, transport=transport) as reg:
        digest = reg.put_manifest("app", "v1", _image_doc(reg, "app", oci=True))
        with pytest.raises(ri.UnsupportedOperation) as caught:
            reg.delete_manifest("app", digest)
        assert caught.value.status == 405
        before = len(transport.sent)
        if v3:
            reg.put_manifest("app", "v2", reg.manifest("app", digest))
            done = ri.delete_tag(reg, "app", "v1")
            assert (done.removed, done.method) == (("v1",), "tag")
            assert reg.tags("app") == ["v2"] and reg.manifest_digest("app", digest) == digest
            return
        with pytest.raises(ri.UnsupportedOperation):
            ri.delete_tag(reg, "app", "v1")
        # the OCI spec lets a registry refuse only the tag DELETE with 405: the
        # checked DELETE by digest follows, and its 405 is the answer; only reads between
        sent = transport.sent[before:]
        assert sent[:2] == [("HEAD", "/v2/app/manifests/v1"), ("DELETE", "/v2/app/manifests/v1")]
        assert sent[-1] == ("DELETE", f"/v2/app/manifests/{digest}")
        assert {method for method, _ in sent[2:-1]} <= {"GET", "HEAD"}
        assert reg.tags("app") == ["v1"]


def test_copy_within_a_registry_mounts_and_is_idempotent(any_registry, prefix):
    registry_server = any_registry
    transport = CountingTransport()
    with ri.Registry(registry_server.url, transport=transport) as reg:
        src = f"{prefix}/src"
        amd = reg.put_manifest(src, "amd", _image_doc(reg, src, oci=True))
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": amd, "size": reg.manifest(src, amd).size,
                                "platform": {"os": "linux", "architecture": "amd64"}}]}
        reg.put_manifest(src, "multi", index)
        before = len(transport.sent)
        digest = ri.copy(reg, f"{src}:multi", reg, f"{prefix}/dst:copied")
        copied = transport.sent[before:]
        assert sum(1 for m, p in copied if m == "POST" and "/dst/" in p) == 2  # 2 mounts
        assert not any(m in ("PATCH",) for m, _ in copied)
        assert sha256(inspect_raw(registry_server.url, f"{prefix}/dst", "copied")) == digest
        before = len(transport.sent)
        assert ri.copy(reg, f"{src}:multi", reg, f"{prefix}/dst:copied") == digest
        assert not any(m == "POST" for m, _ in transport.sent[before:])


def test_copy_between_registries_streams_blobs(registry_server, registry_v3, prefix):
    """From 2.8 to 3.0: every blob streamed across, the manifest byte for byte."""
    with ri.Registry(registry_server.url) as src, ri.Registry(registry_v3.url) as dst:
        repo, mirror = f"{prefix}/x", f"{prefix}/mirror/x"
        digest = src.put_manifest(repo, "v1", _image_doc(src, repo, oci=False,
                                                         layers=(os.urandom(20 * MiB),)))
        assert ri.copy(src, f"{repo}:v1", dst, f"{mirror}:v1") == digest
        assert inspect_raw(registry_v3.url, mirror, "v1") == inspect_raw(
            registry_server.url, repo, "v1")
        layer = src.manifest(repo, "v1").layers[0].digest
        assert dst.blob_size(mirror, layer) == 20 * MiB
        assert ri.copy(src, f"{repo}@{digest}", dst, f"{mirror}:v1") == digest
