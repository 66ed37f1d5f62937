"""Cleanup plans: which tags to delete, and why each is kept. Pure: no I/O.

Tags sharing a digest are decided together: deleting a manifest deletes every tag
on its digest, so a digest any kept or protected tag points at is kept, and the
plan says why. A manifest that a kept index reaches, at any depth, is kept too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._errors import PlanError
from ..analysis._disk import freed_after
from ..analysis._history import image_created
from ..analysis._reclaim import reclaimable, removed_by_tags
from ..inventory._facts import RepositoryFilter, select_repositories
from ..inventory._reach import Reach

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: The policy the report and the explorer start from.
SUGGESTED_POLICY = {"keep_last": 3, "older_than": "180d", "protect": r"^(latest|stable)$"}

PLAN_COLUMNS = ["repository", "tag", "digest", "created", "action", "reason"]


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _age_limit(older_than: str | dt.timedelta | None) -> pd.Timedelta | None:
    """``"90d"``, ``"12h"``, ``"4w"`` or a timedelta. A bare number is refused: pandas
    would read ``"90"`` as 90 nanoseconds and plan to delete nearly everything."""
    if older_than is None:
        return None
    if isinstance(older_than, str):
        short = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", older_than)
        if short is None:
            raise PlanError(f"older_than={older_than!r}: give a number and a unit, "
                            "e.g. '90d', '12h', '4w'")
        try:
            limit = pd.Timedelta(dt.timedelta(**{_UNITS[short.group(2)]: float(short.group(1))}))
        except OverflowError:
            raise PlanError(f"older_than={older_than!r} is too long") from None
    elif isinstance(older_than, dt.timedelta):  # pd.Timedelta is one too
        limit = pd.Timedelta(older_than)
    else:
        raise PlanError(f"older_than={older_than!r}: give a timedelta or e.g. '90d'")
    if pd.isna(limit) or limit <= pd.Timedelta(0):
        raise PlanError(f"older_than={older_than!r} must be a positive duration")
    return limit


def _utc(now: Any) -> pd.Timestamp:
    when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")


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


def plan_cleanup(
    inv: Inventory,
    *,
    keep_last: int | None = None,
    older_than: str | dt.timedelta | None = None,
    protect: str | re.Pattern[str] | Iterable[str] | None = None,
    repositories: RepositoryFilter = None,
    untagged: bool = False,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Decide, per tag, ``delete`` or ``keep``, with the reason. Pure: no I/O.

    A tag is deleted when every rule given allows it: not among the ``keep_last``
    newest images (distinct digests) of its repository, and created more than
    ``older_than`` before ``now``. ``protect`` (regex on the tag, or names and
    ``repo:tag`` pairs) keeps tags whatever the rules say. A digest stays when any tag
    on it stays, or when a kept index references it. With no rule, no tag is deleted.

    ``untagged=True`` (an inventory from :func:`reginsight.scan_storage`) adds a row
    for every manifest no tag reaches, tag NA, action ``delete``: deleted by digest
    through the API, then a plain ``garbage-collect`` frees their blobs. A child of
    an index that a tag reaches is never one of them. This is the safe alternative
    to ``garbage-collect --delete-untagged``, which also removes those children.

    Columns: repository (string), tag (string), digest (string), created
    (datetime64[ns, UTC]; an index: its newest child), action (delete/keep), reason
    (string). ``.attrs["reclaimable_bytes"]``: what garbage collection frees after the
    plan is applied (see :func:`reginsight.reclaimable`).
    """
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise PlanError(f"keep_last={keep_last!r} must be a non-negative integer")
    limit = _age_limit(older_than)
    now = _utc(now)  # a naive time is taken as UTC
    names = sorted({*inv.tags["repository"].astype(str), *inv.manifests["repository"].astype(str)})
    scope = set(select_repositories(names, repositories))
    in_scope = inv.tags["repository"].astype(str).isin(scope).to_numpy()
    rows = np.flatnonzero(in_scope)  # the plan's tags, as row numbers of inv.tags
    frame = inv.tags[in_scope][["repository", "tag", "digest"]].astype("string").reset_index(
        drop=True)
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

    # tags on one digest share its fate, and a kept index keeps all it reaches
    reach = Reach.of(inv)
    kept = rows[reasons.notna().to_numpy()]
    if len(kept):
        tag_names = inv.tags["tag"].astype(str).to_numpy()
        placed = reach.placement(reach.tag_repository[rows], reach.tag_manifest[rows])
        through = reach.reach_tag[np.isin(reach.reach_tag, kept)]
        reached = reach.reach_manifest[np.isin(reach.reach_tag, kept)]
        for why, where, tags in (
            ("shares its digest with kept tag ",
             reach.placement(reach.tag_repository[kept], reach.tag_manifest[kept]), kept),
            ("referenced by kept index ",
             reach.placement(reach.tag_repository[through], reached), through),
        ):
            first = pd.Series(tag_names[tags], index=where).sort_values()  # first by name
            first = first[~first.index.duplicated()]
            named = pd.Series(first.reindex(placed).to_numpy(), index=frame.index)
            keep(named.notna(), why + named.fillna(""))

    frame["action"] = reasons.isna().map({True: "delete", False: "keep"}).astype("string")
    rules = []
    if keep_last is not None:
        rules.append(f"not among the {keep_last} newest")
    if limit is not None:
        rules.append(f"older than {older_than}")
    frame["reason"] = reasons.fillna(", ".join(rules)).astype("string")
    frame = frame[PLAN_COLUMNS]
    doomed = frame[frame["action"] == "delete"]
    if untagged:
        extra = _untagged_rows(inv, scope, created)
        frame = pd.concat([frame, extra], ignore_index=True) if len(frame) else extra
    frame = frame.sort_values(["repository", "tag", "digest"], ignore_index=True)
    if inv.from_storage:  # exact: untagged revisions keep what they reference
        removed = removed_by_tags(inv, doomed) if len(doomed) else set()
        if untagged:
            removed |= set(zip(extra["repository"], extra["digest"], strict=True))
        frame.attrs["reclaimable_bytes"] = int(freed_after(inv, removed)["size"].sum())
    else:
        frame.attrs["reclaimable_bytes"] = reclaimable(inv, doomed) if len(doomed) else 0
    return frame


def _untagged_rows(inv: Inventory, scope: set[str], created: pd.Series) -> pd.DataFrame:
    """A delete row (tag NA) per manifest no tag reaches, in the chosen repositories."""
    if not inv.from_storage:
        raise PlanError("untagged=True needs an inventory read from the registry's storage "
                        "(reginsight.scan_storage): the API does not list untagged manifests")
    manifests = inv.manifests
    chosen = manifests[~manifests["tagged"] & manifests["repository"].astype(str).isin(scope)]
    frame = pd.DataFrame({
        "repository": pd.array(chosen["repository"].astype(str), dtype="string"),
        "tag": pd.array([pd.NA] * len(chosen), dtype="string"),
        "digest": pd.array(chosen["digest"].astype(str), dtype="string"),
    })
    keys = pd.MultiIndex.from_arrays([frame["repository"], frame["digest"]])
    frame["created"] = created.reindex(keys).to_numpy()
    frame["created"] = frame["created"].astype("datetime64[ns, UTC]")
    frame["action"] = pd.array(["delete"] * len(frame), dtype="string")
    frame["reason"] = pd.array(["untagged"] * len(frame), dtype="string")
    return frame[PLAN_COLUMNS]
