"""The one exception hierarchy of reginsight.

Every error the public API raises derives from :class:`RegistryError`::

    RegistryError
    ├── InvalidReference        a repository name, tag or reference breaks the grammar
    ├── InvalidDigest           a digest string is malformed or uses an unknown algorithm
    ├── PlanError               a cleanup rule, plan or tag selection cannot be understood
    ├── ManifestInvalid         a manifest document cannot be parsed
    ├── DigestMismatch          bytes received do not hash to the digest expected
    ├── TooLarge                a body exceeds the size reginsight will read
    ├── ProtocolViolation       the server broke the protocol (foreign Link, bad header, ...)
    │   └── UnsafeAddress           a request would go to a metadata, link-local or foreign address
    ├── CredentialsError        docker config or a credential helper could not be read
    ├── NotARegistry            the URL answers, but not as a registry API V2
    ├── RegistryUnreachable     connection refused, DNS failure, TLS failure, timeout
    └── ResponseError           the registry answered with an error status
        ├── AuthenticationError     401: missing or wrong credentials
        ├── PermissionDenied        403
        ├── NotFound                404 (MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN, ...)
        ├── UnsupportedOperation    405 (e.g. deletion disabled)
        └── RateLimited             429

Messages name the registry URL and never a credential. Errors that come from a
response keep the HTTP status and the registry's error entries (``errors``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of a registry error body: ``{"code", "message", "detail"}``."""

    code: str
    message: str = ""
    detail: object = None


class RegistryError(Exception):
    """Base class of every error reginsight raises."""


class InvalidReference(RegistryError, ValueError):
    """A repository name, tag, digest reference or image reference is malformed."""


class InvalidDigest(InvalidReference):
    """A digest is malformed or uses an algorithm reginsight cannot verify."""


class PlanError(RegistryError, ValueError):
    """A cleanup rule, plan or tag selection cannot be understood (``older_than="soon"``,
    a plan without its columns)."""


class ManifestInvalid(RegistryError):
    """A manifest document cannot be parsed into a model."""


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


class CredentialsError(RegistryError):
    """Docker's config file or a credential helper failed (not: no credentials found)."""


class NotARegistry(RegistryError):
    """The URL answers HTTP, but not as a Docker Registry HTTP API V2 / OCI Distribution."""


class RegistryUnreachable(RegistryError):
    """The registry could not be reached: refused connection, DNS, TLS or timeout."""


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


class RateLimited(ResponseError):
    """429: too many requests. ``retry_after`` is in seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
