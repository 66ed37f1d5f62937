"""Regenerate data/sample: a small inventory crawled from a real registry.

    python scripts/make_sample.py        (needs Debian's docker-registry)

Starts the Distribution registry on a free loopback port, fills it with
reginsight's own push helpers (teams sharing base layers, an index, tags sharing
digests, old and new images) and the test suite's supply-chain helpers (cosign
signatures and attestations, an SPDX SBOM with its referrers fallback tag, a buildx
index with attestations, Helm charts, a signature whose image was deleted), crawls it
and saves the inventory. Content and
dates are fixed, so the digests and every figure come out the same each time; the
registry URL and crawl time are recorded as fixed values too.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import reginsight as ri  # noqa: E402
from tests.images import Pushed  # noqa: E402
from tests.images import Pusher as HttpPusher  # noqa: E402
from tests.registry_server import RegistryServer  # noqa: E402
from tests.supply_chain import SupplyChain  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TAKEN_AT = pd.Timestamp("2026-11-27T12:00:00Z")
RECORDED_URL = "http://localhost:5000"


def content(label: str, size: int) -> bytes:
    """Deterministic bytes that do not compress away (sizes stay what they say)."""
    out, block = bytearray(), hashlib.sha256(label.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


class Pusher:
    def __init__(self, reg: ri.Registry) -> None:
        self.reg = reg
        self.bases: dict[str, list[tuple[str, int]]] = {}

    def base(self, name: str, sizes: list[int]) -> None:
        self.bases[name] = [(self.reg.upload_blob("library/base-layers",
                                                  content(f"{name}-{i}", size)), size)
                            for i, size in enumerate(sizes)]

    def image(self, repo: str, tag: str | None, *, base: str, extra: list[int], created: str,
              arch: str = "amd64", tags: tuple[str, ...] = ()) -> str:
        layers = []
        for digest, size in self.bases[base]:
            self.reg.mount_blob(repo, digest, "library/base-layers")
            layers.append({"mediaType": OCI_LAYER, "digest": digest, "size": size})
        for i, size in enumerate(extra):
            data = content(f"{repo}:{tag}:{arch}:{i}", size)
            layers.append({"mediaType": OCI_LAYER, "digest": self.reg.upload_blob(repo, data),
                           "size": size})
        config = json.dumps({"architecture": arch, "os": "linux", "created": created,
                             "config": {"Labels": {"org.opencontainers.image.source": repo}},
                             "rootfs": {"type": "layers", "diff_ids": []}},
                            sort_keys=True).encode()
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG,
                               "digest": self.reg.upload_blob(repo, config),
                               "size": len(config)}, "layers": layers}
        if tag is None:  # pushed by digest: untagged, as buildx pushes platform images
            raw = json.dumps(manifest).encode()
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            return self.reg.put_manifest(repo, digest, raw, media_type=OCI_MANIFEST)
        digest = self.reg.put_manifest(repo, tag, manifest)
        for other in tags:
            self.reg.put_manifest(repo, other, manifest)
        return digest


def fill(reg: ri.Registry) -> None:
    p = Pusher(reg)
    p.base("debian", [3_000_000, 900_000])
    p.base("alpine", [1_200_000])
    p.base("python", [3_000_000, 900_000, 2_500_000, 700_000])
    # platform team: base images, one multi-platform index
    children = []
    for arch in ("amd64", "arm64"):
        digest = p.image("platform/base", f"2026.10-{arch}", base="debian",
                               extra=[150_000], created="2026-10-01T08:00:00Z", arch=arch)
        children.append({"mediaType": OCI_MANIFEST, "digest": digest,
                         "size": reg.manifest("platform/base", digest).size,
                         "platform": {"os": "linux", "architecture": arch}})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    reg.put_manifest("platform/base", "2026.10", index)
    reg.put_manifest("platform/base", "latest", index)
    p.image("platform/base", "2025.04", base="debian", extra=[140_000],
            created="2025-04-01T08:00:00Z")
    # web team: releases over two years; latest and stable share digests
    for n, (day, tags) in enumerate([("2024-11-05", ()), ("2025-03-12", ()),
                                     ("2025-09-30", ("stable",)), ("2026-06-18", ()),
                                     ("2026-11-20", ("latest",))]):
        p.image("web/frontend", f"1.{n}.0", base="alpine", extra=[800_000 + n * 50_000],
                created=f"{day}T10:00:00Z", tags=tags)
    for n, day in enumerate(["2025-01-20", "2025-08-02", "2026-02-14", "2026-11-02"]):
        p.image("web/api", f"v{n + 1}", base="python", extra=[1_500_000, 300_000 + n],
                created=f"{day}T12:00:00Z", tags=("latest",) if n == 3 else ())
    # data team: nightly builds, many old ones
    for n in range(8):
        p.image("data/etl", f"nightly-2025{n + 1:02d}01", base="python",
                extra=[2_000_000 + n * 10_000], created=f"2025-{n + 1:02d}-01T02:00:00Z")
    p.image("data/etl", "nightly-20261126", base="python", extra=[2_100_000],
            created="2026-11-26T02:00:00Z", tags=("latest",))
    p.image("data/jobs", "1.0", base="debian", extra=[600_000], created="2024-06-01T00:00:00Z")
    p.image("data/jobs", "2.0", base="debian", extra=[650_000], created="2026-09-01T00:00:00Z",
            tags=("latest",))
    # ml team: big images, one shared CUDA-like layer between two repositories
    cuda = content("cuda-runtime", 9_000_000)
    cuda_digest = reg.upload_blob("ml/train", cuda)
    for repo, day in (("ml/train", "2026-08-08"), ("ml/serve", "2026-10-10")):
        reg.mount_blob(repo, cuda_digest, "ml/train")
        p.bases[f"{repo}-cuda"] = [*p.bases["python"], (cuda_digest, len(cuda))]
        p.image(repo, "latest", base=f"{repo}-cuda", extra=[4_000_000],
                created=f"{day}T00:00:00Z")
    p.image("ml/train", "exp-2025", base="ml/train-cuda", extra=[4_100_000],
            created="2025-02-02T00:00:00Z")


class Noise:
    """Fixed stand-ins for signatures and padding, so digests repeat run to run."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, size: int) -> bytes:
        self.count += 1
        return content(f"noise-{self.count}", size)


def supply_chain(reg: ri.Registry) -> None:
    http = HttpPusher(reg.url)
    chain = SupplyChain(http, noise=Noise())

    def pushed(repo: str, reference: str) -> Pushed:
        manifest = reg.manifest(repo, reference)
        return Pushed(repo, reference, manifest.digest, manifest.media_type, manifest.raw)

    chain.cosign_signature("platform/base", pushed("platform/base", "2026.10").digest)
    api = pushed("web/api", "v4")
    chain.cosign_signature("web/api", api.digest)
    chain.cosign_attestation("web/api", api.digest)
    chain.spdx_sbom("web/api", api, size=40_000)
    chain.cosign_signature("web/frontend", pushed("web/frontend", "1.4.0").digest)
    # a signature whose image was deleted afterwards: an orphan
    p = Pusher(reg)
    p.bases["none"] = []
    dropped = p.image("data/etl", "nightly-20241201", base="none", extra=[500_000],
                      created="2024-12-01T02:00:00Z")
    chain.cosign_signature("data/etl", dropped)
    reg.delete_manifest("data/etl", dropped)
    # a multi-platform build with buildx attestations
    images = []
    for arch in ("amd64", "arm64"):
        digest = p.image("web/worker", None, base="none", extra=[700_000],
                         created="2026-11-15T09:00:00Z", arch=arch)
        images.append((pushed("web/worker", digest), {"os": "linux", "architecture": arch}))
    chain.buildx_index("web/worker", "1.0", images)
    for version in ("0.1.0", "0.2.0"):
        chain.helm_chart("charts/web", version, size=20_000)
    http.close()


def main() -> None:
    target = ROOT / "reginsight" / "sample"  # data/sample links here
    with tempfile.TemporaryDirectory() as tmp:
        server = RegistryServer(Path(tmp) / "registry").start()
        try:
            with ri.Registry(server.url) as reg:
                fill(reg)
                supply_chain(reg)
                inv = ri.crawl(reg, progress=False)
        finally:
            server.stop()
    assert inv.errors.empty, inv.errors
    inv.registry, inv.taken_at = RECORDED_URL, TAKEN_AT
    inv.save(target)
    print(f"{target}: {inv!r}")


if __name__ == "__main__":
    main()
