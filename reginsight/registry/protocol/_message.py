"""Requests and answers as plain values, and the one place an answer becomes an error.

A verb of the protocol core is a pair of pure functions: one builds a
:class:`Request`, the other reads the :class:`Answer` into a result or raises the
typed error. The I/O shell (``Registry``) only moves the bytes between them.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from types import MappingProxyType

from ..._errors import (
    AuthenticationError,
    ErrorDetail,
    NotFound,
    PermissionDenied,
    RateLimited,
    ResponseError,
    UnsupportedOperation,
)
from ..._json import json_object
from .._hosts import redact
from ._ratelimit import parse_rate_limit

#: Bodies of answers that are read whole (not manifests, lists or blobs) are capped here.
SMALL_BODY_LIMIT = 64 * 1024

_EMPTY: Mapping[str, str] = MappingProxyType({})


class ErrorCode(StrEnum):
    """The registry error codes of the distribution spec (``errors[].code``)."""

    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    MANIFEST_UNVERIFIED = "MANIFEST_UNVERIFIED"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    PAGINATION_NUMBER_INVALID = "PAGINATION_NUMBER_INVALID"
    RANGE_INVALID = "RANGE_INVALID"
    SIZE_INVALID = "SIZE_INVALID"
    TAG_INVALID = "TAG_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"


@dataclass(frozen=True, kw_only=True)
class Request:
    """What to send. ``url`` is a path below the registry's base URL (``/v2/...``) or
    an absolute URL the registry gave (an upload ``Location``, a ``Link``).

    ``scope``: the token scopes the call needs. ``limit``: the most bytes a 2xx body
    may have (TooLarge past it); None for HEAD and for blobs, which are streamed.
    ``pull``: a request metered registries count (Docker Hub: manifest GETs); when
    its budget is spent, only pulls wait or fail, never HEADs or blob downloads.
    ``fallback``: the caller has another way to ask (HEAD -> GET), so a 429 comes
    back at once instead of being waited out.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    scope: tuple[str, ...] = ()
    limit: int | None = SMALL_BODY_LIMIT
    content: bytes | None = field(default=None, repr=False)
    pull: bool = False
    fallback: bool = False


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What came back: status, headers (keys lower case), the body read so far (error
    bodies capped) and the absolute URL and method of the request answered."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(default=b"", repr=False)
    url: str
    method: str

    @classmethod
    def of(cls, status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]],
           body: bytes = b"", *, url: str, method: str) -> Answer:
        """An Answer with header names folded to lower case."""
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return cls(status=status, headers=MappingProxyType({k.lower(): v for k, v in pairs}),
                   body=body, url=url, method=method)

    def header(self, name: str) -> str:
        """A header's value, stripped; "" when absent."""
        return self.headers.get(name.lower(), "").strip()

    @property
    def where(self) -> str:
        """``METHOD url`` without credentials or query, for messages."""
        return f"{self.method} {redact(self.url)}"


def parse_error_body(body: bytes) -> tuple[ErrorDetail, ...]:
    """The ``{"errors": [{code, message, detail}]}`` entries of an error body, if any."""
    doc = json_object(body)
    entries = doc.get("errors") if doc is not None else None
    if not isinstance(entries, list):
        return ()
    details = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("code"), str):
            message = entry.get("message")
            details.append(ErrorDetail(
                code=entry["code"][:100],
                message=message[:500] if isinstance(message, str) else "",
                detail=entry.get("detail")))
    return tuple(details)


def decimal(text: str | None, *, digits: int = 19) -> int | None:
    """A header's or a query's non-negative integer, or None when it is not one: ASCII
    digits only (``isdigit()`` also takes "²", which ``int()`` refuses), at most
    ``digits`` of them (``int()`` refuses over 4,300; no size or count we read is near
    10**19)."""
    text = (text or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > digits:
        return None
    return int(text)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    seconds = decimal(value)  # delta-seconds are ASCII digits only (RFC 9110)
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_STATUS_ERRORS: dict[int, type[ResponseError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    405: UnsupportedOperation,
    429: RateLimited,
}


def decipher_error(status: int, headers: Mapping[str, str], body: bytes, *, method: str,
                   url: str) -> ResponseError:
    """Turn an error answer into the typed exception to raise. The one place this happens.

    ``body`` must already be capped (the transport cuts error bodies at 64 KiB).
    """
    errors = parse_error_body(body)
    where = redact(url)
    if errors:
        said = "; ".join(f"{e.code}: {e.message}" if e.message else e.code for e in errors)
    else:
        said = _reason(status)
    message = f"{method} {where} failed with HTTP {status}: {said}"
    cls = _STATUS_ERRORS.get(status, ResponseError)
    if cls is RateLimited:
        retry_after = parse_retry_after(headers.get("retry-after"))
        budget = parse_rate_limit(headers)
        if budget is not None and budget.spent:
            message += (f" (the pull budget is spent: {budget.describe()}; HEADs and blob "
                        "downloads are not counted)")
        return RateLimited(message, status=status, url=where, errors=errors,
                           retry_after=retry_after)
    return cls(message, status=status, url=where, errors=errors)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unexpected status"


def check(answer: Answer) -> Answer:
    """The answer itself when it is not an error status; the typed error otherwise."""
    if answer.status >= 400:
        raise decipher_error(answer.status, answer.headers, answer.body,
                             method=answer.method, url=answer.url)
    return answer
