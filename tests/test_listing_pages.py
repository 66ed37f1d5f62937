"""Every tag, whatever the page size: tag lists paged with ``n``/``last`` on the real
Distribution 3 (2.8 ignores both and answers whole), the pages after the first asked
big where a registry pages small by itself, and the listing bounds kept."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

import reginsight as ri
from reginsight.registry.protocol import PAGE_SIZE, with_query
from reginsight.registry.protocol._paths import query_param
from tests.dialect_proxy import DialectProxy
from tests.images import Pusher

TAGS = [f"v{i:02d}" for i in range(23)]  # 23: no page of 5 or 4 ends the list evenly


def tag_many(url: str, repository: str) -> str:
    """One small image under 23 tags, each put through the API."""
    pusher = Pusher(url)
    image = pusher.image(repository, TAGS[0])
    for tag in TAGS[1:]:
        pusher.manifest(repository, tag, image.raw, image.media_type)
    pusher.close()
    return repository


@pytest.fixture(scope="module")
def tagged(any_registry) -> str:
    return tag_many(any_registry.url, "paging/tags")


@pytest.fixture(scope="module")
def tagged_v3(registry_v3) -> str:
    return tag_many(registry_v3.url, "paging/bound")


def tag_requests(proxy: DialectProxy) -> list[str]:
    return [path for method, path in proxy.seen if method == "GET" and "/tags/list" in path]


def test_the_servers_page_as_their_source_says(any_registry, registry_version, tagged):
    """Why the client pages as it does: 3.0 pages only when asked (a Link naming the
    ``n`` asked and the ``last`` tag), 2.8 never; without ``n`` both answer whole."""
    url = f"{any_registry.url}/v2/{tagged}/tags/list"
    whole = httpx.get(url)
    assert sorted(whole.json()["tags"]) == TAGS and "link" not in whole.headers
    page = httpx.get(url, params={"n": 5})
    if registry_version == "3.0":
        assert whole.json()["tags"] == TAGS  # sorted, so that ``last`` can page
        assert page.json()["tags"] == TAGS[:5]
        assert page.headers["link"] == f'</v2/{tagged}/tags/list?last={TAGS[4]}&n=5>; rel="next"'
        nothing = httpx.get(url, params={"n": 0})  # an empty last page: never asked
        assert nothing.json()["tags"] == [] and "link" not in nothing.headers
    else:
        assert sorted(page.json()["tags"]) == TAGS and "link" not in page.headers


@pytest.mark.parametrize("page_size", [5, 4, 23, 100])
def test_every_tag_is_listed_whatever_the_page_size(any_registry, registry_version, tagged,
                                                    page_size):
    with DialectProxy(any_registry.url) as proxy, ri.Registry(proxy.url) as reg:
        assert reg.tags(tagged, page_size=page_size) == TAGS
        asked = tag_requests(proxy)
    pages = math.ceil(len(TAGS) / page_size) if registry_version == "3.0" else 1
    assert len(asked) == pages
    assert all(query_param(path, "n") == str(page_size) for path in asked)
    if registry_version == "3.0" and pages > 1:  # every page after the first: the Link
        assert [query_param(path, "last") for path in asked[1:]] == \
            TAGS[page_size - 1:-1:page_size]


def test_by_default_one_request_lists_every_tag(any_registry, tagged):
    """No ``n``: Distribution answers with every tag at once, on both versions."""
    with DialectProxy(any_registry.url) as proxy, ri.Registry(proxy.url) as reg:
        assert reg.tags(tagged) == TAGS
        assert tag_requests(proxy) == [f"/v2/{tagged}/tags/list"]


def test_the_page_bound_stops_a_listing_of_real_pages(registry_v3, tagged_v3):
    """max_pages holds on real pages: 23 tags, 5 a page, at most 3 pages."""
    with ri.Registry(registry_v3.url, max_pages=3) as reg:
        with pytest.raises(ri.ListingTooLong) as caught:
            reg.tags(tagged_v3, page_size=5)
        assert (caught.value.bound, caught.value.pages, caught.value.entries) == \
            ("pages", 3, 15)
        assert reg.tags(tagged_v3, page_size=8) == TAGS  # 3 pages: within the bound
    with ri.Registry(registry_v3.url, max_pages=1) as reg:
        assert reg.tags(tagged_v3) == TAGS  # whole in one page
        with pytest.raises(ValueError, match="page_size=0"):
            reg.tags(tagged_v3, page_size=0)  # n=0 would list nothing


@dataclass
class SmallPages(DialectProxy):
    """Distribution 3 dressed as a registry that pages its tag list by itself (GitLab,
    ECR, Quay): asked without ``n`` it serves ``own`` tags and a Link; an ``n`` over
    ``most`` is refused with a 400 whose code is not Distribution's."""

    own: int = 4
    most: int | None = None
    asked: list[str] = field(default_factory=list)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if "/tags/list" in path:
            self.asked.append(path)
            n = query_param(path, "n")
            if n is None:
                handler.path = with_query(path, n=str(self.own))
            elif self.most is not None and int(n) > self.most:
                body = json.dumps({"errors": [{"code": "BAD_REQUEST",
                                               "message": f"n must be <= {self.most}"}]})
                self._reply(handler, 400, {"Content-Type": "application/json"}, body.encode())
                return
        super()._serve(handler)


def test_a_registry_paging_small_is_asked_the_following_pages_big(registry_v3, tagged_v3):
    with SmallPages(registry_v3.url) as proxy, ri.Registry(proxy.url) as reg:
        assert reg.tags(tagged_v3) == TAGS
    first, second = proxy.asked  # its own 4, then every other tag in one page
    assert query_param(first, "n") is None
    assert (query_param(second, "n"), query_param(second, "last")) == (str(PAGE_SIZE), "v03")


def test_a_big_page_refused_falls_back_to_the_registrys_own_pages(registry_v3, tagged_v3):
    """Refused with a 400 it does not call PAGINATION_NUMBER_INVALID: the Link as the
    registry sent it, and no page of this listing asked bigger again."""
    with SmallPages(registry_v3.url, most=10) as proxy, ri.Registry(proxy.url) as reg:
        assert reg.tags(tagged_v3) == TAGS
    sizes = [query_param(path, "n") for path in proxy.asked]
    assert sizes == [None, str(PAGE_SIZE)] + ["4"] * 5  # 4 + 4 * 5 >= 23 tags


def test_a_size_refused_as_distribution_refuses_it_is_halved_and_kept(registry_v3,
                                                                       tagged_v3):
    """Distribution's own refusal (400 PAGINATION_NUMBER_INVALID: its catalog past its
    1000 maximum) halves the size asked, and no later page is asked bigger."""
    with DialectProxy(registry_v3.url) as proxy, ri.Registry(proxy.url) as reg:
        assert tagged_v3 in reg.repositories(page_size=1500)
    sizes = [query_param(path, "n") for _, path in proxy.seen if path.startswith("/v2/_catalog")]
    assert sizes[:2] == ["1500", "750"] and set(sizes[2:]) <= {"750"}
