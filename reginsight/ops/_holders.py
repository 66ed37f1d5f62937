"""What keeps a manifest in a repository right now, read from the registry: the tags
whose digest it is, and the tagged indexes that reference it at any depth.

Every deletion asks this first: a DELETE by digest removes every tag on the digest,
and deleting a platform of a multi-arch image breaks every tag of that image.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import _mediatypes as mt
from .._errors import NotFound

if TYPE_CHECKING:
    from ..registry._client import Registry
    from ..registry._manifest import Descriptor

#: tag -> what it points at now (HEAD)
TagState = Mapping[str, "Descriptor"]
_Node = tuple[str, "str | None"]  # (digest, media type)


def tag_descriptors(reg: Registry, repository: str, *, concurrency: int = 8
                    ) -> dict[str, Descriptor]:
    """tag -> Descriptor (HEAD) for every tag ``repository`` has now; a tag deleted
    while we look is left out, and so is a repository with no tag at all. A tag that
    is still listed but cannot be read raises its NotFound."""
    tags = listed_tags(reg, repository)

    def head(tag: str) -> tuple[str, Descriptor | NotFound]:
        try:
            return tag, reg.manifest_descriptor(repository, tag)
        except NotFound as exc:
            return tag, exc

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        found = dict(pool.map(head, tags))
    missing = {tag: exc for tag, exc in found.items() if isinstance(exc, NotFound)}
    if missing:
        # deleted while we looked, or a registry that lists a tag it cannot serve: what
        # such a tag points at is unknown, and a deletion must not guess it is nothing
        still = set(missing) & set(listed_tags(reg, repository))
        if still:
            raise missing[min(still)]
    return {tag: d for tag, d in found.items() if not isinstance(d, NotFound)}


def listed_tags(reg: Registry, repository: str) -> list[str]:
    """The tag listing (every page); a repository that has none is ``[]``."""
    try:
        return reg.tags(repository)
    except NotFound:
        return []


@dataclass(frozen=True)
class Holders:
    """What a deletion of one digest would take with it: ``tags`` pointing at the
    digest (deleted with it), and ``indexes``, the tags of other manifests that
    reach it through an index (their images break), each sorted."""

    tags: tuple[str, ...] = ()
    indexes: tuple[str, ...] = ()


class IndexReach:
    """Which manifests the tagged indexes of a repository reach. An index's children
    are fetched once per digest (a digest's content never changes) and kept for the
    object's life, so re-reading the tags before every deletion costs HEADs only."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self._children: dict[tuple[str, str], tuple[_Node, ...]] = {}

    def holders(self, repository: str, digest: str, tags: TagState) -> Holders:
        """Who keeps ``digest`` among ``tags`` (a repository's tags as read just now)."""
        on_digest = sorted(tag for tag, found in tags.items() if found.digest == digest)
        by_index: dict[_Node, list[str]] = {}  # each index walked once, whatever tags it has
        for tag, found in tags.items():
            if found.digest != digest and mt.is_index(found.media_type):
                by_index.setdefault((found.digest, found.media_type), []).append(tag)
        through = sorted(tag for index, names in by_index.items()
                         if digest in self.reach(repository, index) for tag in names)
        return Holders(tuple(on_digest), tuple(through))

    def reach(self, repository: str, root: _Node) -> set[str]:
        """Every manifest ``root`` (digest, media type) reaches, itself included,
        through indexes at any depth (a loop ends)."""
        # here, not at the top: that module loads pandas, and `import reginsight` stays light
        from ..inventory._reach import reachable

        return {digest for digest, _ in reachable(
            [root], lambda node: self._successors(repository, node))}

    def _successors(self, repository: str, node: _Node) -> tuple[_Node, ...]:
        digest, media_type = node  # only manifests known to be indexes are fetched
        return self._entries(repository, digest) if mt.is_index(media_type) else ()

    def _entries(self, repository: str, digest: str) -> tuple[_Node, ...]:
        key = (repository, digest)
        if key not in self._children:
            try:
                manifest = self.reg.manifest(repository, digest)
            except NotFound:  # gone (for now: not remembered, it may be pushed again)
                return ()
            self._children[key] = tuple((child.digest, child.media_type)
                                        for child in manifest.manifests)
        return self._children[key]


def holders_now(reg: Registry, repository: str, digest: str) -> tuple[TagState, Holders]:
    """The repository's tags as they are now, and the :class:`Holders` of ``digest``
    among them."""
    tags = tag_descriptors(reg, repository)
    return tags, IndexReach(reg).holders(repository, digest, tags)
