"""Frozen models of the manifest documents a registry serves, and their parser.

Covers the OCI image manifest and index, Docker v2 (schema2) manifest and manifest
list, and Docker schema1 (signed "prettyjws" or unsigned). A descriptor with a media
type reginsight does not know still parses: registries hold artifacts of every kind.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .. import _mediatypes as mt
from .._errors import InvalidReference, ManifestInvalid
from .._json import json_object
from ._digest import Digest, DigestVerifier, parse_digest, validate_digest

_EMPTY: Mapping[str, str] = MappingProxyType({})
#: the digest nearly every descriptor holds, already in its one spelling: taken as it
#: is, without building a Digest (anything else goes through validate_digest)
_PLAIN_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
#: the keys of nearly every descriptor: nothing more to parse than these
_PLAIN_DESCRIPTOR = frozenset({"mediaType", "digest", "size"})


@dataclass(frozen=True, kw_only=True)
class Platform:
    """The platform an index entry (or an image config) is built for."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """A pointer to content: media type, digest and size (None for schema1 layers)."""

    media_type: str | None
    digest: str
    size: int | None
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    platform: Platform | None = None
    artifact_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A manifest as served. Subclasses fill ``config``/``layers`` or ``manifests``.

    ``raw`` holds the bytes exactly as served (the digest is over them, or over the
    signed payload for schema1); ``json`` the decoded document.
    """

    media_type: str
    digest: str
    raw: bytes = field(repr=False)
    json: dict[str, Any] = field(repr=False, compare=False, hash=False)
    schema_version: int
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY, hash=False)
    subject: Descriptor | None = None
    artifact_type: str | None = None

    kind = "unknown"

    @property
    def size(self) -> int:
        """Bytes of the manifest document itself, as stored by the registry."""
        return len(self.raw)

    def descriptor(self) -> Descriptor:
        """A descriptor pointing at this manifest (for an index, a copy, a mount)."""
        return Descriptor(media_type=self.media_type, digest=self.digest, size=len(self.raw))


@dataclass(frozen=True, kw_only=True)
class ImageManifest(Manifest):
    """An OCI image manifest or a Docker v2 (schema2) manifest."""

    kind = "image"


@dataclass(frozen=True, kw_only=True)
class ImageIndex(Manifest):
    """An OCI image index or a Docker manifest list: ``manifests`` are its children."""

    kind = "index"


@dataclass(frozen=True, kw_only=True)
class Schema1Manifest(Manifest):
    """A Docker schema1 manifest. ``layers`` run base first and carry no sizes.

    ``history`` holds the decoded ``v1Compatibility`` documents in the same order as
    ``layers`` (base first); the last one describes the image (created, os, ...).
    """

    name: str = ""
    tag: str = ""
    architecture: str = ""
    history: tuple[Mapping[str, Any], ...] = field(default=(), repr=False, hash=False)
    signatures: tuple[Mapping[str, Any], ...] = field(default=(), repr=False, hash=False)

    kind = "schema1"

    @property
    def size(self) -> int:
        """Bytes the registry stores: the signed payload (the digest covers only it)."""
        return len(schema1_payload(self.raw))

    @property
    def image_config(self) -> Mapping[str, Any]:
        """The top ``v1Compatibility`` document: created, os, architecture of the image."""
        return self.history[-1] if self.history else _EMPTY


# ---------------------------------------------------------------- parsing helpers


def _fail(what: str) -> ManifestInvalid:
    return ManifestInvalid(f"invalid manifest: {what}")


def _str(doc: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(f"missing {key!r}")
        return None
    if not isinstance(value, str):
        raise _fail(f"{key!r} must be a string")
    return value


def _strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"{key!r} must be a list of strings")
    return tuple(value)


def _annotations(doc: Mapping[str, Any]) -> Mapping[str, str]:
    value = doc.get("annotations")
    if not value:
        return _EMPTY
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail("'annotations' must map strings to strings")
    return MappingProxyType(dict(value))


def _platform(value: Any) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail("'platform' must be an object")
    return Platform(
        os=_str(value, "os") or "",
        architecture=_str(value, "architecture") or "",
        variant=_str(value, "variant"),
        os_version=_str(value, "os.version"),
        os_features=_strings(value, "os.features"),
        features=_strings(value, "features"),
    )


def _digest_field(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{where} has no digest string")
    if _PLAIN_SHA256.fullmatch(value):
        return value
    try:
        return validate_digest(value)
    except InvalidReference as exc:
        raise _fail(f"{where}: {exc}") from None


def parse_descriptor(value: Any, *, where: str = "descriptor") -> Descriptor:
    """Parse one descriptor object; unknown media types are kept as they are."""
    if not isinstance(value, dict):
        raise _fail(f"{where} must be an object")
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _fail(f"{where} needs a non-negative integer 'size'")
    if value.keys() <= _PLAIN_DESCRIPTOR:  # no urls, annotations, platform ...: as below
        return Descriptor(media_type=_str(value, "mediaType"),
                          digest=_digest_field(value.get("digest"), where), size=size)
    return Descriptor(
        media_type=_str(value, "mediaType"),
        digest=_digest_field(value.get("digest"), where),
        size=size,
        urls=_strings(value, "urls"),
        annotations=_annotations(value),
        platform=_platform(value.get("platform")),
        artifact_type=_str(value, "artifactType"),
    )


def _descriptors(doc: Mapping[str, Any], key: str) -> tuple[Descriptor, ...]:
    value = doc.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(f"{key!r} must be a list")
    return tuple(parse_descriptor(v, where=f"{key}[{i}]") for i, v in enumerate(value))


def b64url_decode(text: Any) -> bytes:
    """Unpadded base64url (JOSE) to bytes; ManifestInvalid when it is not."""
    if not isinstance(text, str):
        raise _fail("schema1 signature fields must be base64url strings")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _fail("schema1 signature field is not base64url") from None


def signed_payload(raw: bytes, protected: Any) -> bytes:
    """The payload one libtrust signature covers: the first ``formatLength`` bytes of
    the pretty-printed document followed by ``formatTail``, both from its ``protected``
    header (libtrust cuts the ``signatures`` member out this way)."""
    header = json_object(b64url_decode(protected)) or {}
    length = header.get("formatLength")
    if "formatTail" not in header:
        raise _fail("schema1 'protected' header lacks formatLength/formatTail")
    tail = b64url_decode(header["formatTail"])
    if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= len(raw):
        raise _fail("schema1 formatLength out of range")
    return raw[:length] + tail


def schema1_payload(raw: bytes) -> bytes:
    """The signed payload of a schema1 "prettyjws" manifest: what its digest covers.
    Unsigned schema1 manifests are their own payload."""
    doc = json_object(raw)
    if doc is None:
        raise _fail("not a JSON object")
    signatures = doc.get("signatures")
    if not signatures:
        return raw
    if not isinstance(signatures, list) or not isinstance(signatures[0], dict):
        raise _fail("'signatures' must be a list of objects")
    return signed_payload(raw, signatures[0].get("protected"))


def manifest_digest(raw: bytes, *, algorithm: str = "sha256", schema1: bool = False) -> str:
    """The digest a registry gives these manifest bytes (schema1: of the signed payload)."""
    return str(Digest.of(schema1_payload(raw) if schema1 else raw, algorithm))


def _verified(raw: bytes, digest: str) -> str:
    """Check ``raw`` against ``digest`` before anything else reads it: a signed schema1
    manifest by its signed payload, everything else by its bytes. Bytes that are not
    even JSON any more fail here as a DigestMismatch, which is what they are."""
    if (isinstance(digest, str) and _PLAIN_SHA256.fullmatch(digest)
            and b'"signatures"' not in raw and hashlib.sha256(raw).hexdigest() == digest[7:]):
        return digest  # as nearly always: the bytes hash to what they were asked by
    expected = parse_digest(digest)
    payload = raw
    if b'"signatures"' in raw:
        try:
            payload = schema1_payload(raw)
        except ManifestInvalid:
            payload = raw
    verifier = DigestVerifier(expected)
    verifier.update(payload)
    verifier.verify()
    return str(expected)


def _is_schema1(doc: Mapping[str, Any], media_type: str | None) -> bool:
    return doc.get("schemaVersion") == 1 or mt.is_schema1(media_type)


def _schema1(doc: dict[str, Any], common: dict[str, Any]) -> Schema1Manifest:
    fs_layers = doc.get("fsLayers")
    history = doc.get("history") or []
    if not isinstance(fs_layers, list) or not isinstance(history, list):
        raise _fail("schema1 needs 'fsLayers' and 'history' lists")
    if history and len(history) != len(fs_layers):
        raise _fail("schema1 'history' and 'fsLayers' differ in length")
    layers = []
    for i, entry in enumerate(reversed(fs_layers)):  # schema1 lists the top layer first
        if not isinstance(entry, dict):
            raise _fail(f"fsLayers[{i}] must be an object")
        digest = _digest_field(entry.get("blobSum"), f"fsLayers[{i}]")
        layers.append(Descriptor(media_type=mt.DOCKER_LAYER, digest=digest, size=None))
    decoded = []
    for i, entry in enumerate(reversed(history)):
        v1 = entry.get("v1Compatibility") if isinstance(entry, dict) else None
        value = json_object(v1) if isinstance(v1, str) else None
        if value is None:
            raise _fail(f"history[{i}] needs a JSON 'v1Compatibility' object")
        decoded.append(MappingProxyType(value))
    signatures = doc.get("signatures") or []
    if not isinstance(signatures, list):
        raise _fail("'signatures' must be a list")
    return Schema1Manifest(
        **common,
        layers=tuple(layers),
        name=_str(doc, "name") or "",
        tag=_str(doc, "tag") or "",
        architecture=_str(doc, "architecture") or "",
        history=tuple(decoded),
        signatures=tuple(s for s in signatures if isinstance(s, dict)),
    )


def _type_by_shape(doc: Mapping[str, Any]) -> str:
    """The media type of a document that names none, served under no manifest type.
    Docker's formats must name theirs, so an unnamed one is OCI: an index when it
    lists manifests, an image manifest when it has a config (as containerd infers)."""
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    return ""


def parse_manifest(
    raw: bytes,
    *,
    content_type: str | None = None,
    digest: str | None = None,
) -> Manifest:
    """Parse manifest bytes as served into a frozen model.

    ``content_type`` is the response's Content-Type; a document whose ``mediaType``
    contradicts a manifest Content-Type is refused. Without ``mediaType``, the media
    type is the Content-Type's when that names a manifest type; when it does not
    (``application/json``), the document's shape tells (OCI index or image
    manifest), or it stays "".
    ``digest``, when given, is checked against the bytes (DigestMismatch); otherwise
    the sha256 digest is computed.

    Raises ManifestInvalid for anything that is not a well-formed manifest, including a
    document with both ``layers`` and ``manifests``.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise _fail("manifest must be bytes")
    raw = bytes(raw)
    if digest is not None:
        digest = _verified(raw, digest)  # before parsing: bad bytes are a mismatch
    doc = json_object(raw)
    if doc is None:
        raise _fail("not a JSON object")
    served = mt.manifest_type(content_type)
    declared = _str(doc, "mediaType")
    if declared and served and declared != served:
        raise _fail(f"mediaType {declared!r} contradicts Content-Type {served!r}")
    schema_version = doc.get("schemaVersion")
    if isinstance(schema_version, bool) or not isinstance(schema_version, int):
        raise _fail("missing integer 'schemaVersion'")
    if "layers" in doc and "manifests" in doc:
        raise _fail("has both 'layers' and 'manifests'")

    schema1 = _is_schema1(doc, declared or served)
    # A schema1 manifest's digest and size cover its signed payload: signatures that
    # do not say what that is are refused, asked by digest or not. (Asked by the digest
    # of its whole bytes, such a document parsed, and then its .size raised.)
    payload = schema1_payload(raw) if schema1 else raw
    if digest is None:
        digest = str(Digest.of(payload))

    common: dict[str, Any] = {"digest": digest, "raw": raw, "json": doc,
                              "schema_version": schema_version}
    if schema1:
        media_type = declared or (
            served if mt.is_schema1(served) else
            mt.DOCKER_SCHEMA1_SIGNED if doc.get("signatures") else mt.DOCKER_SCHEMA1
        )
        return _schema1(doc, {**common, "media_type": media_type})

    media_type = declared or served or _type_by_shape(doc)
    common.update(
        media_type=media_type,
        annotations=_annotations(doc),
        artifact_type=_str(doc, "artifactType"),
        subject=parse_descriptor(doc["subject"], where="subject") if doc.get("subject") else None,
    )
    if "manifests" in doc or mt.is_index(media_type):
        # One reading per document (CVE-2021-41190): an index holds no config, layers
        # or blobs, and no image manifest type names one. Else the same bytes are two
        # documents, and what one reading holds (an index's blobs) the other never sees.
        image_parts = sorted({"config", "layers", "blobs"} & doc.keys())
        if image_parts:
            raise _fail(f"an index (with 'manifests' or an index mediaType) has "
                        f"{image_parts[0]!r}")
        if mt.is_image_manifest(media_type):
            raise _fail(f"mediaType {media_type!r} names an image manifest, but the "
                        "document has 'manifests'")
        return ImageIndex(**common, manifests=_descriptors(doc, "manifests"))
    config = doc.get("config")
    if doc.get("layers") and doc.get("blobs"):  # one would go unread, unseen by a crawl
        raise _fail("has both 'layers' and 'blobs'")
    layers = _descriptors(doc, "layers") or _descriptors(doc, "blobs")  # "blobs": OCI artifact
    return ImageManifest(
        **common,
        config=parse_descriptor(config, where="config") if config is not None else None,
        layers=layers,
    )
