"""Push supply-chain artifacts in their documented formats, over plain HTTP.

The shapes follow what the tools write: cosign's legacy signature and attestation
tags (``sha256-<hex>.sig`` / ``.att``: an OCI manifest whose layer is a simple-signing
payload or a DSSE envelope), an OCI 1.1 SPDX SBOM with a ``subject`` plus the
referrers fallback index (``sha256-<hex>``), buildx's attestation manifests inside an
image index (platform unknown/unknown, ``vnd.docker.reference.*`` annotations) and a
Helm chart. Independent of reginsight: the tests check reginsight against these.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable

from tests.images import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Pushed, Pusher, sha256

EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
SPDX = "application/spdx+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def subject_tag(digest: str, suffix: str = "") -> str:
    return digest.replace(":", "-", 1) + suffix


class SupplyChain:
    """Artifacts about images already in the registry (``Pushed`` from tests.images)."""

    def __init__(self, pusher: Pusher, *, noise: Callable[[int], bytes] = os.urandom) -> None:
        self.push = pusher
        self.noise = noise  # signatures and padding: random, or fixed for a reproducible sample

    def _manifest(self, repo: str, reference: str | None, doc: dict) -> Pushed:
        raw = json.dumps(doc, indent=2).encode()
        media_type = doc["mediaType"]
        digest = self.push.manifest(repo, reference or sha256(raw), raw, media_type)
        assert digest == sha256(raw)
        config = doc.get("config", {}).get("digest")
        layers = tuple(layer["digest"] for layer in doc.get("layers", ()))
        return Pushed(repo, reference or digest, digest, media_type, raw, config, layers)

    def _blob(self, repo: str, data: bytes, media_type: str, **extra: object) -> dict:
        return {"mediaType": media_type, "digest": self.push.blob(repo, data),
                "size": len(data), **extra}

    def _cosign_config(self, repo: str, layer: bytes) -> dict:
        # cosign writes a zero "created" (year 1) into its signature configs
        config = json.dumps({"architecture": "", "os": "", "created": "0001-01-01T00:00:00Z",
                             "config": {}, "rootfs": {"type": "layers",
                                                      "diff_ids": [sha256(layer)]}}).encode()
        return self._blob(repo, config, OCI_CONFIG)

    def cosign_signature(self, repo: str, subject: str) -> Pushed:
        """cosign's legacy signature: tag ``sha256-<hex>.sig``."""
        payload = json.dumps({
            "critical": {"identity": {"docker-reference": f"registry.test/{repo}"},
                         "image": {"docker-manifest-digest": subject},
                         "type": "cosign container image signature"},
            "optional": None}).encode()
        signature = base64.b64encode(self.noise(64)).decode()
        return self._manifest(repo, subject_tag(subject, ".sig"), {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": self._cosign_config(repo, payload),
            "layers": [self._blob(repo, payload, SIMPLESIGNING, annotations={
                "dev.cosignproject.cosign/signature": signature})]})

    def cosign_attestation(self, repo: str, subject: str) -> Pushed:
        """cosign's legacy in-toto attestation: tag ``sha256-<hex>.att``, a DSSE envelope."""
        statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1",
                                "predicateType": "https://slsa.dev/provenance/v0.2",
                                "subject": [{"name": repo, "digest": {
                                    "sha256": subject.split(":", 1)[1]}}],
                                "predicate": {"builder": {"id": "ci"}}}).encode()
        envelope = json.dumps({"payloadType": "application/vnd.in-toto+json",
                               "payload": base64.b64encode(statement).decode(),
                               "signatures": [{"sig": base64.b64encode(self.noise(64)).decode()}]
                               }).encode()
        return self._manifest(repo, subject_tag(subject, ".att"), {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": self._cosign_config(repo, envelope),
            "layers": [self._blob(repo, envelope, DSSE, annotations={
                "predicateType": "https://slsa.dev/provenance/v0.2"})]})

    def spdx_sbom(self, repo: str, subject: Pushed, *, size: int = 3000,
                  fallback: bool = True) -> Pushed:
        """An OCI 1.1 SBOM artifact with a ``subject``, pushed by digest (untagged), and
        the referrers fallback index ``sha256-<hex>`` listing it, as OCI 1.1 clients
        write it to a registry without the referrers API."""
        document = json.dumps({"spdxVersion": "SPDX-2.3", "name": repo,
                               "packages": [{"name": "p", "pad": "x" * size}]}).encode()
        sbom = self._manifest(repo, None, {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SPDX,
            "config": self._blob(repo, b"{}", EMPTY),
            "layers": [self._blob(repo, document, SPDX)],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                        "size": len(subject.raw)}})
        if fallback:
            self._manifest(repo, subject_tag(subject.digest), {
                "schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": sbom.digest,
                               "size": len(sbom.raw), "artifactType": SPDX}]})
        return sbom

    def buildx_index(self, repo: str, tag: str, images: list[tuple[Pushed, dict]]) -> Pushed:
        """A multi-platform index as buildx writes it with ``--attest``: each image is
        followed by its attestation manifest (in-toto SPDX and provenance layers)."""
        entries = []
        for image, platform in images:
            entries.append({"mediaType": image.media_type, "digest": image.digest,
                            "size": len(image.raw), "platform": platform})
            layers = [self._blob(repo, json.dumps({
                "_type": "https://in-toto.io/Statement/v0.1", "predicateType": predicate,
                "subject": [{"name": tag, "digest": {"sha256": image.digest[7:]}}],
                "predicate": {"pad": self.noise(300).hex()}}).encode(), IN_TOTO,
                annotations={"in-toto.io/predicate-type": predicate})
                for predicate in ("https://spdx.dev/Document",
                                  "https://slsa.dev/provenance/v0.2")]
            config = json.dumps({"architecture": "unknown", "os": "unknown", "config": {},
                                 "rootfs": {"type": "layers", "diff_ids": [
                                     layer["digest"] for layer in layers]}}).encode()
            attestation = self._manifest(repo, None, {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": self._blob(repo, config, OCI_CONFIG), "layers": layers})
            entries.append({"mediaType": OCI_MANIFEST, "digest": attestation.digest,
                            "size": len(attestation.raw),
                            "platform": {"os": "unknown", "architecture": "unknown"},
                            "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                            "vnd.docker.reference.digest": image.digest}})
        return self._manifest(repo, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                          "manifests": entries})

    def helm_chart(self, repo: str, version: str, *, size: int = 2000) -> Pushed:
        config = json.dumps({"apiVersion": "v2", "name": repo.rsplit("/", 1)[-1],
                             "version": version}).encode()
        return self._manifest(repo, version, {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": self._blob(repo, config, HELM_CONFIG),
            "layers": [self._blob(repo, self.noise(size), HELM_CHART)]})
