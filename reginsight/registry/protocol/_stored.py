"""What the answer to a write says was stored: the digest in its
``Docker-Content-Digest`` and the digest its ``Location`` names must be the digest of
what was sent. A registry that kept what it held before answers 201 all the same
(django-oci: Location naming the old manifest, no digest header)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from ..._errors import DigestMismatch
from ..._text import printable
from .._digest import is_digest
from ._message import Answer


def check_stored(answer: Answer, digest: str, what: str) -> str:
    """``digest``, once neither the ``Docker-Content-Digest`` nor the last path segment
    of the ``Location`` names another; DigestMismatch otherwise. A Location naming no
    digest (a tag, an upload) says nothing either way."""
    try:
        path = urlsplit(answer.header("location")).path
    except ValueError:  # no URL at all (e.g. "http://[x"): naming nothing
        path = ""
    located = unquote(path).rstrip("/").rpartition("/")[2]
    for where, named in (("Docker-Content-Digest", answer.header("docker-content-digest")),
                         ("Location", located if is_digest(located) else "")):
        if named and named != digest:
            shown = printable(named, limit=100)
            raise DigestMismatch(
                f"{what}: the registry answered {answer.status} with a {where} naming "
                f"{shown}, not {digest}, the digest of what was sent: it did not store "
                "this (it may have kept what it held before)", expected=digest, actual=shown)
    return digest
