"""The registry itself: its base URL from what a user typed, and the ping verb."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..._errors import AuthenticationError, InvalidReference, NotARegistry
from ..._json import is_json
from .._hosts import DOCKER_HUB_API, is_docker_hub, is_loopback_host, redact_text
from ._message import Answer, Request

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
    if is_docker_hub(host):
        host = DOCKER_HUB_API
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    return RegistryURL(
        base=f"{parts.scheme}://{netloc}",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def ping_request() -> Request:
    """``GET /v2/``: is this a registry, and does it let us in? (No limit: a web page
    that is no registry may be large; the shell reads only its first bytes.)"""
    return Request(method="GET", url="/v2/", limit=None)


def interpret_ping(answer: Answer, *, registry: str, has_credentials: bool) -> None:
    """Decide from the answer to ``GET /v2/`` whether ``registry`` is a usable registry.

    Returns quietly for a registry that let us in (200; a 401 reaching this point
    has already been through the Basic or token flow); raises NotARegistry or
    AuthenticationError otherwise.
    """
    check_ping(answer.status, answer.headers, answer.body, url=registry,
               has_credentials=has_credentials)


def check_ping(status: int, headers: Mapping[str, str], body: bytes, *, url: str,
               has_credentials: bool) -> None:
    """:func:`interpret_ping` on bare status, headers (lower-case keys) and body."""
    if status == 200:
        # The spec asks only for a 200; registries and proxies send the API header,
        # a JSON body, or nothing at all. A page of text or HTML is some other server.
        version = headers.get("docker-distribution-api-version", "")
        if version.lower().startswith("registry/2") or not body.strip() or is_json(body):
            return
        raise NotARegistry(
            f"{url} is not a container registry: GET /v2/ answered 200 with a body that "
            "is not JSON (a web page?) and without the registry API header"
        )
    if status == 401:
        what = "refused the credentials given" if has_credentials else "requires credentials"
        raise AuthenticationError(
            f"registry at {url} {what} (HTTP 401 on GET /v2/)", status=401, url=url + "/v2/"
        )
    raise NotARegistry(
        f"{url} is not a container registry: GET /v2/ answered HTTP {status}"
    )
