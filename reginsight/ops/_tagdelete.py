"""Delete one tag, or one manifest by digest, without taking what nobody chose with
it: no other tag on the same digest, no platform of a tagged multi-arch image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import BreaksIndex, OtherTagsAffected, TagMoved, UnsupportedOperation
from ._holders import Holders, TagState, holders_now, listed_tags, tag_descriptors

if TYPE_CHECKING:
    from ..registry._client import Registry

@dataclass(frozen=True)
class TagDeletion:
    """What a tag deletion did: ``removed`` lists every tag that is gone; ``lost``,
    other tags gone too (moved onto the digest between the check and the DELETE)."""

    repository: str
    tag: str
    digest: str
    removed: tuple[str, ...]
    method: str  # "tag" (OCI tag DELETE) or "digest" (manifest DELETE)
    lost: tuple[str, ...] = ()


def tags_pointing_at(reg: Registry, repository: str, digest: str, *,
                     concurrency: int = 8) -> list[str]:
    """Every tag of ``repository`` whose manifest digest is ``digest``, sorted:
    exactly the tags a DELETE of that digest removes."""
    current = tag_descriptors(reg, repository, concurrency=concurrency)
    return sorted(tag for tag, found in current.items() if found.digest == digest)


def delete_tag(reg: Registry, repository: str, tag: str, *, delete_other_tags: bool = False,
               expected_digest: str | None = None, break_indexes: bool = False
               ) -> TagDeletion:
    """Remove ``tag`` from ``repository``, and nothing else unless told.

    Uses the OCI tag DELETE where the registry has it (Distribution 3): only the tag
    goes, the manifest stays, so a platform of a multi-arch image keeps working.
    Otherwise (Distribution 2.8) the manifest must be deleted by digest, which removes
    every tag on that digest and breaks every tagged index that references it. Both
    are checked first: BreaksIndex is raised, and nothing deleted, when a tagged
    index in the repository reaches the digest at any depth (unless
    ``break_indexes``); OtherTagsAffected when other tags point at it (unless
    ``delete_other_tags``). With ``expected_digest`` (say, from a crawl) a tag that
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
    except UnsupportedOperation:
        pass  # no tag delete here: by digest, checked (deletion disabled: its own 405)
    before, keeps = holders_now(reg, repository, digest)
    if not break_indexes:
        _refuse_breaking(repository, f"{repository}:{tag} is {digest},", keeps,
                         "this registry deletes tags by their digest, so deleting the tag "
                         "would break")
    others = tuple(t for t in keeps.tags if t != tag)
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
    removed = tuple(sorted({tag, *others}))
    reg.delete_manifest(repository, digest)
    return TagDeletion(repository, tag, digest, removed, "digest",
                       _lost(reg, repository, before, removed))


@dataclass(frozen=True)
class DigestDeletion:
    """What a deletion by digest did: ``removed``, the tags that went with it;
    ``broken``, the tags of the indexes it broke (only with ``break_indexes``);
    ``lost``, other tags gone too (moved onto the digest between the check and the
    DELETE)."""

    repository: str
    digest: str
    removed: tuple[str, ...]
    broken: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()


def delete_digest(reg: Registry, repository: str, digest: str, *, delete_tags: bool = False,
                  break_indexes: bool = False) -> DigestDeletion:
    """Delete the manifest ``digest`` from ``repository``, checked first.

    Refused, nothing deleted: BreaksIndex when a tagged index of the repository
    references it at any depth (a platform of a multi-arch image: deleting it breaks
    every tag of that image) unless ``break_indexes``; OtherTagsAffected when tags
    point at it (they would go with it) unless ``delete_tags``. A missing manifest
    raises NotFound. :meth:`reginsight.Registry.delete_manifest` is the same DELETE
    without these checks.
    """
    reg.manifest_digest(repository, digest)  # a missing manifest: NotFound, said clearly
    before, keeps = holders_now(reg, repository, digest)
    if not break_indexes:
        _refuse_breaking(repository, f"{repository}@{digest} is", keeps,
                         "deleting it would break")
    if keeps.tags and not delete_tags:
        shown = ", ".join(f"{repository}:{t}" for t in keeps.tags)
        raise OtherTagsAffected(
            f"deleting {repository}@{digest} would also remove the tags {shown}; "
            "nothing deleted: pass delete_tags=True to remove them too", tags=keeps.tags)
    reg.delete_manifest(repository, digest)
    return DigestDeletion(repository, digest, keeps.tags, keeps.indexes,
                          _lost(reg, repository, before, keeps.tags))


def _lost(reg: Registry, repository: str, before: TagState, removed: tuple[str, ...]
          ) -> tuple[str, ...]:
    """Tags there before the DELETE, not meant to go, and gone after it: moved onto
    the digest in the window between the check and the DELETE."""
    return tuple(sorted(set(before) - set(listed_tags(reg, repository)) - set(removed)))


def _refuse_breaking(repository: str, what: str, keeps: Holders, consequence: str) -> None:
    """BreaksIndex when tagged indexes hold the digest: ``<what> referenced by the
    tagged index team/app:1.0; <consequence> that image; nothing deleted``."""
    if keeps.indexes:
        shown = ", ".join(f"{repository}:{t}" for t in keeps.indexes)
        raise BreaksIndex(f"{what} referenced by the tagged index"
                          f"{'es' if len(keeps.indexes) > 1 else ''} {shown}; {consequence} "
                          "that image; nothing deleted", indexes=keeps.indexes)
