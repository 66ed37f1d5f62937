"""The write half of the registry client: blob uploads, mounts, manifest PUT, DELETE.

Mixed into :class:`reginsight.Registry`; it sends through the same I/O shell
(``_send``), so auth, caps and typed errors are shared with the read half.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from typing import IO, Any

import httpx

from . import _protocol as proto
from ._auth import repository_scope
from ._digest import Digest, DigestVerifier, parse_digest, validate_digest
from ._errors import (
    DigestMismatch,
    InvalidReference,
    ManifestInvalid,
    ProtocolViolation,
    RegistryError,
    RegistryUnreachable,
    ResponseError,
    TooLarge,
    UnsupportedOperation,
)
from ._manifest import Manifest, parse_manifest
from ._reference import validate_repository, validate_tag

#: Blobs up to this size (and all in-memory bytes up to it) go in one PUT.
MONOLITHIC_LIMIT = 16 * 1024 * 1024
#: Chunk size of PATCH uploads: memory stays near one chunk whatever the blob size.
CHUNK_SIZE = 8 * 1024 * 1024
#: Attempts per chunk when the connection drops mid-upload (resumed from Range).
CHUNK_ATTEMPTS = 3

BlobSource = bytes | bytearray | memoryview | IO[bytes]


def _push(repository: str) -> tuple[str, ...]:
    return (repository_scope(repository, "pull", "push"),)


def _read_full(stream: IO[bytes], size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads (pipes, sockets, BlobReader)."""
    parts, wanted = [], size
    while wanted:
        part = stream.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def _range_end(response: httpx.Response) -> int | None:
    """The last byte offset a ``Range: 0-N`` header reports (None without one)."""
    value = response.headers.get("range", "")
    _, sep, end = value.partition("-")
    if not sep or not end.strip().isdigit():
        return None
    return int(end)


class Writes:
    """Write operations of :class:`reginsight.Registry`."""

    url: str

    # ------------------------------------------------------------ blobs

    def upload_blob(
        self, repository: str, data: BlobSource, digest: str | None = None,
        *, chunk_size: int = CHUNK_SIZE,
    ) -> str:
        """Upload a blob from bytes or a binary file object; return its digest.

        Skips the upload when the registry already has the blob. Small blobs go in
        one PUT; large or unknown-size streams in PATCH chunks of ``chunk_size``,
        resumed from the registry's ``Range`` when a connection drops. The digest is
        computed while streaming and checked against ``digest`` (DigestMismatch,
        upload cancelled) before the registry verifies it again.
        """
        validate_repository(repository)
        expected = parse_digest(digest) if digest is not None else None
        algorithm = expected.algorithm if expected else "sha256"
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data)
            actual = Digest.of(data, algorithm)
            if expected is not None and actual != expected:
                raise DigestMismatch(f"upload to {repository}: data is not {expected}",
                                     expected=str(expected), actual=str(actual))
            if self.has_blob(repository, str(actual)):
                return str(actual)
            if len(data) <= MONOLITHIC_LIMIT:
                location = self._start_upload(repository)
                return self._finish_upload(repository, location, actual, body=data)
            return self._chunked_upload(repository, io.BytesIO(data), actual, chunk_size)
        if not hasattr(data, "read"):
            raise TypeError("upload_blob takes bytes or a binary file object")
        if expected is None and _seekable(data):
            # hash a seekable file first: an existing blob is then never sent
            start, verifier = data.tell(), DigestVerifier(Digest.of(b"", algorithm))
            while chunk := data.read(chunk_size):
                verifier.update(chunk)
            data.seek(start)
            expected = verifier.actual
        if expected is not None and self.has_blob(repository, str(expected)):
            return str(expected)
        return self._chunked_upload(repository, data, expected, chunk_size,
                                    algorithm=algorithm)

    def _start_upload(self, repository: str) -> str:
        path = f"/v2/{validate_repository(repository)}/blobs/uploads/"
        with self._send("POST", path, scope=_push(repository)) as response:
            return self._location(response)

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise ProtocolViolation(
                f"{response.request.method} {proto.redact(str(response.url))}: no Location"
            )
        # relative or absolute; the _state query must survive untouched
        return str(response.url.join(location))

    def _chunked_upload(
        self, repository: str, stream: IO[bytes], expected: Digest | None, chunk_size: int,
        *, algorithm: str = "sha256",
    ) -> str:
        location = self._start_upload(repository)
        verifier = DigestVerifier(expected or Digest.of(b"", algorithm))
        offset = 0
        try:
            while chunk := _read_full(stream, chunk_size):
                verifier.update(chunk)
                location, offset = self._patch(repository, location, chunk, offset)
            actual = verifier.actual
            if expected is not None and actual != expected:
                raise DigestMismatch(
                    f"upload to {repository}: {offset} bytes read hash to {actual}, "
                    f"not {expected}", expected=str(expected), actual=str(actual))
            return self._finish_upload(repository, location, actual, body=b"")
        except BaseException:
            self._cancel_upload(repository, location)
            raise

    def _patch(self, repository: str, location: str, chunk: bytes, offset: int) -> tuple[str, int]:
        """Send ``chunk`` at ``offset``; resume from the registry's Range after a drop."""
        sent = 0
        for attempt in range(CHUNK_ATTEMPTS):
            rest = chunk[sent:]
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Range": f"{offset + sent}-{offset + len(chunk) - 1}"}
            try:
                with self._send("PATCH", location, scope=_push(repository), headers=headers,
                                content=rest) as response:
                    location = self._location(response)
                    end = _range_end(response)
            except RegistryUnreachable as exc:
                if attempt == CHUNK_ATTEMPTS - 1:
                    raise
                try:  # where did the registry get to? (2.8 cannot say once it moved on)
                    location, end = self._upload_status(repository, location)
                except ResponseError:
                    raise exc from None
            accepted = offset + len(chunk) if end is None else end + 1
            if accepted > offset + len(chunk) or accepted < offset:
                raise ProtocolViolation(
                    f"upload to {repository}: registry reports offset {accepted}, "
                    f"expected at most {offset + len(chunk)}")
            sent = accepted - offset
            if sent == len(chunk):
                return location, accepted
        raise ProtocolViolation(f"upload to {repository}: chunk at {offset} never accepted")

    def _upload_status(self, repository: str, location: str) -> tuple[str, int | None]:
        with self._send("GET", location, scope=_push(repository)) as response:
            return self._location(response), _range_end(response)

    def _finish_upload(self, repository: str, location: str, digest: Digest, *,
                       body: bytes) -> str:
        url = str(httpx.URL(location).copy_add_param("digest", str(digest)))
        headers = {"Content-Type": "application/octet-stream"}
        try:
            with self._send("PUT", url, scope=_push(repository), headers=headers,
                            content=body) as response:
                announced = response.headers.get(proto.DOCKER_CONTENT_DIGEST)
        except ResponseError as exc:
            if "DIGEST_INVALID" in exc.codes:
                raise DigestMismatch(f"registry refused {digest} for the bytes sent: {exc}",
                                     expected=str(digest), actual="unknown") from None
            raise
        if announced and announced.strip() != str(digest):
            raise DigestMismatch(f"registry stored {announced} for {digest}",
                                 expected=str(digest), actual=announced.strip())
        return str(digest)

    def _cancel_upload(self, repository: str, location: str) -> None:
        # best effort: the error that made us cancel is the one worth raising
        with contextlib.suppress(RegistryError), self._send(
            "DELETE", location, scope=_push(repository), check=False
        ):
            pass

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Mount a blob from another repository of this registry without sending it.

        True when mounted (201). False when the registry opened an upload session
        instead (202): that session is cancelled, never leaked.
        """
        digest = validate_digest(digest)
        params = httpx.QueryParams({"mount": digest, "from": validate_repository(from_repository)})
        path = f"/v2/{validate_repository(repository)}/blobs/uploads/?{params}"
        scope = (*_push(repository), repository_scope(from_repository, "pull"))
        with self._send("POST", path, scope=scope) as response:
            if response.status_code == 201:
                return True
            location = self._location(response)
        self._cancel_upload(repository, location)
        return False

    # ------------------------------------------------------------ manifests

    def put_manifest(
        self, repository: str, reference: str, manifest: Manifest | Mapping[str, Any] | bytes,
        media_type: str | None = None,
    ) -> str:
        """Store a manifest under a tag (or its digest); return the digest.

        ``manifest`` is a model (its bytes are sent unchanged), a dict (sent as JSON)
        or raw bytes. The Content-Type is ``media_type`` or the document's own
        ``mediaType``; they must agree. The registry's digest is checked against the
        bytes sent (for signed schema1: the signed payload).
        """
        raw = _manifest_bytes(manifest)
        if len(raw) > proto.MANIFEST_LIMIT:
            raise TooLarge(f"manifest of {len(raw)} bytes exceeds the 4 MiB registries accept")
        by_digest = ":" in reference
        if not by_digest:
            validate_tag(reference)
        # by digest, the bytes must hash to it (DigestMismatch before anything is sent)
        parsed = parse_manifest(raw, content_type=media_type,
                                digest=reference if by_digest else None)
        content_type = media_type or parsed.media_type
        if not content_type:
            raise ManifestInvalid("manifest has no mediaType; pass media_type=")
        path = proto.manifest_path(repository, reference)
        with self._send("PUT", path, scope=_push(repository),
                        headers={"Content-Type": content_type}, content=raw) as response:
            announced = response.headers.get(proto.DOCKER_CONTENT_DIGEST, "").strip()
        if announced and announced != parsed.digest:
            raise DigestMismatch(
                f"registry stored {announced} for a manifest whose digest is {parsed.digest}",
                expected=parsed.digest, actual=announced)
        return parsed.digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete the manifest ``digest``: every tag pointing at it goes with it.

        Only digests are accepted (registry 2.8 refuses tags here); to remove one tag
        and nothing else, use :func:`reginsight.delete_tag`. A registry with deletion
        disabled answers 405: UnsupportedOperation.
        """
        if not isinstance(digest, str) or ":" not in digest:
            raise InvalidReference(
                f"delete_manifest takes a digest, not {str(digest)[:80]!r}; "
                "use reginsight.delete_tag to remove a tag")
        path = proto.manifest_path(repository, validate_digest(digest))
        self._delete(repository, path)

    def untag(self, repository: str, tag: str) -> None:
        """Remove one tag only, by the OCI ``DELETE /manifests/<tag>``.

        Registries without it (Distribution 2.8 answers 400 DIGEST_INVALID) raise
        UnsupportedOperation; nothing is deleted then.
        """
        path = proto.manifest_path(repository, validate_tag(tag))
        try:
            self._delete(repository, path)
        except ResponseError as exc:
            if exc.status == 400 and "DIGEST_INVALID" in exc.codes:
                raise UnsupportedOperation(
                    f"{self.url} does not delete by tag (OCI tag DELETE): {exc}",
                    status=exc.status, url=exc.url, errors=exc.errors) from None
            raise

    def _delete(self, repository: str, path: str) -> None:
        scope = (repository_scope(repository, "delete"),)
        with self._send("DELETE", path, scope=scope):
            pass


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _manifest_bytes(manifest: Manifest | Mapping[str, Any] | bytes) -> bytes:
    if isinstance(manifest, Manifest):
        return manifest.raw
    if isinstance(manifest, bytes | bytearray | memoryview):
        return bytes(manifest)
    if isinstance(manifest, Mapping):
        return json.dumps(manifest, indent=3).encode()
    raise TypeError("manifest must be a reginsight Manifest, a dict or bytes")
