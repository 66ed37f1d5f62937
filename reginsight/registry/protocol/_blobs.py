"""Blob verbs: HEAD and GET (resumed with Range), the upload session (start, PATCH
a chunk, ask how far it got, finish, cancel) and the cross-repository mount."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin

from ..._errors import DigestMismatch, ProtocolViolation, ResponseError
from .._digest import Digest, validate_digest
from .._reference import validate_repository
from ._message import Answer, ErrorCode, Request, check, decimal
from ._paths import blob_path, uploads_path, with_query
from ._scopes import pull_scope, push_scope, repository_scope
from ._stored import check_stored

_OCTETS = "application/octet-stream"


# ------------------------------------------------------------------ reading


def head_blob(repository: str, digest: str) -> Request:
    return Request(method="HEAD", url=blob_path(repository, validate_digest(digest)),
                   scope=pull_scope(repository), limit=None)


def interpret_has_blob(answer: Answer) -> bool:
    """True if the blob exists in (is linked into) the repository; 404: False."""
    if answer.status == 404:
        return False
    check(answer)
    return True


def interpret_blob_size(answer: Answer) -> int:
    """The blob's size from a HEAD's ``Content-Length``."""
    check(answer)
    length = decimal(answer.header("content-length"))
    if length is None:
        raise ProtocolViolation(f"{answer.where}: no Content-Length")
    return length


def get_blob(repository: str, digest: str, *, offset: int = 0) -> Request:
    """GET a blob, streamed (no limit); from ``offset`` with ``Range`` when resuming.
    ``identity``: the digest and Range offsets count stored bytes, not decoded ones."""
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return Request(method="GET", url=blob_path(repository, validate_digest(digest)),
                   headers=headers, scope=pull_scope(repository), limit=None)


def interpret_blob_start(answer: Answer) -> int | None:
    """Check the head of a blob download; the size announced, if any."""
    check(answer)
    return decimal(answer.header("content-length"))


def resume_skip(answer: Answer, offset: int) -> int:
    """How many leading bytes of a resumed download to drop: none when the registry
    honoured ``Range`` from ``offset`` (206), all ``offset`` when it sent the whole blob."""
    check(answer)
    ranged = answer.header("content-range")
    return 0 if answer.status == 206 and ranged.startswith(f"bytes {offset}-") else offset


# ------------------------------------------------------------------ uploading


@dataclass(frozen=True)
class UploadProgress:
    """Where an upload session stands: the URL to send to next, and the last byte
    offset the registry holds (None when it did not say)."""

    location: str
    end: int | None


def location(answer: Answer) -> str:
    """The upload session's next URL: ``Location`` resolved against the request
    (relative or absolute; its ``_state`` query kept byte for byte)."""
    value = answer.header("location")
    if not value:
        raise ProtocolViolation(f"{answer.where}: no Location")
    return urljoin(answer.url, value)


def range_end(answer: Answer) -> int | None:
    """The last byte offset a ``Range: 0-N`` header reports (None without one)."""
    _, sep, end = answer.header("range").partition("-")
    return decimal(end) if sep else None


def start_upload(repository: str) -> Request:
    return Request(method="POST", url=uploads_path(repository), scope=push_scope(repository))


def interpret_start_upload(answer: Answer) -> str:
    """The session's URL."""
    check(answer)
    return location(answer)


def patch_chunk(repository: str, session: str, chunk: bytes, offset: int) -> Request:
    """Send ``chunk`` as the bytes from ``offset`` on."""
    headers = {"Content-Type": _OCTETS,
               "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
    return Request(method="PATCH", url=session, headers=headers, scope=push_scope(repository),
                   content=chunk)


def interpret_patch(answer: Answer) -> UploadProgress:
    check(answer)
    return UploadProgress(location(answer), range_end(answer))


def accepted_offset(progress: UploadProgress, *, offset: int, length: int,
                    repository: str) -> int:
    """The offset the registry has reached after a chunk of ``length`` bytes was sent
    from ``offset``; a registry that claims more than was sent, or less than it held
    before, breaks the protocol."""
    accepted = offset + length if progress.end is None else progress.end + 1
    if accepted > offset + length or accepted < offset:
        raise ProtocolViolation(
            f"upload to {repository}: registry reports offset {accepted}, "
            f"expected at most {offset + length}")
    return accepted


def upload_status(repository: str, session: str) -> Request:
    """Ask how far an upload got (after a PATCH whose answer was lost)."""
    return Request(method="GET", url=session, scope=push_scope(repository))


def interpret_upload_status(answer: Answer) -> UploadProgress:
    check(answer)
    return UploadProgress(location(answer), range_end(answer))


def finish_upload(repository: str, session: str, digest: Digest, body: bytes = b"") -> Request:
    """Close the session with the blob's digest (and its last bytes, or all of them)."""
    return Request(method="PUT", url=with_query(session, digest=str(digest)),
                   headers={"Content-Type": _OCTETS}, scope=push_scope(repository),
                   content=body)


def interpret_finish_upload(answer: Answer, digest: Digest, *, what: str = "blob upload"
                            ) -> str:
    """The digest stored. The registry hashing the bytes to something else
    (DIGEST_INVALID), or naming another digest as stored (:func:`check_stored`), is a
    DigestMismatch; ``what`` names the write in its message."""
    try:
        check(answer)
    except ResponseError as exc:
        if ErrorCode.DIGEST_INVALID in exc.codes:
            raise DigestMismatch(f"registry refused {digest} for the bytes sent: {exc}",
                                 expected=str(digest), actual="unknown") from None
        raise
    return check_stored(answer, str(digest), what)


def cancel_upload(repository: str, session: str) -> Request:
    return Request(method="DELETE", url=session, scope=push_scope(repository))


@dataclass(frozen=True)
class MountResult:
    """``mounted``; otherwise the registry opened an upload ``session`` instead (202),
    which must be cancelled."""

    mounted: bool
    session: str | None = None


def mount_blob(repository: str, digest: str, from_repository: str) -> Request:
    digest = validate_digest(digest)
    url = with_query(uploads_path(repository), mount=digest,
                     **{"from": validate_repository(from_repository)})
    return Request(method="POST", url=url,
                   scope=(*push_scope(repository), repository_scope(from_repository, "pull")))


def interpret_mount(answer: Answer, digest: str | None = None, *, what: str = "mount"
                    ) -> MountResult:
    """Mounted (201: checked to name no other digest than ``digest`` as stored), or
    the upload session the registry opened instead (202)."""
    check(answer)
    if answer.status == 201:
        if digest is not None:
            check_stored(answer, digest, what)
        return MountResult(True)
    return MountResult(False, location(answer))

