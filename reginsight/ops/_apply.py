"""Carry out a cleanup plan against the registry: a dry run unless told otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from .. import _mediatypes as mt
from .._errors import CleanupStopped, NotFound, PlanError, RegistryError, UnsupportedOperation
from ..inventory._reach import reachable
from ._tagdelete import tag_descriptors

if TYPE_CHECKING:
    from ..registry._client import Registry

RESULT_COLUMNS = ["repository", "tag", "digest", "status", "detail"]




class _Indexes:
    """The indexes of one apply run, each fetched once, and what they reach."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self._children: dict[tuple[str, str], tuple[tuple[str, str | None], ...]] = {}

    def below(self, repository: str, index: str) -> list[str]:
        """Every manifest an index reaches, at any depth, itself left out: its own
        children first, in its order, then the deeper ones."""
        entries = list(self._entries(repository, index))
        own = [child for child, _ in entries]
        deeper = self._reach(repository, entries) - {index} - set(own)
        return own + sorted(deeper)

    def _entries(self, repository: str, digest: str) -> tuple[tuple[str, str | None], ...]:
        key = (repository, digest)
        if key not in self._children:
            manifest = self.reg.manifest(repository, digest)
            self._children[key] = tuple((c.digest, c.media_type) for c in manifest.manifests)
        return self._children[key]

    def reached(self, repository: str, current: dict[str, Any]) -> set[str]:
        """Manifests the repository's remaining tags reach, through indexes at any depth."""
        return self._reach(repository, [(d.digest, d.media_type) for d in current.values()])

    def _reach(self, repository: str, roots: list[tuple[str, str | None]]) -> set[str]:
        def successors(node: tuple[str, str | None]) -> tuple[tuple[str, str | None], ...]:
            digest, media_type = node  # only manifests known to be indexes are fetched
            return self._entries(repository, digest) if mt.is_index(media_type) else ()

        return {digest for digest, _ in reachable(roots, successors)}


def apply_cleanup(reg: Registry, plan: pd.DataFrame, *, dry_run: bool = True) -> pd.DataFrame:
    """Carry out the ``delete`` rows of a plan: by default only say what would happen.

    Before deleting a digest, each tag is checked again: a tag that moved since the
    crawl is skipped, and a digest that has gained a tag the plan did not choose is
    not deleted. Deleting an index also deletes its children that no remaining tag
    reaches. A 405 (deletion disabled) raises CleanupStopped at once, with the result
    so far, and no further request is made.

    Rows with no tag (``plan_cleanup(untagged=True)``) delete an untagged manifest by
    digest, unless a tag now points at it or a tagged index now lists it.

    Columns: repository, tag, digest, status (would delete / deleted / skipped /
    not attempted), detail (all string). Index children and untagged manifests appear
    with an empty tag.
    """
    missing = {"repository", "tag", "digest", "action"} - set(getattr(plan, "columns", ()))
    if missing:
        raise PlanError(f"a plan needs the columns of plan_cleanup; missing {sorted(missing)}")
    rows: list[tuple[str, str, str, str, str]] = []
    doomed = plan[plan["action"] == "delete"]
    status = "would delete" if dry_run else "deleted"
    indexes = _Indexes(reg)
    work = []
    for repository, group in doomed.groupby("repository", sort=True):
        current = tag_descriptors(reg, str(repository))
        index_digests = {d.digest for d in current.values() if mt.is_index(d.media_type)}
        for digest, tags in group.groupby("digest", sort=True)["tag"]:
            # NA tag: an untagged manifest (plan_cleanup(untagged=True)), deleted by digest
            work.append((str(repository), str(digest), set(tags.dropna().astype(str)), current,
                         str(digest) in index_digests, bool(tags.isna().any())))
    # indexes before the manifests they list: a child goes only once nothing reaches it
    work.sort(key=lambda item: not item[4])
    deleted: set[tuple[str, str]] = set()

    def delete(repository: str, digest: str) -> str | None:
        """DELETE (unless a dry run); the reason it failed, or None. A 405 propagates."""
        if dry_run:
            return None
        try:
            reg.delete_manifest(repository, digest)
        except NotFound:
            return None  # gone already: what we wanted
        except UnsupportedOperation as exc:
            if exc.status == 405:
                raise
            return str(exc)
        except RegistryError as exc:  # 403, an outage: this one failed, others may not
            return str(exc)
        return None

    def stop(number: int, failed: list[tuple[str, str, str]], exc: Exception) -> NoReturn:
        rows.extend((r, t, d, "failed", str(exc)) for r, t, d in failed)
        rows.extend((r, t, d, "not attempted", "stopped: deletion refused")
                    for r, d, later, *_ in work[number + 1:] for t in sorted(later) or [""])
        raise CleanupStopped(
            f"{reg.url} refused to delete ({exc}); stopped, nothing more was sent",
            result=_result(rows)) from None

    def delete_untagged(number: int, repository: str, digest: str, why: str) -> None:
        """Delete a manifest no tag names (an index's child, an untagged one): a row
        with an empty tag."""
        try:
            failure = delete(repository, digest)
        except UnsupportedOperation as exc:
            stop(number, [(repository, "", digest)], exc)
        deleted.add((repository, digest))
        rows.append((repository, "", digest, "failed" if failure else status, failure or why))

    for number, (repository, digest, planned, current, index, untagged) in enumerate(work):
        now_on = {t for t, d in current.items() if d.digest == digest}
        if untagged and not planned:  # by digest, unless it gained a tag or a tagged index
            skip = (f"now tagged {', '.join(sorted(now_on))}; not in the plan" if now_on else
                    "a tagged index now lists it"
                    if digest in indexes.reached(repository, current) else None)
            if skip:
                rows.append((repository, "", digest, "skipped", skip))
            else:
                delete_untagged(number, repository, digest, "untagged")
            continue
        for tag in sorted(planned - now_on):
            moved = current.get(tag)
            rows.append((repository, tag, digest, "skipped",
                         f"moved to {moved.digest}" if moved else "no longer exists"))
        extra = now_on - planned
        if extra:
            rows += [(repository, tag, digest, "skipped",
                      f"digest now also tagged {', '.join(sorted(extra))}; not in the plan")
                     for tag in sorted(now_on & planned)]
            continue
        if not now_on:
            continue
        children = indexes.below(repository, digest) if index else []
        try:
            failure = delete(repository, digest)
        except UnsupportedOperation as exc:
            stop(number, [(repository, t, digest) for t in sorted(now_on)], exc)
        if failure:
            rows += [(repository, tag, digest, "failed", failure) for tag in sorted(now_on)]
            continue
        deleted.add((repository, digest))
        rows += [(repository, tag, digest, status, "") for tag in sorted(now_on)]
        for tag in now_on:  # these tags are gone now (or would be)
            current.pop(tag)
        still = indexes.reached(repository, current)
        for child in children:
            if child not in still and (repository, child) not in deleted:
                delete_untagged(number, repository, child, f"child of index {digest}")
    return _result(rows)


def _result(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype("string")
