"""The OCI 1.1 referrers API: ``GET /v2/<name>/referrers/<digest>`` lists, as an image
index, the manifests whose ``subject`` is that digest. A registry without the API
answers 404; its clients then read the fallback tag ``<alg>-<hex>`` instead."""

from __future__ import annotations

from ..._errors import ManifestInvalid, ProtocolViolation
from ..._mediatypes import OCI_INDEX
from .._digest import Digest, validate_digest
from .._manifest import Descriptor, ImageIndex, parse_manifest
from ._links import next_link
from ._listing import LIST_PAGE_LIMIT
from ._message import Answer, Request, check
from ._paths import referrers_path, with_query
from ._scopes import pull_scope


def referrers(repository: str, digest: str, *, artifact_type: str | None = None) -> Request:
    """The first page of the referrers of ``digest`` (only ``artifact_type`` ones if given:
    a registry that filters says so in ``OCI-Filters-Applied``)."""
    url = referrers_path(repository, validate_digest(digest))
    if artifact_type:
        url = with_query(url, artifactType=artifact_type)
    return Request(method="GET", url=url, headers={"Accept": OCI_INDEX},
                   scope=pull_scope(repository), limit=LIST_PAGE_LIMIT)


def interpret_referrers(request: Request, answer: Answer, *, artifact_type: str | None = None
                        ) -> tuple[tuple[Descriptor, ...], Request | None] | None:
    """The referrer descriptors of one page and the request for the next page; None
    when the registry has no referrers API (404, as the spec says; 405 from registries
    that route the path but not the verb): use the fallback tag then."""
    if answer.status in (404, 405):
        return None
    check(answer)
    try:
        index = parse_manifest(answer.body, content_type=OCI_INDEX)
    except ManifestInvalid as exc:
        raise ProtocolViolation(f"{answer.where}: the referrers answer is no index ({exc})"
                                ) from None
    if not isinstance(index, ImageIndex):
        raise ProtocolViolation(f"{answer.where}: the referrers answer is no index")
    found = index.manifests
    if artifact_type and "artifacttype" not in answer.header("oci-filters-applied").lower():
        found = tuple(d for d in found if d.artifact_type == artifact_type)  # filter here
    link = next_link(answer.headers.get("link"), answer.url)
    following = None if link is None else Request(
        method="GET", url=link, headers=request.headers, scope=request.scope,
        limit=request.limit)
    return found, following


def fallback_tag(digest: str) -> str:
    """The tag a registry without the referrers API keeps the referrers index under:
    ``sha256:<hex>`` -> ``sha256-<hex>``."""
    parsed = Digest.parse(digest)
    return f"{parsed.algorithm}-{parsed.hex}"

