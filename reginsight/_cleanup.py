"""Cleanup: plan which tags to delete (pure), then apply the plan (dry run by default).

Tags sharing a digest are decided together: deleting a manifest deletes every tag
on its digest, so a digest any kept or protected tag points at is kept, and the
plan says why. A digest that a kept index references is kept too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from ._analysis import reclaimable
from ._crawl import RepositoryFilter, select_repositories
from ._errors import NotFound, PlanError, RegistryError, UnsupportedOperation
from ._mediatypes import is_index
from ._tagdelete import tag_descriptors

if TYPE_CHECKING:
    from ._client import Registry
    from ._inventory import Inventory

#: The policy the report and the explorer start from.
SUGGESTED_POLICY = {"keep_last": 3, "older_than": "180d", "protect": r"^(latest|stable)$"}

PLAN_COLUMNS = ["repository", "tag", "digest", "created", "action", "reason"]
RESULT_COLUMNS = ["repository", "tag", "digest", "status", "detail"]


class CleanupStopped(RegistryError):
    """The registry refused a deletion in a way that makes going on pointless (405:
    deletion disabled). ``result`` holds the frame of what was done up to then."""

    def __init__(self, message: str, *, result: pd.DataFrame) -> None:
        super().__init__(message)
        self.result = result


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
    now = _utc(now)  # a naive time is taken as UTC
    names = [str(r) for r in inv.tags["repository"].cat.categories]
    scope = set(select_repositories(names, repositories))
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

    def keep_digests(kept_by: pd.Series, why: str) -> None:
        """Keep every tag whose (repository, digest) is in ``kept_by``, naming the tag
        ``kept_by`` gives as the reason."""
        named = pd.Series(kept_by.reindex(keys).to_numpy(), index=frame.index)
        keep(pd.Series(keys.isin(kept_by.index), index=frame.index), why + named.fillna(""))

    children = inv.children[["repository", "index", "digest"]].astype("string")
    # tags on one digest share its fate: one kept tag keeps them all
    for _ in range(2):  # twice: a digest kept via an index may keep more tags
        kept = frame[reasons.notna()]
        keep_digests(kept.groupby(["repository", "digest"])["tag"].first(),
                     "shares its digest with kept tag ")
        kept_children = children.merge(
            kept[["repository", "digest", "tag"]].rename(columns={"digest": "index"}),
            on=["repository", "index"])
        keep_digests(kept_children.groupby(["repository", "digest"])["tag"].first(),
                     "referenced by kept index ")

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


class _Indexes:
    """Children of the indexes of one apply run, each index fetched once."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self._children: dict[tuple[str, str], tuple[str, ...]] = {}

    def children(self, repository: str, digest: str) -> tuple[str, ...]:
        key = (repository, digest)
        if key not in self._children:
            manifest = self.reg.manifest(repository, digest)
            self._children[key] = tuple(c.digest for c in manifest.manifests)
        return self._children[key]

    def reached(self, repository: str, current: dict[str, Any]) -> set[str]:
        """Manifests the repository's remaining tags reach, through indexes."""
        found = {d.digest for d in current.values()}
        for descriptor in current.values():
            if is_index(descriptor.media_type):
                found.update(self.children(repository, descriptor.digest))
        return found


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
        index_digests = {d.digest for d in current.values() if is_index(d.media_type)}
        for digest, tags in group.groupby("digest", sort=True)["tag"]:
            work.append((str(repository), str(digest), set(tags.astype(str)), current,
                         str(digest) in index_digests))
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
                    for r, d, later, _, _ in work[number + 1:] for t in sorted(later))
        raise CleanupStopped(
            f"{reg.url} refused to delete ({exc}); stopped, nothing more was sent",
            result=_result(rows)) from None

    for number, (repository, digest, planned, current, index) in enumerate(work):
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
        children = indexes.children(repository, digest) if index else ()
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
            if child in still or (repository, child) in deleted:
                continue
            try:
                failure = delete(repository, child)
            except UnsupportedOperation as exc:
                stop(number, [(repository, "", child)], exc)
            deleted.add((repository, child))
            rows.append((repository, "", child, "failed" if failure else status,
                         failure or f"child of index {digest}"))
    return _result(rows)


def _result(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype("string")
