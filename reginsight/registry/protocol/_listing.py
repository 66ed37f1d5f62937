"""Paginated listings: the catalog and a repository's tags, one page per request.

The next page comes from the ``Link`` header (same origin only). A registry that
refuses the page size (400 PAGINATION_NUMBER_INVALID) is asked the same page again
with a smaller ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._errors import CatalogUnavailable, InvalidReference, ProtocolViolation, ResponseError
from ..._json import json_object
from .._reference import validate_repository, validate_tag
from ._links import next_link
from ._message import Answer, ErrorCode, Request, check
from ._paths import query_param, tags_path, with_query
from ._scopes import CATALOG_SCOPE, pull_scope

#: Catalog and tag-list pages are JSON lists of names; a page over this is refused.
LIST_PAGE_LIMIT = 32 * 1024 * 1024
#: A paginated listing that goes on longer than this is a loop or an attack.
MAX_PAGES = 100_000
#: Pages are never asked smaller than this.
MIN_PAGE_SIZE = 10
#: How registries without a catalog refuse it: Docker Hub 401, GitLab 401 or 404,
#: GHCR 404 or 405, registries with the catalog switched off 403 or 405.
CATALOG_REFUSALS = frozenset({401, 403, 404, 405})


@dataclass(frozen=True)
class Page:
    """One page: its ``entries``, and the request for the next page (None: the last).
    ``again`` is True when this request was refused and ``next`` asks it again."""

    entries: tuple[str, ...]
    next: Request | None
    again: bool = False


def catalog_page(*, page_size: int | None = None) -> Request:
    """The first page of ``/v2/_catalog`` (``n`` entries a page, or the registry's default)."""
    url = "/v2/_catalog" + (f"?n={int(page_size)}" if page_size else "")
    return Request(method="GET", url=url, scope=(CATALOG_SCOPE,), limit=LIST_PAGE_LIMIT)


def tags_page(repository: str) -> Request:
    """The first page of ``/v2/<name>/tags/list``."""
    return Request(method="GET", url=tags_path(repository), scope=pull_scope(repository),
                   limit=LIST_PAGE_LIMIT)


def interpret_catalog_page(request: Request, answer: Answer) -> Page:
    """Repository names of one catalog page; an invalid name is the server's fault.

    A catalog refused on its first page raises CatalogUnavailable: the repositories
    must be named. A later page refused is a failure of the listing, not a refusal.
    """
    try:
        return _page(request, answer, "repositories", validate_repository, "repository name")
    except ResponseError as exc:
        # followed pages come from Link headers, always absolute; the first page (and
        # its smaller-page retries) is the path catalog_page built
        first = request.url.startswith("/v2/_catalog")
        if exc.status not in CATALOG_REFUSALS or not first:
            raise
        raise CatalogUnavailable(
            f"this registry does not list its repositories ({exc}); name the "
            "repositories to read instead", status=exc.status, url=exc.url,
            errors=exc.errors) from None


def interpret_tags_page(request: Request, answer: Answer) -> Page:
    """Tags of one page (``"tags": null`` is an empty page)."""
    return _page(request, answer, "tags", validate_tag, "tag")


def _page(request: Request, answer: Answer, key: str, validate: Any, what: str) -> Page:
    try:
        check(answer)
    except ResponseError as exc:
        smaller = smaller_page(request, exc)
        if smaller is None:
            raise
        return Page((), smaller, again=True)
    doc = json_object(answer.body)
    if doc is None:
        raise ProtocolViolation(f"{answer.where}: the registry sent no JSON object")
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise ProtocolViolation(f"{answer.where}: {key!r} is not a list")
    names = tuple(_checked(entry, validate, what) for entry in entries)
    link = next_link(answer.headers.get("link"), answer.url)
    following = None if link is None else Request(
        method="GET", url=link, scope=request.scope, limit=request.limit)
    return Page(names, following)


def _checked(value: Any, validate: Any, what: str) -> str:
    """Validate a value the registry sent; a bad one is the server's fault, not the user's."""
    try:
        if not isinstance(value, str):
            raise TypeError
        return validate(value)
    except (TypeError, InvalidReference):
        raise ProtocolViolation(
            f"the registry sent an invalid {what}: {str(value)[:80]!r}") from None


def smaller_page(request: Request, error: ResponseError) -> Request | None:
    """On 400 PAGINATION_NUMBER_INVALID, the same page asked with a smaller ``n``."""
    if error.status != 400 or ErrorCode.PAGINATION_NUMBER_INVALID not in error.codes:
        return None
    current = query_param(request.url, "n") or ""
    if not current.isdigit() or int(current) <= MIN_PAGE_SIZE:
        return None
    smaller = str(max(MIN_PAGE_SIZE, int(current) // 2))
    return Request(method="GET", url=with_query(request.url, n=smaller), scope=request.scope,
                   limit=request.limit)

