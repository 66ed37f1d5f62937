"""Delete one tag without taking the other tags on the same digest with it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import NotFound, OtherTagsAffected, TagMoved, UnsupportedOperation

if TYPE_CHECKING:
    from ..registry._client import Registry
    from ..registry._manifest import Descriptor


@dataclass(frozen=True)
class TagDeletion:
    """What a tag deletion did: ``removed`` lists every tag that is gone."""

    repository: str
    tag: str
    digest: str
    removed: tuple[str, ...]
    method: str  # "tag" (OCI tag DELETE) or "digest" (manifest DELETE)


def tag_descriptors(reg: Registry, repository: str, *, concurrency: int = 8
                    ) -> dict[str, Descriptor]:
    """tag -> Descriptor (HEAD) for every tag ``repository`` has now; a tag deleted
    while we look is left out, and so is a repository with no tag at all."""
    try:
        tags = reg.tags(repository)
    except NotFound:
        return {}

    def head(tag: str) -> tuple[str, Descriptor | None]:
        try:
            return tag, reg.manifest_descriptor(repository, tag)
        except NotFound:
            return tag, None

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return {tag: found for tag, found in pool.map(head, tags) if found is not None}


def tags_pointing_at(reg: Registry, repository: str, digest: str, *,
                     concurrency: int = 8) -> list[str]:
    """Every tag of ``repository`` whose manifest digest is ``digest``, sorted:
    exactly the tags a DELETE of that digest removes."""
    current = tag_descriptors(reg, repository, concurrency=concurrency)
    return sorted(tag for tag, found in current.items() if found.digest == digest)


def delete_tag(reg: Registry, repository: str, tag: str, *, delete_other_tags: bool = False,
               expected_digest: str | None = None) -> TagDeletion:
    """Remove ``tag`` from ``repository``, and no other tag unless told.

    Uses the OCI tag DELETE where the registry has it. Otherwise (Distribution 2.8)
    the manifest must be deleted by digest, which removes every tag on that digest:
    those tags are listed first and OtherTagsAffected is raised unless
    ``delete_other_tags``. With ``expected_digest`` (say, from a crawl) a tag that
    has moved since raises TagMoved and nothing is deleted. Deletion disabled on the
    registry raises UnsupportedOperation (405).
    """
    digest = reg.manifest_digest(repository, tag)
    if expected_digest is not None and digest != expected_digest:
        raise TagMoved(f"{repository}:{tag} now points at {digest}, not {expected_digest}; "
                       "nothing deleted: look at what it points at now, then decide again")
    try:
        reg.untag(repository, tag)
        return TagDeletion(repository, tag, digest, (tag,), "tag")
    except UnsupportedOperation as exc:
        if exc.status == 405:  # deletion disabled altogether
            raise
    sharing = tags_pointing_at(reg, repository, digest)
    others = tuple(t for t in sharing if t != tag)
    if others and not delete_other_tags:
        raise OtherTagsAffected(
            f"deleting {repository}:{tag} ({digest}) would also remove "
            f"{', '.join(others)} (this registry deletes tags by their digest); "
            "nothing deleted: pass delete_other_tags=True to remove them too",
            tags=others,
        )
    if reg.manifest_digest(repository, tag) != digest:  # moved while we looked
        raise TagMoved(f"{repository}:{tag} moved during the deletion; nothing deleted: "
                       "look at what it points at now, then delete again")
    reg.delete_manifest(repository, digest)
    return TagDeletion(repository, tag, digest, tuple(sorted({tag, *others})), "digest")
