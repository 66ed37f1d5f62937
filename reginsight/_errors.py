"""The one exception hierarchy of reginsight.

Every error reginsight raises derives from :class:`ReginsightError`, and every one of
them is defined here. ``RegistryError`` is the same class under its first name, so
``except ri.RegistryError`` keeps catching everything it caught before::

    ReginsightError (= RegistryError)
    ├── InvalidReference        a repository name, tag or reference breaks the grammar
    ├── InvalidDigest           a digest string is malformed or uses an unknown algorithm
    ├── PlanError               a cleanup rule, plan or tag selection cannot be understood
    ├── InventoryError          a saved inventory is missing, incomplete or not an inventory
    ├── CleanupStopped          the registry refused deletions; ``result`` holds what was done
    ├── OtherTagsAffected       deleting a tag's digest would take tags nobody chose
    ├── TagMoved                a tag no longer points at the digest it was checked against
    ├── BreaksIndex             a deletion would take a platform out of a tagged index
    ├── ManifestInvalid         a manifest document cannot be parsed
    ├── SignatureInvalid        a schema1 signature is missing, malformed or does not verify
    ├── DigestMismatch          bytes received do not hash to the digest expected
    ├── TooLarge                a body exceeds the size reginsight will read
    ├── ProtocolViolation       the server broke the protocol (foreign Link, bad header, ...)
    │   ├── UnsafeAddress           a request would go to a metadata, link-local or foreign address
    │   └── ListingTooLong          a paginated listing went past its page or time bound
    ├── CredentialsError        docker config or a credential helper could not be read
    ├── NotARegistry            the URL answers, but not as a registry API V2
    ├── RegistryUnreachable     connection refused, DNS failure, TLS failure, timeout
    │   └── DeadlineExceeded        an answer too slow: past its deadline, below its minimum rate
    └── ResponseError           the registry answered with an error status
        ├── AuthenticationError     401: missing or wrong credentials
        ├── PermissionDenied        403
        ├── NotFound                404 (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN, ...)
        ├── UnsupportedOperation    405 (e.g. deletion disabled)
        │   └── CatalogUnavailable      /v2/_catalog refused: repositories must be named
        └── RateLimited             429

One warning: ``RateLimitWarning``, when a metered registry's pull budget runs out.

Messages name the registry URL and never a credential. Errors that come from a
response keep the HTTP status and the registry's error entries (``errors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of a registry error body: ``{"code", "message", "detail"}``."""

    code: str
    message: str = ""
    detail: object = None


class ReginsightError(Exception):
    """Base class of every error reginsight raises."""


#: The base's first name, kept so that ``except RegistryError`` catches what it did.
RegistryError = ReginsightError


class InvalidReference(RegistryError, ValueError):
    """A repository name, tag, digest reference or image reference is malformed."""


class InvalidDigest(InvalidReference):
    """A digest is malformed or uses an algorithm reginsight cannot verify."""


class PlanError(RegistryError, ValueError):
    """A cleanup rule, plan or tag selection cannot be understood (``older_than="soon"``,
    a plan without its columns)."""


class PullRecordsInvalid(RegistryError, ValueError):
    """Pull records cannot be read: a source that is neither a registry log, the
    listener's event folder nor a frame of pull columns; a frame missing a column."""


class ManifestInvalid(RegistryError):
    """A manifest document cannot be parsed into a model."""


class SignatureInvalid(RegistryError):
    """A schema1 manifest's signature is missing, malformed or does not verify."""


class InventoryError(RegistryError):
    """A saved inventory is missing, incomplete or not an inventory."""


class CollectorsDiffer(InventoryError):
    """The two garbage collectors would do different things to this storage and the
    caller did not say which one the registry runs (``collector=``). ``outcomes``:
    by collector name, what each would do (a frame) or its CollectorWouldStop."""

    def __init__(self, message: str, *, outcomes: dict[str, object]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


class CollectorWouldStop(InventoryError):
    """The chosen garbage collector would stop on this storage before deleting
    anything: ``reason`` says where."""

    def __init__(self, message: str, *, collector: str, reason: str) -> None:
        super().__init__(message)
        self.collector, self.reason = collector, reason


class CleanupStopped(RegistryError):
    """A cleanup stopped before its end: the registry refused a deletion in a way that
    makes going on pointless (405: deletion disabled; ``interrupted`` False), or the
    user interrupted it (Ctrl-C; ``interrupted`` True). ``result`` holds the frame of
    what was done up to then."""

    def __init__(self, message: str, *, result: Any, interrupted: bool = False) -> None:
        super().__init__(message)
        self.result = result
        self.interrupted = interrupted


class OtherTagsAffected(RegistryError):
    """Deleting the digest behind a tag would also remove tags nobody chose."""

    def __init__(self, message: str, *, tags: tuple[str, ...]) -> None:
        super().__init__(message)
        self.tags = tags


class TagMoved(RegistryError):
    """A tag no longer points at the digest it was checked against."""


class BreaksIndex(RegistryError):
    """Deleting a manifest would break a tagged index that references it (a platform
    of a multi-arch image, at any depth). ``indexes``: the tags of those indexes."""

    def __init__(self, message: str, *, indexes: tuple[str, ...]) -> None:
        super().__init__(message)
        self.indexes = indexes


class DigestMismatch(RegistryError):
    """Received bytes do not hash to the digest they were asked for or announced as."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class TooLarge(RegistryError):
    """A body is larger than reginsight agrees to read."""


class ProtocolViolation(RegistryError):
    """The server broke the protocol: a Link to another host, a malformed header, ..."""


class UnsafeAddress(ProtocolViolation):
    """A request would reach an address registry traffic must not: a cloud metadata
    service, a link-local host, a token realm that downgrades https or leaves the
    registry's network."""


class ListingTooLong(ProtocolViolation):
    """A paginated listing (catalog, tags, referrers) went past a bound before its last
    page: ``bound`` is ``"pages"`` (``Registry(max_pages=)``) or ``"time"``
    (``Registry(listing_time=)``); ``pages`` and ``entries`` say how far it got. An
    endless ``Link`` chain ends here; what was read is not returned as if whole."""

    def __init__(self, message: str, *, bound: str, pages: int, entries: int) -> None:
        super().__init__(message)
        self.bound = bound
        self.pages = pages
        self.entries = entries


class CredentialsError(RegistryError):
    """Docker's config file or a credential helper failed (not: no credentials found)."""


class NotARegistry(RegistryError):
    """The URL answers HTTP, but not as a Docker Registry HTTP API V2 / OCI Distribution."""


class RegistryUnreachable(RegistryError):
    """The registry could not be reached: refused connection, DNS, TLS or timeout."""


class DeadlineExceeded(RegistryUnreachable):
    """The registry answered too slowly: an answer read whole (its status line,
    headers and body) did not end within its deadline (``Registry(deadline=)``), or a
    streamed download fell below its minimum rate (``Registry(min_rate=)``). A
    dripping server ends here instead of holding the caller for as long as it likes."""


class ResponseError(RegistryError):
    """The registry answered with an error status.

    ``status`` is the HTTP status, ``errors`` the parsed registry error entries
    (possibly empty), ``url`` the request URL without credentials.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        url: str,
        errors: tuple[ErrorDetail, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.errors = errors

    @property
    def codes(self) -> tuple[str, ...]:
        """The registry error codes, e.g. ``("MANIFEST_UNKNOWN",)``."""
        return tuple(error.code for error in self.errors)


class AuthenticationError(ResponseError):
    """401: the registry wants credentials, or refused the ones given."""


class PermissionDenied(ResponseError):
    """403: authenticated, but not allowed."""


class NotFound(ResponseError):
    """404: unknown repository, manifest, tag or blob."""


class UnsupportedOperation(ResponseError):
    """405: the registry does not allow this operation (e.g. deletion disabled)."""


class CatalogUnavailable(UnsupportedOperation):
    """``/v2/_catalog`` is refused (Docker Hub, GHCR, GitLab answer 401, 404 or 405):
    repositories must be named, they cannot be listed. ``status`` is the answer's."""


class RateLimited(ResponseError):
    """429: too many requests. ``retry_after`` is in seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RateLimitWarning(UserWarning):
    """A metered registry's pull budget ran out: manifest GETs will be refused until it
    is back; reginsight goes on with what is not counted (HEADs, blob downloads)."""
