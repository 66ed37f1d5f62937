"""Copy an image (or a whole index) between repositories and registries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import NotFound
from ..registry._digest import is_digest
from ..registry._manifest import Descriptor, Manifest
from ..registry._reference import split_reference

if TYPE_CHECKING:
    from ..registry._client import Registry


def copy(src: Registry, src_ref: str, dst: Registry, dst_ref: str) -> str:
    """Copy ``src_ref`` (``repo:tag`` or ``repo@digest``) from ``src`` to ``dst_ref``.

    Blobs first (mounted within one registry, streamed otherwise, skipped when
    present: one HEAD per blob), an index's children before the index, the manifest
    bytes unchanged, so the digest is kept. Idempotent. Returns the digest.

    Each write is checked against what the destination says it stored (the digest in
    its ``Docker-Content-Digest`` and ``Location``): a registry that answers a PUT
    naming another manifest (one that kept the image the tag held) raises
    DigestMismatch; the copy did not take.
    """
    src_repo, src_reference = split_reference(src_ref)
    dst_repo, dst_reference = split_reference(dst_ref)
    copier = _Copier(src, src_repo, dst, dst_repo)
    manifest = src.manifest(src_repo, src_reference)
    copier.manifest(manifest, manifest.digest if is_digest(dst_reference) else dst_reference)
    return manifest.digest


class _Copier:
    def __init__(self, src: Registry, src_repo: str, dst: Registry, dst_repo: str) -> None:
        self.src, self.src_repo, self.dst, self.dst_repo = src, src_repo, dst, dst_repo
        self.same_registry = src.url == dst.url
        self.done: set[str] = set()

    def manifest(self, manifest: Manifest, reference: str) -> None:
        for child in manifest.manifests:
            if child.digest not in self.done:
                self.manifest(self.src.manifest(self.src_repo, child.digest), child.digest)
        blobs = [manifest.config, *manifest.layers] if manifest.config else list(manifest.layers)
        for blob in blobs:
            if blob is not None and blob.digest not in self.done:
                self.blob(blob)
                self.done.add(blob.digest)
        self.dst.put_manifest(self.dst_repo, reference, manifest.raw, manifest.media_type)
        self.done.add(manifest.digest)

    def blob(self, blob: Descriptor) -> None:
        if self.dst.has_blob(self.dst_repo, blob.digest):
            return
        if self.same_registry and self.dst.mount_blob(self.dst_repo, blob.digest,
                                                      self.src_repo):
            return
        try:
            with self.src.download_blob(self.src_repo, blob.digest) as stream:
                # the HEAD above said it is missing: upload_blob need not ask again
                self.dst.upload_blob(self.dst_repo, stream, blob.digest, check_present=False)
        except NotFound:
            if blob.urls:  # a foreign layer: pulled from its URLs, not the registry
                return
            raise
