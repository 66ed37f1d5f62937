"""The API's URL paths. Every name and reference is validated before it reaches a URL."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .._reference import validate_reference, validate_repository


def manifest_path(repository: str, reference: str) -> str:
    return f"/v2/{validate_repository(repository)}/manifests/{validate_reference(reference)}"


def blob_path(repository: str, digest: str) -> str:
    return f"/v2/{validate_repository(repository)}/blobs/{validate_reference(digest)}"


def tags_path(repository: str) -> str:
    return f"/v2/{validate_repository(repository)}/tags/list"


def uploads_path(repository: str) -> str:
    return f"/v2/{validate_repository(repository)}/blobs/uploads/"


def referrers_path(repository: str, digest: str) -> str:
    return f"/v2/{validate_repository(repository)}/referrers/{validate_reference(digest)}"


def with_query(url: str, pairs: Iterable[tuple[str, str]] = (), /, **params: str) -> str:
    """``url`` with ``pairs`` (a key may repeat) and ``params`` added to the query it
    already has (kept as sent: an upload's ``_state`` must survive byte for byte, a
    token realm's ``?tenant=`` too), or replacing keys of the same name. Never httpx's
    ``params=``: 0.28 replaces the whole query with it."""
    added = [*pairs, *params.items()]
    names = {key for key, _ in added}
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in names]
    query = "&".join([*kept, urlencode(added)]) if added else parts.query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def query_param(url: str, name: str) -> str | None:
    """The first value of ``name`` in the URL's query (percent-decoded), or None."""
    for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if key == name:
            return value
    return None
