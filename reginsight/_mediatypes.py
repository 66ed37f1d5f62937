"""Media types of the OCI image spec and Docker's manifest formats, with predicates."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

#: Every manifest media type, most preferred first. Sent on every manifest GET and
#: HEAD: without it registry 2.8 rewrites Docker v2 manifests into schema1 (another
#: digest), answers 404 for OCI manifests and serves one child of a list.
MANIFEST_MEDIA_TYPES = (
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_SCHEMA1,
)

MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)


def is_index(media_type: str | None) -> bool:
    """True for an OCI image index or a Docker manifest list."""
    return media_type in INDEXES


def is_image_manifest(media_type: str | None) -> bool:
    """True for an OCI image manifest or a Docker v2 (schema2) manifest."""
    return media_type in IMAGE_MANIFESTS


def is_schema1(media_type: str | None) -> bool:
    """True for Docker schema1 manifests, signed or not."""
    return media_type in SCHEMA1


def is_manifest(media_type: str | None) -> bool:
    """True for any media type a registry serves from ``/manifests/``."""
    return media_type in MANIFEST_MEDIA_TYPES


def essence(content_type: str | None) -> str | None:
    """The media type of a Content-Type header, without parameters, lower case."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def manifest_type(content_type: str | None) -> str | None:
    """The manifest media type a Content-Type header names, or None when it names none.
    Mirrors and some registries serve manifests as ``application/json`` (or text/json,
    octet-stream ...): that says nothing of which document it is."""
    media_type = essence(content_type)
    return media_type if is_manifest(media_type) else None
