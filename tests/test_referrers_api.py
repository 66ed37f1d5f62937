"""The OCI 1.1 referrers API in the crawl. Distribution 2.8 does not serve it, so a
fake registry over httpx.MockTransport answers it in the response shape of the
distribution spec (an image index of descriptors with artifactType, paginated by
Link); the real registry shows the 404 path: one request, then the fallback tags."""

from __future__ import annotations

import hashlib
import json

import httpx
import pandas as pd

import reginsight as ri
from tests.images import Pusher
from tests.outofcore import assert_same_out_of_core
from tests.transports import CountingTransport

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
NOW = pd.Timestamp("2026-11-27", tz="UTC")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ReferrersRegistry:
    """Images v1 (old) and v2 (new) in ``app``; v1 has an SBOM (own ``subject``) and a
    Notation signature the API lists although the manifest names no subject (as
    registries that index signatures themselves do); neither is tagged."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.tags: dict[str, str] = {}
        self.referrers: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.v1 = self._image("v1", "2025-01-01T00:00:00Z")
        self.v2 = self._image("v2", "2026-11-01T00:00:00Z")
        self.sbom = self._artifact("application/spdx+json", b'{"spdxVersion": "SPDX-2.3"}',
                                   subject=self.v1)
        self.signature = self._artifact("application/vnd.cncf.notary.signature",
                                        b"signature-envelope", subject=None)
        # the API lists both, on two pages
        self.referrers[self.v1] = [
            {"mediaType": OCI_MANIFEST, "digest": self.sbom, "size": len(
                self.manifests[self.sbom][0]), "artifactType": "application/spdx+json"},
            {"mediaType": OCI_MANIFEST, "digest": self.signature, "size": len(
                self.manifests[self.signature][0]),
             "artifactType": "application/vnd.cncf.notary.signature"}]

    def _blob(self, data: bytes) -> dict:
        digest = _digest(data)
        self.blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    def _manifest(self, doc: dict, tag: str | None = None) -> str:
        raw = json.dumps(doc).encode()
        digest = _digest(raw)
        self.manifests[digest] = (raw, doc["mediaType"])
        if tag:
            self.tags[tag] = digest
        return digest

    def _image(self, tag: str, created: str) -> str:
        config = json.dumps({"architecture": "amd64", "os": "linux", "created": created,
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        return self._manifest({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       **self._blob(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        **self._blob(tag.encode() * 500)}]}, tag)

    def _artifact(self, artifact_type: str, content: bytes, *, subject: str | None) -> str:
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", **self._blob(b"{}")},
               "layers": [{"mediaType": artifact_type, **self._blob(content)}]}
        if subject:
            doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": subject,
                              "size": len(self.manifests[subject][0])}
        return self._manifest(doc)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if path == "/v2/":
            return httpx.Response(200, headers={"Docker-Distribution-Api-Version":
                                                "registry/2.0"}, json={})
        if path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["app"]})
        if path == "/v2/app/tags/list":
            return httpx.Response(200, json={"name": "app", "tags": sorted(self.tags)})
        if path.startswith("/v2/app/manifests/"):
            reference = path.rsplit("/", 1)[1]
            digest = self.tags.get(reference, reference)
            if digest not in self.manifests:
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            raw, media_type = self.manifests[digest]
            headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
            return httpx.Response(200, headers=headers,
                                  content=b"" if request.method == "HEAD" else raw)
        if path.startswith("/v2/app/blobs/"):
            data = self.blobs[path.rsplit("/", 1)[1]]
            return httpx.Response(200, content=data,
                                  headers={"Docker-Content-Digest": _digest(data)})
        if path.startswith("/v2/app/referrers/"):
            subject = path.rsplit("/", 1)[1]
            found = self.referrers.get(subject, [])
            page = int(request.url.params.get("page", "0"))
            headers = {"Content-Type": OCI_INDEX}
            if page == 0 and len(found) > 1:
                headers["Link"] = f'</v2/app/referrers/{subject}?page=1>; rel="next"'
            entries = found[:1] if page == 0 and len(found) > 1 else found[page:]
            return httpx.Response(200, headers=headers, json={
                "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        return httpx.Response(404, text="404 page not found")


def _crawl(fake: ReferrersRegistry) -> ri.Inventory:
    with ri.Registry("http://127.0.0.1:9", transport=httpx.MockTransport(fake.handle)) as reg:
        return ri.crawl(reg, progress=False)


def test_untagged_referrers_listed_by_the_api_are_inventoried():
    fake = ReferrersRegistry()
    inv = _crawl(fake)
    assert inv.errors.empty, inv.errors
    rows = inv.manifests.set_index("digest")
    assert (rows.loc[fake.sbom, "role"], rows.loc[fake.sbom, "subject"],
            rows.loc[fake.sbom, "subject_source"]) == ("sbom", fake.v1, "subject")
    assert (rows.loc[fake.signature, "role"], rows.loc[fake.signature, "subject"],
            rows.loc[fake.signature, "subject_source"]) == ("signature", fake.v1,
                                                            "referrers API")
    assert rows.loc[fake.signature, "artifact_type"] == "application/vnd.cncf.notary.signature"
    # every manifest was asked about once, the second page followed
    asked = [p for m, p in fake.requests if "/referrers/" in p]
    assert sorted(set(asked)) == sorted(f"/v2/app/referrers/{d}" for d in rows.index)
    assert asked.count(f"/v2/app/referrers/{fake.v1}") == 2
    refs = ri.referrers(inv)
    assert set(refs["digest"]) == {fake.sbom, fake.signature}
    assert set(refs["tags"]) == {""} and not refs["orphaned"].any()
    assert ri.images_without(inv, "signature")["tag"].tolist() == ["v2"]
    # storage: the untagged referrers are counted under their roles
    roles = ri.storage_by_role(inv).set_index("role")
    assert roles.loc["sbom", "stored_bytes"] == 2 + len(b'{"spdxVersion": "SPDX-2.3"}')
    assert roles.loc["sbom", "exclusive_bytes"] == len(b'{"spdxVersion": "SPDX-2.3"}')


def test_untagged_referrers_go_by_digest_with_their_subject():
    fake = ReferrersRegistry()
    inv = _crawl(fake)
    plan = ri.plan_cleanup(inv, keep_last=1, now=NOW)
    untagged = plan[plan["tag"].isna()].set_index("digest")
    assert set(untagged.index) == {fake.sbom, fake.signature}
    assert set(untagged["action"]) == {"delete"}
    assert set(untagged["reason"]) == {f"referrer of {fake.v1[:19]}"}
    # v1 and both referrers, and the artifacts' empty config {}: nothing kept uses it
    freed = ri.reclaimable_blobs(inv, plan[plan["action"] == "delete"])
    assert set(freed["digest"]) >= {fake.v1, fake.sbom, fake.signature, _digest(b"{}")}
    assert plan.attrs["reclaimable_bytes"] == int(freed["size"].sum())
    with ri.Registry("http://127.0.0.1:9", transport=httpx.MockTransport(fake.handle)) as reg:
        result = ri.apply_cleanup(reg, plan)  # a dry run
    assert set(result.loc[result["tag"] == "", "digest"]) == {fake.sbom, fake.signature}
    assert set(result["status"]) == {"would delete"}


def test_a_registry_without_the_api_is_asked_once(registry_server, prefix):
    push = Pusher(registry_server.url)
    repo = f"{prefix}/many"
    for n in range(6):
        push.image(repo, f"v{n}", oci=True)
    push.close()
    transport = CountingTransport()
    with ri.Registry(registry_server.url, transport=transport) as reg:
        inv = ri.crawl(reg, [repo], progress=False)
    assert inv.errors.empty and len(inv.tags) == 6
    assert transport.count("GET", "/referrers/") == 1


def test_out_of_core_figures_equal_pandas_with_untagged_referrers(tmp_path):
    inv = _crawl(ReferrersRegistry())
    assert len(ri.repositories_without_tags(inv)) == 0 and len(inv.manifests) > len(inv.tags)
    assert_same_out_of_core(inv, tmp_path / "saved")
