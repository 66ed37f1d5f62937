"""Cleanup: plan which tags to delete (pure), then apply the plan (dry run by default).

Tags sharing a digest are decided together: deleting a manifest deletes every tag
on its digest, so a digest any kept or protected tag points at is kept, and the
plan says why. A digest that a kept index references is kept too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._analysis import reclaimable
from ._crawl import RepositoryFilter, select_repositories
from ._errors import NotFound, RegistryError, UnsupportedOperation
from ._mediatypes import is_index

if TYPE_CHECKING:
    from ._client import Registry
    from ._inventory import Inventory

PLAN_COLUMNS = ["repository", "tag", "digest", "created", "action", "reason"]
RESULT_COLUMNS = ["repository", "tag", "digest", "status", "detail"]


class PlanError(RegistryError, ValueError):
    """A cleanup rule cannot be understood (e.g. ``older_than="soon"``)."""


class CleanupStopped(RegistryError):
    """The registry refused a deletion in a way that makes going on pointless (405:
    deletion disabled). ``result`` holds the frame of what was done up to then."""

    def __init__(self, message: str, *, result: pd.DataFrame) -> None:
        super().__init__(message)
        self.result = result


def _age_limit(older_than: str | dt.timedelta | None) -> pd.Timedelta | None:
    if older_than is None:
        return None
    short = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", older_than) \
        if isinstance(older_than, str) else None
    if short:  # "90d", "12h", "4w": spelt out, since pandas deprecates lower-case "d"
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
        older_than = dt.timedelta(**{unit[short.group(2)]: float(short.group(1))})
    try:
        limit = pd.Timedelta(older_than)
    except (ValueError, TypeError):
        raise PlanError(f"older_than={older_than!r}: give a timedelta or e.g. '90d', '12h'"
                        ) from None
    if pd.isna(limit) or limit < pd.Timedelta(0):
        raise PlanError(f"older_than={older_than!r} must be a positive duration")
    return limit


def _protected(frame: pd.DataFrame, protect: str | re.Pattern[str] | Iterable[str] | None
               ) -> pd.Series:
    """Tags ``protect`` covers: a regex searched in the tag name, or a list of tag names
    and ``repository:tag`` pairs."""
    if protect is None:
        return pd.Series(False, index=frame.index)
    tags = frame["tag"].astype(str)
    if isinstance(protect, str | re.Pattern):
        try:
            pattern = re.compile(protect)
        except re.error as exc:
            raise PlanError(f"protect={protect!r} is not a regular expression: {exc}"
                            ) from None
        return tags.map(lambda t: bool(pattern.search(t))).astype(bool)
    names = {str(p) for p in protect}
    return tags.isin(names) | (frame["repository"].astype(str) + ":" + tags).isin(names)


def image_created(inv: Inventory) -> pd.Series:
    """Creation time per (repository, digest); an index takes its newest child's."""
    created = inv.manifests.set_index(["repository", "digest"])["created"]
    children = inv.children.merge(
        inv.manifests[["repository", "digest", "created"]], on=["repository", "digest"])
    newest_child = children.groupby(["repository", "index"], observed=True)["created"].max()
    newest_child.index = newest_child.index.set_names(["repository", "digest"])
    created = created.copy()
    missing = created.isna() & created.index.isin(newest_child.index)
    created[missing] = newest_child.reindex(created.index[missing])
    return created


def plan_cleanup(
    inv: Inventory,
    *,
    keep_last: int | None = None,
    older_than: str | dt.timedelta | None = None,
    protect: str | re.Pattern[str] | Iterable[str] | None = None,
    repositories: RepositoryFilter = None,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Decide, per tag, ``delete`` or ``keep``, with the reason. Pure: no I/O.

    A tag is deleted when every rule given allows it: not among the ``keep_last``
    newest images (distinct digests) of its repository, and created more than
    ``older_than`` before ``now``. ``protect`` (regex on the tag, or names and
    ``repo:tag`` pairs) keeps tags whatever the rules say. A digest stays when any tag
    on it stays, or when a kept index references it. With no rule, nothing is deleted.

    Columns: repository (string), tag (string), digest (string), created
    (datetime64[ns, UTC]; an index: its newest child), action (delete/keep), reason
    (string). ``.attrs["reclaimable_bytes"]``: what garbage collection frees after the
    plan is applied (see :func:`reginsight.reclaimable`).
    """
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise PlanError(f"keep_last={keep_last!r} must be a non-negative integer")
    limit = _age_limit(older_than)
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    names = [str(r) for r in inv.tags["repository"].cat.categories]
    if isinstance(repositories, str | re.Pattern) or repositories is None:
        scope = set(select_repositories(names, repositories))
    else:
        scope = {str(r) for r in repositories}
    frame = inv.tags[inv.tags["repository"].astype(str).isin(scope)][
        ["repository", "tag", "digest"]].astype("string").reset_index(drop=True)
    created = image_created(inv)
    keys = pd.MultiIndex.from_arrays([frame["repository"], frame["digest"]])
    frame["created"] = created.reindex(keys).to_numpy()
    frame["created"] = frame["created"].astype("datetime64[ns, UTC]")
    reasons = pd.Series(pd.NA, index=frame.index, dtype="string")

    def keep(mask: pd.Series, why: str | pd.Series) -> None:
        chosen = mask & reasons.isna()
        reasons[chosen] = why if isinstance(why, str) else why[chosen]

    keep(_protected(frame, protect), "protected")
    if keep_last is None and limit is None:
        keep(pd.Series(True, index=frame.index), "no rule given")
    if keep_last is not None:
        images = frame.drop_duplicates(["repository", "digest"])
        rank = images.sort_values(["created", "digest"], ascending=[False, True],
                                  na_position="first").groupby("repository").cumcount()
        newest = images.loc[rank[rank < keep_last].index, ["repository", "digest"]]
        in_newest = keys.isin(pd.MultiIndex.from_frame(newest))
        keep(pd.Series(in_newest, index=frame.index), f"among the {keep_last} newest images")
    if limit is not None:
        keep(frame["created"].isna(), "creation time unknown")
        keep(frame["created"] >= now - limit, f"newer than {older_than}")

    # tags on one digest share its fate: one kept tag keeps them all
    for _ in range(2):  # twice: a digest kept via an index may keep more tags
        kept = frame[reasons.notna()]
        first_kept = kept.groupby(["repository", "digest"])["tag"].first()
        shared = pd.Series(keys.isin(first_kept.index), index=frame.index)
        keep(shared, "shares its digest with kept tag " + pd.Series(
            first_kept.reindex(keys).to_numpy(), index=frame.index).fillna(""))
        children = inv.children[["repository", "index", "digest"]].astype("string")
        kept_children = children.merge(
            frame.loc[reasons.notna(), ["repository", "digest", "tag"]].rename(
                columns={"digest": "index"}), on=["repository", "index"])
        referenced = kept_children.groupby(["repository", "digest"])["tag"].first()
        keep(pd.Series(keys.isin(referenced.index), index=frame.index),
             "referenced by kept index " + pd.Series(
                 referenced.reindex(keys).to_numpy(), index=frame.index).fillna(""))

    frame["action"] = reasons.isna().map({True: "delete", False: "keep"}).astype("string")
    rules = []
    if keep_last is not None:
        rules.append(f"not among the {keep_last} newest")
    if limit is not None:
        rules.append(f"older than {older_than}")
    frame["reason"] = reasons.fillna(", ".join(rules)).astype("string")
    frame = frame[PLAN_COLUMNS].sort_values(["repository", "tag"], ignore_index=True)
    doomed = frame[frame["action"] == "delete"]
    frame.attrs["reclaimable_bytes"] = reclaimable(inv, doomed) if len(doomed) else 0
    return frame


# ------------------------------------------------------------------ applying


def _current_digests(reg: Registry, repository: str) -> dict[str, Any]:
    """tag -> Descriptor for every tag the repository has now."""
    try:
        tags = reg.tags(repository)
    except NotFound:
        return {}

    def head(tag: str) -> tuple[str, Any]:
        try:
            return tag, reg.manifest_descriptor(repository, tag)
        except NotFound:
            return tag, None

    with ThreadPoolExecutor(8) as pool:
        return {tag: d for tag, d in pool.map(head, tags) if d is not None}


def _still_referenced(reg: Registry, repository: str, current: dict[str, Any]) -> set[str]:
    """Manifests the repository's remaining tags reach, through indexes."""
    reached = {d.digest for d in current.values()}
    for descriptor in current.values():
        if is_index(descriptor.media_type):
            reached |= {c.digest for c in reg.manifest(repository, descriptor.digest).manifests}
    return reached


def apply_cleanup(reg: Registry, plan: pd.DataFrame, *, dry_run: bool = True) -> pd.DataFrame:
    """Carry out the ``delete`` rows of a plan: by default only say what would happen.

    Before deleting a digest, each tag is checked again: a tag that moved since the
    crawl is skipped, and a digest that has gained a tag the plan did not choose is
    not deleted. Deleting an index also deletes its children that no remaining tag
    reaches. A 405 (deletion disabled) raises CleanupStopped at once, with the result
    so far, and no further request is made.

    Columns: repository, tag, digest, status (would delete / deleted / skipped /
    not attempted), detail (all string). Index children appear with an empty tag.
    """
    rows: list[tuple[str, str, str, str, str]] = []
    doomed = plan[plan["action"] == "delete"]
    status = "would delete" if dry_run else "deleted"
    work = []
    for repository, group in doomed.groupby("repository", sort=True):
        current = _current_digests(reg, str(repository))
        for digest, tags in group.groupby("digest", sort=True)["tag"]:
            work.append((str(repository), str(digest), set(tags.astype(str)), current))
    # indexes before the manifests they list: a child goes only once nothing reaches it
    work.sort(key=lambda item: not any(
        d.digest == item[1] and is_index(d.media_type) for d in item[3].values()))
    deleted: set[tuple[str, str]] = set()
    for number, (repository, digest, planned, current) in enumerate(work):
        now_on = {t for t, d in current.items() if d.digest == digest}
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
        descriptor = current[next(iter(now_on))]
        children = (reg.manifest(repository, digest).manifests
                    if is_index(descriptor.media_type) else ())
        if not dry_run:
            try:
                reg.delete_manifest(repository, digest)
            except UnsupportedOperation as exc:
                rows += [(repository, tag, digest, "failed", str(exc)) for tag in sorted(now_on)]
                rows += [(r, t, d, "not attempted", "stopped: deletion refused")
                         for r, d, later, _ in work[number + 1:] for t in sorted(later)]
                raise CleanupStopped(
                    f"{reg.url} refused to delete ({exc}); stopped, nothing more was sent",
                    result=_result(rows)) from None
        deleted.add((repository, digest))
        rows += [(repository, tag, digest, status, "") for tag in sorted(now_on)]
        for tag in now_on:  # these tags are gone now (or would be)
            current.pop(tag)
        still = _still_referenced(reg, repository, current)
        for child in children:
            if child.digest in still or (repository, child.digest) in deleted:
                continue
            if not dry_run:
                with contextlib.suppress(NotFound):  # gone already: what we wanted
                    reg.delete_manifest(repository, child.digest)
            deleted.add((repository, child.digest))
            rows.append((repository, "", child.digest, status, f"child of index {digest}"))
    return _result(rows)


def _result(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype("string")
