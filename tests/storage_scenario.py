"""A registry storage with everything the tag API hides, built through the real API.

``build(pusher)`` fills a fresh registry and returns what went where, so tests can
assert each disk category against what was pushed, and the real garbage collector's
deletions against ``gc_preview``. Used by the filesystem and the S3 driver tests.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.images import Pushed, Pusher, sha256
from tests.registry_server import RegistryServer
from tests.versions import VERSIONS, registry_of

#: the garbage collector reginsight models for each registry version the tests run
COLLECTOR = {"2.8": "distribution-2", "3.0": "distribution-3"}
assert set(COLLECTOR) == set(VERSIONS)


def collector(version: str) -> str:
    return COLLECTOR[version]


def server(version: str, workdir: Path, overrides: dict | None = None) -> RegistryServer:
    """A registry of that version (not started), its own storage under ``workdir``;
    3.0's s3 driver is told to address the local S3 server by path."""
    extra = dict(overrides or {})
    if version == "3.0" and "s3" in extra.get("storage", {}):
        extra["storage"] = {**extra["storage"],
                            "s3": {**extra["storage"]["s3"], "forcepathstyle": True}}
    return registry_of(version, workdir, **extra)


BASE = b"shared base layer " * 64  # in every image of "app": stays tagged throughout


@dataclass
class Scenario:
    tagged: set[str] = field(default_factory=set)  # blob digests a tag reaches
    untagged: set[str] = field(default_factory=set)  # only untagged revisions use them
    unreferenced: set[str] = field(default_factory=set)  # no revision references them
    upload_bytes: int = 0
    index: Pushed | None = None
    children: list[Pushed] = field(default_factory=list)
    hazard_child: Pushed | None = None  # index child whose blobs all live on elsewhere
    sizes: dict[str, int] = field(default_factory=dict)


def _blobs(image: Pushed) -> set[str]:
    return {image.digest, image.config, *image.layers}


def build(pusher: Pusher, prefix: str) -> Scenario:
    """Pushes into ``<prefix>/app`` and ``<prefix>/multi``:

    - ``app:latest`` pushed three times (a CI tag that moves): two untagged images;
    - ``app:gone`` pushed, then its manifest deleted: its own blobs unreferenced;
    - a blob uploaded to ``app`` that no manifest uses: unreferenced;
    - an upload of 3000 bytes started and abandoned half-way;
    - ``multi:v1``, an index of two images, and ``multi:solo``, an image with the same
      config and layers as the index's arm64 child but its own manifest: with
      ``--delete-untagged`` that child loses only its revision.
    """
    app, multi = f"{prefix}/app", f"{prefix}/multi"
    out = Scenario()
    history = [pusher.image(app, "latest", layers=(BASE, os.urandom(700 + i)))
               for i in range(3)]
    for image in history[:2]:
        out.untagged |= _blobs(image) - {sha256(BASE)}
    out.tagged |= _blobs(history[-1])
    gone = pusher.image(app, "gone", layers=(BASE, os.urandom(900)))
    response = pusher.http.delete(f"/v2/{app}/manifests/{gone.digest}")
    assert response.status_code == 202, response.text
    out.unreferenced |= _blobs(gone) - {sha256(BASE)}
    out.unreferenced.add(pusher.blob(app, os.urandom(1234)))
    start = pusher.http.post(f"/v2/{app}/blobs/uploads/")
    assert start.status_code == 202, start.text
    patch = pusher.http.patch(start.headers["location"], content=os.urandom(3000),
                              headers={"Content-Type": "application/octet-stream"})
    assert patch.status_code == 202, patch.text
    out.upload_bytes = 3000

    amd = pusher.image(multi, None, layers=(os.urandom(500), os.urandom(600)), oci=True)
    solo_layer = os.urandom(400)
    solo = pusher.image(multi, "solo", layers=(solo_layer,), architecture="arm64")
    # the same config and layers as solo, as an OCI manifest: another digest
    arm = pusher.image(multi, None, layers=(solo_layer,), oci=True, architecture="arm64")
    assert arm.config == solo.config and arm.digest != solo.digest
    out.index = pusher.index(multi, "v1", [(amd, {"os": "linux", "architecture": "amd64"}),
                                           (arm, {"os": "linux", "architecture": "arm64"})])
    out.children = [amd, arm]
    out.hazard_child = arm
    out.tagged |= {out.index.digest} | _blobs(amd) | _blobs(arm) | _blobs(solo)
    out.untagged -= out.tagged
    out.unreferenced -= out.tagged | out.untagged
    return out


def untag_all(pusher: Pusher, version: str, latest: Pushed) -> None:
    """Remove the only tag of ``latest``'s repository, leaving untagged revisions: 3.x
    deletes the tag itself; 2.x deletes the manifest it names, and that tag with it."""
    reference = "latest" if version == "3.0" else latest.digest
    response = pusher.http.delete(f"/v2/{latest.repository}/manifests/{reference}")
    assert response.status_code == 202, response.text


def blob_bytes(storage: Path) -> dict[str, int]:
    """Every blob's data file under a filesystem storage root, by digest: the oracle."""
    found = {}
    for data in (storage / "docker/registry/v2/blobs").rglob("data"):
        found[f"{data.parent.parent.parent.name}:{data.parent.name}"] = data.stat().st_size
    return found


def upload_bytes(storage: Path) -> int:
    return sum(p.stat().st_size for p in
               (storage / "docker/registry/v2/repositories").rglob("_uploads/*/data"))


def collect_copy(server: RegistryServer, target: Path, *extra: str) -> dict[str, int]:
    """Run the real ``garbage-collect`` on a copy of the server's filesystem storage;
    the blobs it deleted, with their sizes."""
    copy = target / "storage"
    shutil.copytree(server.storage, copy, symlinks=True)
    config = target / "config.yml"
    config.write_text(server.config_path.read_text().replace(str(server.storage), str(copy)))
    before = blob_bytes(copy)
    server.garbage_collect(*extra, config=config)
    after = blob_bytes(copy)
    return {d: s for d, s in before.items() if d not in after}
