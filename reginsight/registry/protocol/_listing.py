"""Paginated listings: the catalog and a repository's tags, one page per request.

The next page comes from the ``Link`` header (same origin only). A registry that
refuses the page size (400 PAGINATION_NUMBER_INVALID) is asked the same page again
with a smaller ``n``. A listing is bounded (:class:`Paging`): a page asked twice is a
loop, and past a number of pages or seconds it stops with ListingTooLong, never
handing back part of a listing as if it were whole.

Page sizes, as Distribution serves them: without ``n`` the tag list is whole in one
answer (2.8 ignores ``n`` and ``last`` altogether; 3.0 pages only when asked, any
``n`` >= 0, and ``n=0`` is an empty last page), and the catalog comes 100 a page, at
most 1000 (its ``maxentries``; more is refused). Each ``Link`` carries the ``n``
asked. So the first page is asked with the caller's ``n`` or none (the biggest
page a registry that pages only when asked gives), and a registry that pages by
``n`` of its own (a Link with an ``n`` under :data:`PAGE_SIZE`) is asked the following
pages with ``n`` = :data:`PAGE_SIZE`: ten times fewer pages of Distribution's catalog.

An entry that is no valid name is the server's fault. By default it refuses the page
(ProtocolViolation): whoever asked gets only names they can ask for. A caller that
can report it instead (the crawl: an ``errors`` row, the other names read) asks with
``keep_invalid=True``; the entry is then set apart as an :class:`InvalidEntry`, shown
but never a name, so no request is ever built from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from ..._errors import (
    CatalogUnavailable,
    InvalidReference,
    ListingTooLong,
    ProtocolViolation,
    ResponseError,
)
from ..._json import json_object
from ..._text import printable
from .._hosts import redact
from .._reference import validate_repository, validate_tag
from ._links import next_link
from ._message import Answer, ErrorCode, Request, check, decimal
from ._paths import query_param, tags_path, with_query
from ._scopes import CATALOG_SCOPE, pull_scope

#: Catalog and tag-list pages are JSON lists of names; a page over this is refused.
LIST_PAGE_LIMIT = 32 * 1024 * 1024
#: Pages a listing may take (``Registry(max_pages=)``): a million names at the 100
#: a page Distribution serves; an endless Link chain stops here at the latest.
MAX_PAGES = 10_000
#: Seconds a listing may take (``Registry(listing_time=)``): a chain of fast pages
#: would otherwise hold a crawl for hours before the page bound.
LISTING_TIME = 600.0
#: Pages are never asked smaller than this.
MIN_PAGE_SIZE = 10
#: The ``n`` a following page is asked with where the registry pages by a smaller
#: ``n`` and the caller chose none: Distribution's catalog maximum (2.8 and 3.0 refuse
#: more with 400 PAGINATION_NUMBER_INVALID), and the most ECR and GitLab serve.
PAGE_SIZE = 1000
#: How registries without a catalog refuse it: Docker Hub 401, GitLab 401 or 404,
#: GHCR 404 or 405, registries with the catalog switched off 403 or 405.
CATALOG_REFUSALS = frozenset({401, 403, 404, 405})


#: How much of an invalid entry is shown; names are at most 255 characters.
SHOWN_LIMIT = 100


@dataclass(frozen=True)
class InvalidEntry:
    """An entry of a listing that is no valid name. ``shown``: the entry as listed,
    made safe to show (escaped, cut) and never itself a valid name, so a row about it
    cannot pass for a real repository's; ``problem``: why it is no name; ``listed``:
    the entry when it is a string, to match patterns against, never to put in a URL."""

    shown: str
    problem: str
    listed: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Page:
    """One page: its ``entries``, and the request for the next page (None: the last).
    ``again`` is True when this request was refused and ``next`` asks it again.
    ``invalid``: the entries that are no names (only when asked to keep them)."""

    entries: tuple[str, ...]
    next: Request | None
    again: bool = False
    invalid: tuple[InvalidEntry, ...] = ()


@dataclass(frozen=True)
class Listing:
    """A whole listing as the registry sent it: the valid ``names`` in its order, and
    set apart from them the ``invalid`` entries."""

    names: tuple[str, ...]
    invalid: tuple[InvalidEntry, ...] = ()


@dataclass
class Paging:
    """How far a paginated listing (``what``: "the catalog", "tags of team/app") has
    got, and whether it may go on. Pure: the caller says how long it has been going.
    Call :meth:`admit` before asking a page, :meth:`read` once it is read."""

    what: str
    max_pages: int = MAX_PAGES
    max_seconds: float = LISTING_TIME
    #: the ``n`` following pages are asked with where the registry's Link says less;
    #: None once the registry refused a page that size (its Links are followed as sent)
    page_size: int | None = PAGE_SIZE
    pages: int = 0
    entries: int = 0
    seen: set[str] = field(default_factory=set, repr=False)
    #: the registry's own request for the page being asked bigger
    _own: Request | None = field(default=None, repr=False)

    def admit(self, url: str, elapsed: float) -> None:
        """May the page at ``url`` be asked, ``elapsed`` seconds into the listing?
        A page asked before is a loop (ProtocolViolation); one past a bound,
        ListingTooLong."""
        if url in self.seen:
            raise ProtocolViolation(f"{self.what}: {redact(url)}: pagination loops; "
                                    f"stopped after {self.pages} pages")
        if self.pages >= self.max_pages:
            self._too_long(url, "pages", f"the {self.max_pages}-page bound (max_pages)")
        if elapsed >= self.max_seconds:
            self._too_long(url, "time", f"the {self.max_seconds:g}-second bound "
                                        f"(listing_time) after {elapsed:.1f} s")

    def read(self, url: str, entries: int, *, again: bool = False) -> None:
        """Count the page read from ``url``, holding ``entries``; one refused and to
        be asked again smaller (``again``) is neither a page nor a loop."""
        if again:
            return
        self.seen.add(url)
        self.pages += 1
        self.entries += entries

    def follow(self, page: Page) -> Request | None:
        """The request for the page after ``page``: its ``next``, asked with
        ``n=page_size`` where the registry's Link says a smaller ``n`` (fewer pages).
        A page refused for its size is asked again as the registry says: one asked
        bigger, by the registry's own Link (and no page of this listing bigger again);
        one asked by the caller's ``n``, smaller (``page.again``), and the following
        pages no bigger than that."""
        own, self._own = self._own, None
        if page.again and own is not None:
            self.page_size = None
            return own
        following = page.next
        if page.again and following is not None and self.page_size is not None:
            smaller = decimal(query_param(following.url, "n"))
            self.page_size = min(self.page_size, smaller or self.page_size)
        if page.again or following is None or self.page_size is None:
            return following
        asked = decimal(query_param(following.url, "n"))
        if asked is None or asked >= self.page_size:
            return following  # no n: a cursor of the registry's own, kept as sent
        self._own = following
        return replace(following, url=with_query(following.url, n=str(self.page_size)))

    def refused(self, error: ResponseError) -> Request | None:
        """What to ask instead of the page just refused with ``error``: the registry's
        own page where it was asked bigger and refused with any 400 (a registry may
        not name PAGINATION_NUMBER_INVALID); None when the refusal stands."""
        own, self._own = self._own, None
        if own is None or error.status != 400:
            return None
        self.page_size = None
        return own

    def _too_long(self, url: str, bound: str, which: str) -> None:
        raise ListingTooLong(
            f"{self.what}: stopped at {which}: {self.pages} pages, {self.entries} "
            f"entries read and more to come ({redact(url)}); the listing is incomplete, "
            "so nothing of it is returned", bound=bound, pages=self.pages,
            entries=self.entries)


def catalog_page(*, page_size: int | None = None) -> Request:
    """The first page of ``/v2/_catalog`` (``n`` entries a page, or the registry's default)."""
    url = "/v2/_catalog" + _size_query(page_size)
    return Request(method="GET", url=url, scope=(CATALOG_SCOPE,), limit=LIST_PAGE_LIMIT)


def tags_page(repository: str, *, page_size: int | None = None) -> Request:
    """The first page of ``/v2/<name>/tags/list`` (``n`` entries a page, or the
    registry's default: on Distribution, every tag)."""
    return Request(method="GET", url=tags_path(repository) + _size_query(page_size),
                   scope=pull_scope(repository), limit=LIST_PAGE_LIMIT)


def check_page_size(page_size: int | None) -> int | None:
    """``page_size`` when it is None or a whole number >= 1; ValueError otherwise
    (``n=0`` is an empty last page on Distribution 3: a listing of nothing)."""
    if page_size is None:
        return None
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size={page_size!r}: a whole number >= 1, or None for the "
                         "registry's own")
    return page_size


def _size_query(page_size: int | None) -> str:
    return "" if check_page_size(page_size) is None else f"?n={page_size}"


def interpret_catalog_page(request: Request, answer: Answer, *, keep_invalid: bool = False
                           ) -> Page:
    """Repository names of one catalog page; an invalid name is the server's fault:
    ProtocolViolation, or with ``keep_invalid`` an entry of ``Page.invalid``.

    A catalog refused on its first page raises CatalogUnavailable: the repositories
    must be named. A later page refused is a failure of the listing, not a refusal.
    """
    try:
        return _page(request, answer, "repositories", validate_repository, "repository name",
                     keep_invalid=keep_invalid)
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


def _page(request: Request, answer: Answer, key: str, validate: Any, what: str, *,
          keep_invalid: bool = False) -> Page:
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
    names: list[str] = []
    invalid: list[InvalidEntry] = []
    for entry in entries:  # judged one by one: kept apart, a bad entry costs no good one
        problem = _problem(entry, validate, what)
        if problem is None:
            names.append(entry)
        elif keep_invalid:
            invalid.append(InvalidEntry(shown_entry(entry), problem,
                                        entry if isinstance(entry, str) else None))
        else:
            raise ProtocolViolation(
                f"the registry sent an invalid {what}: {str(entry)[:80]!r}")
    link = next_link(answer.headers.get("link"), answer.url)
    following = None if link is None else Request(
        method="GET", url=link, scope=request.scope, limit=request.limit)
    return Page(tuple(names), following, invalid=tuple(invalid))


def _problem(value: Any, validate: Any, what: str) -> str | None:
    """Why a value the registry sent is no valid ``what``; None when it is one."""
    if not isinstance(value, str):
        return f"invalid {what}: a JSON {_json_type(value)}, not a string"
    try:
        validate(value)
    except InvalidReference as exc:
        return str(exc)
    return None


def shown_entry(value: Any) -> str:
    """An entry that is no valid name, as it can be shown: a printable string as
    listed, others escaped; cut past :data:`SHOWN_LIMIT`. What is not a string, or is
    empty, is shown in ``<...>``. None of these forms is a valid name (the changed
    ones hold a backslash, a space or ``<``), so nothing shown passes for a name."""
    if not isinstance(value, str):
        text = json.dumps(value)  # ASCII only: control and bidi characters come escaped
        cut = text if len(text) <= SHOWN_LIMIT else text[:SHOWN_LIMIT] + "..."
        return f"<not a string: {cut}>"
    if not value:
        return "<empty>"
    text = printable(value)
    if len(text) > SHOWN_LIMIT:
        text = f"{text[:SHOWN_LIMIT]}... ({len(value)} characters)"
    return text


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", list: "array",
            dict: "object"}.get(type(value), "null")


def smaller_page(request: Request, error: ResponseError) -> Request | None:
    """On 400 PAGINATION_NUMBER_INVALID, the same page asked with a smaller ``n``."""
    if error.status != 400 or ErrorCode.PAGINATION_NUMBER_INVALID not in error.codes:
        return None
    current = decimal(query_param(request.url, "n"))  # the registry's Link may set it
    if current is None or current <= MIN_PAGE_SIZE:
        return None
    smaller = str(max(MIN_PAGE_SIZE, current // 2))
    return Request(method="GET", url=with_query(request.url, n=smaller), scope=request.scope,
                   limit=request.limit)

