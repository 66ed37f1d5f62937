"""Sans-I/O core of the registry protocol: URLs, Link pagination, challenges, errors.

Nothing here touches the network. The client builds requests from these functions
and hands every error response to :func:`decipher_error`, the one place where an
HTTP answer becomes a typed exception.
"""

from __future__ import annotations

import email.utils
import ipaddress
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from ._errors import (
    AuthenticationError,
    ErrorDetail,
    InvalidReference,
    NotARegistry,
    NotFound,
    PermissionDenied,
    ProtocolViolation,
    RateLimited,
    ResponseError,
    UnsupportedOperation,
)
from ._json import json_object
from ._reference import validate_reference, validate_repository

#: Manifests over 4 MiB are refused, as the distribution registry itself does.
MANIFEST_LIMIT = 4 * 1024 * 1024

DOCKER_CONTENT_DIGEST = "docker-content-digest"


# ------------------------------------------------------------------------ URLs


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{validate_repository(repository)}/manifests/{validate_reference(reference)}"


def blob_path(repository: str, digest: str) -> str:
    return f"/v2/{validate_repository(repository)}/blobs/{validate_reference(digest)}"


def tags_path(repository: str) -> str:
    return f"/v2/{validate_repository(repository)}/tags/list"


def redact(url: str) -> str:
    """The URL without user info and query, for messages: no credential, no token."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def same_origin(a: str, b: str) -> bool:
    """True when both URLs share scheme, host and port (default ports filled in)."""
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"http": 80, "https": 443}
    return (
        pa.scheme == pb.scheme
        and (pa.hostname or "").lower() == (pb.hostname or "").lower()
        and (pa.port or default.get(pa.scheme)) == (pb.port or default.get(pb.scheme))
    )


# ---------------------------------------------------------------- Link headers

# <target> then ;-separated params whose quoted values may hold commas and semicolons
_LINK_RE = re.compile(
    r'<([^>]*)>((?:\s*;\s*[^;,="\s]+\s*(?:=\s*(?:"(?:[^"\\]|\\.)*"|[^;,"]*))?)*)'
)
_PARAM_RE = re.compile(r';\s*([^;,="\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)')


def next_link(link_header: str | None, request_url: str) -> str | None:
    """The absolute URL of the ``rel="next"`` page, or None on the last page.

    Relative targets resolve against the request URL, as the registry sends them.
    A target on another scheme, host or port is refused (ProtocolViolation): a
    hostile registry must not steer the client, and its credentials, elsewhere.
    """
    if not link_header:
        return None
    for match in _LINK_RE.finditer(link_header):
        target, params = match.group(1).strip(), match.group(2)
        rels = {
            value.strip('"').lower()
            for name, value in _PARAM_RE.findall(params)
            if name.lower() == "rel"
        }
        # rel may hold several space-separated relation types
        if "next" not in {r for rel in rels for r in rel.split()}:
            continue
        absolute = urljoin(request_url, target)
        if not same_origin(absolute, request_url):
            raise ProtocolViolation(
                f"registry at {redact(request_url)} sent a Link to another origin "
                f"({redact(absolute)}); refused"
            )
        return absolute
    return None


# ------------------------------------------------------------------ challenges


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


_TCHARS = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_PARAM = re.compile(r'[\s,]*(' + _TCHARS + r')\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_SCHEME = re.compile(r"[\s,]*(" + _TCHARS + r")")


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` header (RFC 7235) into challenges.

    Quoted values may hold commas and escapes; unknown schemes are kept. Malformed
    input gives the challenges read so far, never an exception.
    """
    challenges: list[Challenge] = []
    text, pos = header or "", 0
    scheme: str | None = None
    params: dict[str, str] = {}
    while pos < len(text):
        param = _PARAM.match(text, pos) if scheme else None
        if param:  # name=value belongs to the current challenge
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.setdefault(param.group(1).lower(), value)
            pos = param.end()
            continue
        token = _SCHEME.match(text, pos)
        if not token:
            break
        if scheme:
            challenges.append(Challenge(scheme, MappingProxyType(params)))
        scheme, params, pos = token.group(1).lower(), {}, token.end()
    if scheme:
        challenges.append(Challenge(scheme, MappingProxyType(params)))
    return challenges


# -------------------------------------------------------------------- errors


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
            details.append(
                ErrorDetail(
                    code=entry["code"][:100],
                    message=message[:500] if isinstance(message, str) else "",
                    detail=entry.get("detail"),
                )
            )
    return tuple(details)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
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


def decipher_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
) -> ResponseError:
    """Turn an error response into the typed exception to raise. The one place this happens.

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
        return RateLimited(message, status=status, url=where, errors=errors,
                           retry_after=retry_after)
    return cls(message, status=status, url=where, errors=errors)


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unexpected status"


# ------------------------------------------------------------ registry URL, ping


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*",
                        re.ASCII)


def _valid_host(host: str) -> bool:
    """A DNS name or an IP literal: nothing httpx would refuse later as a bad URL."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return len(host) <= 253 and _HOST_NAME.fullmatch(host) is not None


@dataclass(frozen=True)
class RegistryURL:
    """A registry's base URL, split from any credentials written into it."""

    base: str
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def parse_registry_url(url: str) -> RegistryURL:
    """Normalise what a user calls a registry into its API base URL.

    ``localhost:5000`` -> ``http://localhost:5000`` (plain HTTP only for loopback
    unless the scheme says so); ``docker.io`` -> ``https://registry-1.docker.io``;
    a trailing ``/`` or ``/v2/`` is dropped; user info is taken out of the URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidReference("registry URL must be a non-empty string")
    text = url.strip()
    try:
        if "://" not in text:
            host = urlsplit("//" + text).hostname
            text = ("http://" if is_loopback_host(host) else "https://") + text
        parts = urlsplit(text)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidReference(f"registry URL {redact_text(url)!r} is malformed") from None
    if parts.scheme not in ("http", "https") or not host or not _valid_host(host):
        raise InvalidReference(
            f"registry URL {redact_text(url)!r} must be http(s)://host[:port]"
        )
    if parts.path.rstrip("/") not in ("", "/v2") or parts.query or parts.fragment:
        raise InvalidReference(
            f"registry URL {redact_text(url)!r} has a path; the API lives at the host's /v2/"
        )
    if host in _DOCKER_HUB_ALIASES:
        host = "registry-1.docker.io"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    return RegistryURL(
        base=f"{parts.scheme}://{netloc}",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def redact_text(url: str) -> str:
    """A user-given URL with any ``user:password@`` part cut out, for messages."""
    # greedy up to the last "@" before the path: passwords may hold "/" and "@"
    return re.sub(r"//.*@", "//", url)[:200]


def check_ping(
    status: int, headers: Mapping[str, str], body: bytes, *, url: str, has_credentials: bool
) -> None:
    """Decide from the answer to ``GET /v2/`` whether ``url`` is a usable registry.

    Returns quietly for a registry that let us in (200; a 401 reaching this point
    has already been through the Basic or token flow); raises NotARegistry or
    AuthenticationError otherwise.
    """
    if status == 200:
        version = headers.get("docker-distribution-api-version", "")
        if version.lower().startswith("registry/2"):
            return
        if json_object(body) is not None:
            return
        raise NotARegistry(
            f"{url} is not a container registry: GET /v2/ answered 200 without the "
            "registry API header or a JSON body"
        )
    if status == 401:
        what = "refused the credentials given" if has_credentials else "requires credentials"
        raise AuthenticationError(
            f"registry at {url} {what} (HTTP 401 on GET /v2/)", status=401, url=url + "/v2/"
        )
    raise NotARegistry(
        f"{url} is not a container registry: GET /v2/ answered HTTP {status}"
    )
