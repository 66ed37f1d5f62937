"""Fill the real test registry over plain HTTP (independent of reginsight's client)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Pushed:
    repository: str
    reference: str
    digest: str
    media_type: str
    raw: bytes
    config: str | None = None
    layers: tuple[str, ...] = ()


class Pusher:
    """Pushes blobs and manifests with bare httpx calls."""

    def __init__(self, base_url: str, *, auth: httpx.Auth | None = None,
                 verify: object = True) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30, auth=auth, verify=verify)

    def close(self) -> None:
        self.http.close()

    def blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        start = self.http.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["location"]
        # httpx's params= would replace the _state query the registry put in Location
        location = str(httpx.URL(location).copy_add_param("digest", digest))
        put = self.http.put(location, content=data,
                            headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
        return digest

    def manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        response = self.http.put(f"/v2/{repo}/manifests/{reference}", content=raw,
                                 headers={"Content-Type": media_type})
        assert response.status_code == 201, response.text
        return response.headers["docker-content-digest"]

    def image(
        self, repo: str, tag: str | None, *, layers: tuple[bytes, ...] | None = None,
        oci: bool = False, architecture: str = "amd64", os_name: str = "linux",
        variant: str | None = None, created: str | None = "2026-01-02T03:04:05Z",
    ) -> Pushed:
        layers = layers if layers is not None else (os.urandom(256),)
        config_doc = {
            "architecture": architecture, "os": os_name, "created": created,
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
            "config": {},
        }
        if created is None:  # reproducible builds may leave it out
            del config_doc["created"]
        if variant:
            config_doc["variant"] = variant
        config = json.dumps(config_doc, sort_keys=True).encode()
        config_digest = self.blob(repo, config)
        layer_digests = tuple(self.blob(repo, layer) for layer in layers)
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        doc = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                       "digest": config_digest, "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "digest": d, "size": len(b)}
                for d, b in zip(layer_digests, layers, strict=True)
            ],
        }
        raw = json.dumps(doc, indent=3).encode()
        reference = tag or sha256(raw)  # no tag: pushed by digest, untagged
        digest = self.manifest(repo, reference, raw, media_type)
        assert digest == sha256(raw)
        return Pushed(repo, reference, digest, media_type, raw, config_digest, layer_digests)

    def index(self, repo: str, tag: str | None, children: list[tuple[Pushed, dict]],
              *, oci: bool = True) -> Pushed:
        media_type = OCI_INDEX if oci else DOCKER_LIST
        doc = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [
                {"mediaType": child.media_type, "digest": child.digest,
                 "size": len(child.raw), "platform": platform}
                for child, platform in children
            ],
        }
        raw = json.dumps(doc, indent=2).encode()
        reference = tag or sha256(raw)
        digest = self.manifest(repo, reference, raw, media_type)
        return Pushed(repo, reference, digest, media_type, raw)
