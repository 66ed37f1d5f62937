"""What a crawl (or a storage scan) learns, before it becomes frames: the facts model.

Facts are kept by digest, the same in every repository that holds the digest: what
a manifest lists, what an image config says, the sizes learnt by HEAD. A
:class:`CrawlResult` adds what is per repository (tags, errors) and the scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._artifacts import (
    BUILDX_ATTESTATION,
    BUILDX_REFERENCE_DIGEST,
    BUILDX_REFERENCE_TYPE,
    classify,
)
from .._errors import InvalidDigest, ManifestInvalid
from .._json import json_object
from ..registry._digest import validate_digest
from ..registry._manifest import ImageIndex, Manifest, Schema1Manifest


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int | None
    media_type: str | None


@dataclass(frozen=True)
class Child:
    """One entry of an index: the child manifest and the platform the index names."""

    digest: str
    media_type: str | None
    os: str | None
    architecture: str | None
    variant: str | None
    #: the entry this one attests (buildx's ``vnd.docker.reference.digest``), or None
    subject: str | None = None


@dataclass(frozen=True)
class ConfigFacts:
    """What an image config (or schema1 v1Compatibility) says about the image."""

    created: str | None
    os: str | None
    architecture: str | None
    variant: str | None


@dataclass(frozen=True)
class ManifestInfo:
    """What a manifest says, the same in every repository that holds its digest."""

    digest: str
    media_type: str | None
    kind: str
    manifest_size: int
    config: Blob | None = None
    layers: tuple[Blob, ...] = ()
    children: tuple[Child, ...] = ()
    platform: ConfigFacts | None = None  # schema1 carries it inline
    role: str = "image"  # see reginsight._artifacts
    artifact_type: str | None = None
    subject: str | None = None  # the manifest's own OCI 1.1 ``subject`` field

    def blobs(self) -> tuple[Blob, ...]:
        """The config (if any) and the layers: the blobs this manifest references."""
        return ((self.config,) if self.config else ()) + self.layers


@dataclass
class Facts:
    """Everything known by digest: manifests, what configs say (by config digest), and
    blob sizes learnt by HEAD (schema1 layers carry none)."""

    manifests: dict[str, ManifestInfo] = field(default_factory=dict)
    configs: dict[str, ConfigFacts] = field(default_factory=dict)
    blob_sizes: dict[str, int] = field(default_factory=dict)


#: repository, tag, digest, media type (None when HEAD did not say)
TagRow = tuple[str, str, str, str | None]
#: repository, reference, stage, error
ErrorRow = tuple[str, str, str, str]


@dataclass(frozen=True)
class CrawlResult:
    """What one crawl learnt: the facts, the tags and the errors, and what was asked."""

    registry: str
    scope: str | None  # None: the whole catalog
    tags: tuple[TagRow, ...]
    errors: tuple[ErrorRow, ...]
    facts: Facts
    #: (repository, digest) of every manifest a repository holds, tagged or not: only a
    #: storage scan knows them (the API lists tags). None: a crawl, tags are the roots.
    revisions: frozenset[tuple[str, str]] | None = None
    #: (repository, subject, referrer digest) as the referrers API listed them
    referrers: tuple[tuple[str, str, str], ...] = ()
    #: (repository, digest) a crawl found held without a tag: referrers the API
    #: listed, subjects fetched by digest
    untagged: frozenset[tuple[str, str]] = frozenset()
    #: the repositories the crawl read (tags listed), with or without tags
    repositories: tuple[str, ...] | None = None


def manifest_info(manifest: Manifest) -> ManifestInfo:
    """The repository-independent facts of a parsed manifest."""
    role = classify(kind=manifest.kind, artifact_type=manifest.artifact_type,
                    config_media_type=manifest.config.media_type if manifest.config else None,
                    layer_media_types=[d.media_type for d in manifest.layers],
                    annotations=manifest.annotations)
    common = {"digest": manifest.digest, "media_type": manifest.media_type or None,
              "kind": manifest.kind, "manifest_size": manifest.size, "role": role.role,
              "artifact_type": role.artifact_type,
              "subject": manifest.subject.digest if manifest.subject else None}
    if isinstance(manifest, ImageIndex):
        children = tuple(
            Child(d.digest, d.media_type,
                  d.platform.os if d.platform else None,
                  d.platform.architecture if d.platform else None,
                  d.platform.variant if d.platform else None,
                  buildx_subject(d.annotations))
            for d in manifest.manifests)
        return ManifestInfo(**common, children=children)
    layers = tuple(Blob(d.digest, d.size, d.media_type) for d in manifest.layers)
    if isinstance(manifest, Schema1Manifest):
        image = manifest.image_config
        return ManifestInfo(**common, layers=layers, platform=ConfigFacts(
            _text(image.get("created")), _text(image.get("os")),
            _text(image.get("architecture")) or manifest.architecture or None,
            _text(image.get("variant"))))
    config = manifest.config
    return ManifestInfo(
        **common, layers=layers,
        config=Blob(config.digest, config.size, config.media_type) if config else None)


def buildx_subject(annotations: Mapping[str, str]) -> str | None:
    """The digest a buildx attestation entry of an index attests, else None."""
    if annotations.get(BUILDX_REFERENCE_TYPE) != BUILDX_ATTESTATION:
        return None
    try:
        return validate_digest(annotations.get(BUILDX_REFERENCE_DIGEST, ""))
    except InvalidDigest:
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


#: an image config is a small JSON document; a larger one is not read (crawl and scan)
CONFIG_LIMIT = 16 * 1024 * 1024


def parse_config(raw: bytes) -> ConfigFacts:
    """created/os/architecture/variant of an image config blob."""
    doc = json_object(raw)
    if doc is None:
        raise ManifestInvalid("image config is not a JSON object")
    return ConfigFacts(_text(doc.get("created")), _text(doc.get("os")),
                       _text(doc.get("architecture")), _text(doc.get("variant")))
