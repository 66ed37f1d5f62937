"""What a manifest is for, beyond images: signatures, attestations, SBOMs, other artifacts.

One table (:data:`MEDIA_ROLES`) maps the media types that cosign, sigstore, in-toto,
SPDX, CycloneDX, syft, Notation and Helm document to a role; :func:`classify` applies it
to a manifest's ``artifactType``, then its config media type, then its layers' media
types. The tag conventions that name a subject (cosign's ``sha256-<hex>.sig|.att|.sbom``
and the OCI 1.1 referrers fallback tag ``sha256-<hex>``) and buildx's attestation
annotations are here too: every supply-chain convention in one place. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from . import _mediatypes as mt

#: every role, in the order reports list them
ROLES = ("image", "index", "signature", "attestation", "sbom", "artifact")
#: roles whose manifests cleanup rules (keep_last, older_than) count and order
IMAGE_ROLES = frozenset({"image", "index"})

SIGNATURE, ATTESTATION, SBOM, ARTIFACT = "signature", "attestation", "sbom", "artifact"

#: documented media types -> role, whether they appear as ``artifactType``, as the
#: config media type or as a layer media type
MEDIA_ROLES: Mapping[str, str] = {
    # cosign: legacy ".sig" tags (simple signing payload) and OCI 1.1 referrers
    "application/vnd.dev.cosign.simplesigning.v1+json": SIGNATURE,
    "application/vnd.dev.cosign.artifact.sig.v1+json": SIGNATURE,
    # Notation (Notary Project) signatures
    "application/vnd.cncf.notary.signature": SIGNATURE,
    "application/vnd.cncf.notary.v2.signature": SIGNATURE,
    # in-toto statements (buildx attestation manifests) and DSSE envelopes (cosign ".att")
    "application/vnd.in-toto+json": ATTESTATION,
    "application/vnd.dsse.envelope.v1+json": ATTESTATION,
    "application/vnd.dev.cosign.artifact.att.v1+json": ATTESTATION,
    # SBOM documents: SPDX, CycloneDX, syft (cosign "attach sbom" and OCI 1.1 referrers)
    "application/spdx+json": SBOM,
    "application/spdx+xml": SBOM,
    "text/spdx": SBOM,
    "text/spdx+json": SBOM,
    "text/spdx+xml": SBOM,
    "application/vnd.cyclonedx": SBOM,
    "application/vnd.cyclonedx+json": SBOM,
    "application/vnd.cyclonedx+xml": SBOM,
    "application/vnd.syft+json": SBOM,
    "application/vnd.dev.cosign.artifact.sbom.v1+json": SBOM,
    # Helm charts: artifacts (a manifest no row names is one too, unless it is an image)
    "application/vnd.cncf.helm.config.v1+json": ARTIFACT,
    "application/vnd.cncf.helm.chart.content.v1.tar+gzip": ARTIFACT,
    "application/vnd.cncf.helm.chart.provenance.v1.prov": ARTIFACT,
}

#: a sigstore bundle holds a signature or an attestation: its predicate type tells
SIGSTORE_BUNDLE = re.compile(r"^application/vnd\.dev\.sigstore\.bundle(\.v[\d.]+)?\+json")
SIGSTORE_PREDICATE = "dev.sigstore.bundle.predicateType"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"

#: buildx marks an index entry that attests another entry with these annotations (read
#: by ``inventory._facts.buildx_subject``, which checks the digest)
BUILDX_REFERENCE_TYPE = "vnd.docker.reference.type"
BUILDX_REFERENCE_DIGEST = "vnd.docker.reference.digest"
BUILDX_ATTESTATION = "attestation-manifest"

_SUBJECT_TAG = re.compile(r"^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})(\.(sig|att|sbom))?$")


@dataclass(frozen=True)
class Role:
    """What a manifest is for: ``role`` (one of :data:`ROLES`) and ``artifact_type``
    (its ``artifactType``, else the media type that told its role; None for images
    and indexes)."""

    role: str
    artifact_type: str | None = None


def classify(*, kind: str, artifact_type: str | None, config_media_type: str | None,
             layer_media_types: Iterable[str | None],
             annotations: Mapping[str, str] | None = None) -> Role:
    """The role of a manifest, from its documented media types.

    Looked up in order: ``artifactType``, the config media type, each layer media
    type. A manifest none of them names is an ``index`` or ``image`` when it is one
    (an image config, or schema1), else an ``artifact`` (a Helm chart, a WASM module:
    its artifact type is its ``artifactType`` or its config media type).
    """
    for candidate in (artifact_type, config_media_type, *layer_media_types):
        role = _role_of(candidate, annotations or {})
        if role is not None:
            return Role(role, artifact_type or candidate)
    if kind == "index":
        return Role("artifact", artifact_type) if artifact_type else Role("index")
    if kind == "schema1" or (config_media_type in mt.IMAGE_CONFIGS and not artifact_type):
        return Role("image")
    named = artifact_type or (config_media_type if config_media_type != mt.OCI_EMPTY else None)
    return Role("artifact", named)


def _role_of(media_type: str | None, annotations: Mapping[str, str]) -> str | None:
    if not media_type:
        return None
    found = MEDIA_ROLES.get(media_type)
    if found is None and SIGSTORE_BUNDLE.match(media_type):
        signed = annotations.get(SIGSTORE_PREDICATE) in (None, COSIGN_SIGN_PREDICATE)
        found = SIGNATURE if signed else ATTESTATION
    return found


def subject_of_tag(tag: str) -> tuple[str, str] | None:
    """The digest a tag names by convention, and which convention: cosign's
    ``sha256-<hex>.sig|.att|.sbom`` ("cosign tag") or the OCI 1.1 referrers fallback
    ``sha256-<hex>`` ("fallback tag"); None for any other tag."""
    found = _SUBJECT_TAG.match(tag)
    if found is None:
        return None
    digest = found.group(1).replace("-", ":", 1)
    return digest, ("cosign tag" if found.group(3) else "fallback tag")
