"""Fill a registry for the benchmarks: teams of repositories sharing base layers,
several tags each (one sharing a digest), and a multi-platform index."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import reginsight as ri

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _bytes(label: str, size: int) -> bytes:
    seed = hashlib.sha256(label.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _image(reg: ri.Registry, repo: str, base: tuple[str, int], unique: bytes,
           created: str, architecture: str = "amd64") -> dict:
    config = json.dumps({"architecture": architecture, "os": "linux", "created": created,
                         "config": {"Labels": {"source": repo,
                                               "build": hashlib.sha256(unique).hexdigest()}},
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    return {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": reg.upload_blob(repo, config),
                   "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": base[0], "size": base[1]},
                   {"mediaType": OCI_LAYER, "digest": reg.upload_blob(repo, unique),
                    "size": len(unique)}],
    }


def fill(url: str, *, repositories: int = 160, tags_per_repository: int = 4,
         workers: int = 16) -> dict[str, int]:
    """Push ``repositories`` x ``tags_per_repository`` tags; return counts."""
    with ri.Registry(url, max_connections=workers) as reg:
        bases = []
        for i in range(3):
            data = _bytes(f"base-{i}", 64 * 1024)
            bases.append((reg.upload_blob("base/layers", data), len(data)))

        def one(n: int) -> int:
            repo = f"team{n % 8}/app{n:03d}"
            base = bases[n % len(bases)]
            reg.mount_blob(repo, base[0], "base/layers")
            for t in range(tags_per_repository - 1):
                doc = _image(reg, repo, base, _bytes(f"{repo}-{t}", 4096 + n),
                             f"2026-0{1 + t % 9}-1{t % 10}T00:00:00Z")
                reg.put_manifest(repo, f"1.{t}", doc)
            reg.put_manifest(repo, "latest", doc)  # shares the last digest
            return tags_per_repository

        with ThreadPoolExecutor(workers) as pool:
            tags = sum(pool.map(one, range(repositories)))
        repo = "platform/multi"
        children = []
        for arch in ("amd64", "arm64"):
            reg.mount_blob(repo, bases[0][0], "base/layers")
            doc = _image(reg, repo, bases[0], _bytes(arch, 8192), "2026-03-03T00:00:00Z", arch)
            digest = reg.put_manifest(repo, arch, doc)
            children.append({"mediaType": OCI_MANIFEST, "digest": digest,
                             "size": reg.manifest(repo, digest).size,
                             "platform": {"os": "linux", "architecture": arch}})
        reg.put_manifest(repo, "multi", {"schemaVersion": 2,
                                         "mediaType": "application/vnd.oci.image.index.v1+json",
                                         "manifests": children})
    return {"repositories": repositories + 1, "tags": tags + 3}
