"""Manifest verbs: GET, HEAD, PUT, DELETE by digest, and the OCI tag DELETE (untag)."""

from __future__ import annotations

from ..._errors import (
    InvalidReference,
    ManifestInvalid,
    ProtocolViolation,
    ResponseError,
    TooLarge,
    UnsupportedOperation,
)
from ..._mediatypes import MANIFEST_ACCEPT, manifest_type
from .._digest import is_digest, validate_digest
from .._manifest import Descriptor, Manifest, parse_manifest
from .._reference import validate_tag
from ._message import Answer, Request, check, decimal
from ._paths import manifest_path
from ._scopes import delete_scope, pull_scope, push_scope
from ._stored import check_stored

#: Manifests over 4 MiB are refused, as the distribution registry itself does.
MANIFEST_LIMIT = 4 * 1024 * 1024
DOCKER_CONTENT_DIGEST = "docker-content-digest"

# Every manifest media type: without it registry 2.8 rewrites Docker v2 manifests
# into schema1 (another digest), answers 404 for OCI manifests and serves one child.
_ACCEPT = {"Accept": MANIFEST_ACCEPT}


def announced_digest(answer: Answer) -> str | None:
    """The ``Docker-Content-Digest`` the registry sent, validated; None without one."""
    value = answer.header(DOCKER_CONTENT_DIGEST)
    if not value:
        return None
    try:
        return validate_digest(value)
    except InvalidReference:
        raise ProtocolViolation(
            f"the registry sent an invalid Docker-Content-Digest: {value[:80]!r}") from None


def get_manifest(repository: str, reference: str) -> Request:
    return Request(method="GET", url=manifest_path(repository, reference), headers=_ACCEPT,
                   scope=pull_scope(repository), limit=MANIFEST_LIMIT, pull=True)


def interpret_manifest(answer: Answer, reference: str) -> Manifest:
    """The manifest as a frozen model, its bytes checked against the digest asked for,
    or else the ``Docker-Content-Digest`` the registry announced."""
    check(answer)
    expected = reference if is_digest(reference) else announced_digest(answer)
    return parse_manifest(answer.body, content_type=answer.headers.get("content-type"),
                          digest=expected)


def head_manifest(repository: str, reference: str) -> Request:
    return Request(method="HEAD", url=manifest_path(repository, reference), headers=_ACCEPT,
                   scope=pull_scope(repository), limit=None, fallback=True)


def interpret_manifest_head(answer: Answer) -> Descriptor | None:
    """Digest, size and media type from a HEAD; None when the registry did not say
    the digest or the size (ask with GET then)."""
    check(answer)
    digest = announced_digest(answer)
    length = decimal(answer.header("content-length"))
    if digest is None or length is None:
        return None
    # a Content-Type naming no manifest type (application/json) says nothing: unknown
    return Descriptor(media_type=manifest_type(answer.headers.get("content-type")),
                      digest=digest, size=length)


def put_manifest(repository: str, reference: str, raw: bytes, media_type: str | None
                 ) -> tuple[Request, Manifest]:
    """The PUT, and the manifest as parsed from ``raw`` (its digest is what the
    registry must answer). By digest, ``raw`` must hash to it: checked before sending."""
    if len(raw) > MANIFEST_LIMIT:
        raise TooLarge(f"manifest of {len(raw)} bytes exceeds the 4 MiB registries accept")
    by_digest = is_digest(reference)
    if not by_digest:
        validate_tag(reference)
    parsed = parse_manifest(raw, content_type=media_type, digest=reference if by_digest else None)
    # a type naming no manifest (one read from a registry that served application/json)
    # would be refused: send what the document is
    content_type = manifest_type(media_type) or parsed.media_type or media_type
    if not content_type:
        raise ManifestInvalid("manifest has no mediaType; pass media_type=")
    request = Request(method="PUT", url=manifest_path(repository, reference),
                      headers={"Content-Type": content_type}, scope=push_scope(repository),
                      content=raw)
    return request, parsed


def interpret_put_manifest(answer: Answer, parsed: Manifest, *, what: str = "manifest"
                           ) -> str:
    """The digest stored; DigestMismatch when the registry names another as stored
    (:func:`check_stored`; ``what`` names the write in its message). A schema1
    manifest refused as a type the registry does not know (Distribution 3) raises
    UnsupportedOperation saying so."""
    try:
        check(answer)
    except ResponseError as exc:
        if parsed.kind == "schema1" and _no_schema1(exc):
            raise UnsupportedOperation(
                f"{exc}: this registry does not take schema1 manifests (Distribution 3, "
                "the registry:3 image, dropped schema1: it knows no schema1 media type); "
                "push the image as Docker v2 or OCI (skopeo copy --format v2s2 converts "
                "it), or to a registry that still accepts schema1 (Distribution 2.8 with "
                "compatibility.schema1.enabled)",
                status=exc.status, url=exc.url, errors=exc.errors) from None
        raise
    return check_stored(answer, parsed.digest, what)


#: What Distribution 3 says of a manifest type it has no handler for (v3.0.0's
#: manifests.go: "unsupported manifest media type and no default available: <type>").
_UNKNOWN_TYPE = "unsupported manifest media type"


def _no_schema1(error: ResponseError) -> bool:
    """Is ``error`` a registry's refusal of the schema1 type itself (not of a bad
    manifest): 400 MANIFEST_INVALID with Distribution 3's unknown-type detail."""
    return error.status == 400 and any(
        e.code == "MANIFEST_INVALID" and isinstance(e.detail, str) and _UNKNOWN_TYPE in e.detail
        for e in error.errors)


def delete_manifest(repository: str, digest: str) -> Request:
    """DELETE by digest: every tag on that digest goes with it. Tags are refused here."""
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidReference(
            f"delete_manifest takes a digest, not {str(digest)[:80]!r}; "
            "use reginsight.delete_tag to remove a tag")
    return Request(method="DELETE", url=manifest_path(repository, validate_digest(digest)),
                   scope=delete_scope(repository))


def interpret_delete(answer: Answer) -> None:
    check(answer)


def untag(repository: str, tag: str) -> Request:
    """The OCI tag DELETE: ``DELETE /manifests/<tag>`` removes that tag only."""
    return Request(method="DELETE", url=manifest_path(repository, validate_tag(tag)),
                   scope=delete_scope(repository))


def interpret_untag(answer: Answer, *, registry: str) -> None:
    """Registries without the tag DELETE raise UnsupportedOperation; nothing was
    deleted then. The OCI spec has them answer 400 or 405 (Distribution 2.8: 400
    DIGEST_INVALID; Harbor: 400 UNSUPPORTED; a registry with every deletion disabled
    answers 405 here too, and again to the DELETE by digest)."""
    try:
        check(answer)
    except ResponseError as exc:
        if exc.status in (400, 405):
            raise UnsupportedOperation(
                f"{registry} does not delete by tag (OCI tag DELETE): {exc}",
                status=exc.status, url=exc.url, errors=exc.errors) from None
        raise
