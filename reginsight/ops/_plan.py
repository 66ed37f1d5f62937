"""Cleanup plans: which tags to delete, and why each is kept. Pure: no I/O.

Tags sharing a digest are decided together: deleting a manifest deletes every tag
on its digest, so a digest any kept or protected tag points at is kept, and the
plan says why. A manifest that a kept index reaches, at any depth, is kept too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._artifacts import IMAGE_ROLES
from .._errors import PlanError
from .._policy import age_limit, protect_pattern
from ..analysis._history import image_created
from ..analysis._reclaim import reclaimable, removed_by_tags
from ..analysis._referrers import manifest_roles
from ..inventory._reach import Reach
from ..inventory._selection import RepositoryFilter, select_repositories
from ..usage._frame import utc_now
from ._fates import ReferrerFates
from ._unpulled import UnpulledRule, unpulled_rule

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

PLAN_COLUMNS = ["repository", "tag", "digest", "created", "action", "reason"]
#: a creation time at or before this is a placeholder (reproducible builds, cosign)
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def _age_limit(older_than: str | dt.timedelta | None) -> pd.Timedelta | None:
    limit = age_limit(older_than)
    return None if limit is None else pd.Timedelta(limit)


def _protected(frame: pd.DataFrame, protect: str | re.Pattern[str] | Iterable[str] | None
               ) -> pd.Series:
    """Tags ``protect`` covers: a regex searched in the tag name, or a list of tag names
    and ``repository:tag`` pairs."""
    if protect is None:
        return pd.Series(False, index=frame.index)
    tags = frame["tag"].astype(str)
    if isinstance(protect, str | re.Pattern):
        pattern = protect_pattern(protect)
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
    orphans: bool = False,
    now: pd.Timestamp | None = None,
    collector: str | None = None,
    pulls: pd.DataFrame | None = None,
    unpulled_for: str | dt.timedelta | None = None,
) -> pd.DataFrame:
    """Decide, per tag, ``delete`` or ``keep``, with the reason. Pure: no I/O.

    The rules count and order images and indexes only (``manifests.role``), and only
    those about no other manifest. An image is deleted when every rule given allows
    it: not among the ``keep_last`` newest images (distinct digests) of its
    repository, created more than ``older_than`` before ``now``, and not used within
    ``unpulled_for`` before ``now``. With ``keep_last`` or ``older_than``, one whose
    creation time is unknown (none, or at or before 1970-01-01, the placeholder of
    reproducible builds and cosign) is kept and takes no ``keep_last`` place.

    ``unpulled_for`` (with ``pulls``, from :func:`reginsight.read_pulls`) never
    deletes an image pulled within the window (a GET or HEAD of it, by any tag or its
    digest, or of anything it reaches, see :func:`reginsight.last_pulled`), pushed
    within it, or created within it. A missing record means "not used" only when the
    records cover the whole window; otherwise each image without a pull in it is
    kept, and the reason says what the records lack. With ``pulls``, an untagged
    manifest (``untagged=True``) pulled by digest within the window is kept too.
    ``protect`` (regex on the tag, or names and ``repo:tag`` pairs) keeps tags
    whatever the rules say. A digest stays when any tag on it stays, or when a kept
    index reaches it. With no rule, no image is deleted. Other artifacts without a
    subject (Helm charts, ...) are kept.

    A referrer (a manifest with a ``subject``: signature, SBOM, attestation) is kept
    with its subject and deleted with it, reason ``referrer of <subject>``. One whose
    subject is gone is kept unless ``orphans=True``; one whose subject is held in
    another repository (cosign's ``COSIGN_REPOSITORY``) is never deleted as an orphan.
    Referrers no tag reaches (listed by the referrers API, or found in the storage)
    get rows with tag NA when they are deleted.

    ``untagged=True`` (an inventory from :func:`reginsight.scan_storage`) adds a row
    for every manifest no tag reaches, tag NA, action ``delete``: deleted by digest
    through the API, then a plain ``garbage-collect`` frees their blobs. A child of
    an index that a tag reaches is never one of them, nor a referrer of a kept
    manifest. This is the safe alternative to ``garbage-collect --delete-untagged``,
    which also removes those children.

    Deleting an index deletes the children no kept manifest reaches (from a storage
    scan, untagged ones included): they are rows too, tag NA, reason ``child of index
    <digest>``, so the plan lists everything :func:`reginsight.apply_cleanup` deletes
    (it deletes nothing a plan does not list), and their bytes count.

    Columns: repository (string), tag (string), digest (string), created
    (datetime64[ns, UTC]; an index: its newest child), action (delete/keep), reason
    (string). ``.attrs["reclaimable_bytes"]``: what garbage collection frees after the
    plan is applied (see :func:`reginsight.reclaimable`; from a storage scan,
    ``collector`` says whose: ``"distribution-2"`` or ``"distribution-3"``, None
    when both free the same; ``.attrs["collector"]`` keeps it).
    """
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise PlanError(f"keep_last={keep_last!r} must be a non-negative integer")
    if untagged and not inv.from_storage:
        raise PlanError("untagged=True needs an inventory read from the registry's storage "
                        "(reginsight.scan_storage): the API does not list untagged manifests")
    limit = _age_limit(older_than)
    unused = unpulled_rule(inv, pulls, unpulled_for, utc_now(now))
    names = sorted({*inv.tags["repository"].astype(str), *inv.manifests["repository"].astype(str)})
    scope = set(select_repositories(names, repositories))
    created = image_created(inv)
    tagged = _by_rules(inv, scope, created, keep_last=keep_last, limit=limit,
                       older_than=older_than, protect=protect, now=utc_now(now), unused=unused)
    plain_untagged = _untagged_rows(inv, scope if untagged else set(), created,
                                    referrers=False)
    spared = plain_untagged[:0]
    if unused is not None:
        plain_untagged, spared = unused.spare_untagged(inv, plain_untagged)
    referrer_rows = _follow_subjects(inv, tagged, plain_untagged, scope, created,
                                     untagged=untagged, orphans=orphans)
    rules = [f"not among the {keep_last} newest"] if keep_last is not None else []
    if limit is not None:
        rules.append(f"older than {older_than}")
    if unused is not None:
        rules.append(f"not pulled for {unused.label}")
    return _plan_frame(inv, tagged, [plain_untagged, referrer_rows, spared], ", ".join(rules),
                       created, collector=collector)


@dataclass(frozen=True)
class _Tagged:
    """The plan's tags (``inv.tags`` rows ``rows``, in scope): one row each in
    ``frame`` (repository, tag, digest, created), what is decided for them so far,
    and which are referrers (a subject) and what their subjects' fates make of them."""

    frame: pd.DataFrame
    rows: np.ndarray
    referrer: np.ndarray
    decided: _Reasons
    fate: pd.Series  # "delete" / "keep" / "" (not a referrer)
    why: pd.Series   # a referrer's reason


def _by_rules(inv: Inventory, scope: set[str], created: pd.Series, *, keep_last: int | None,
              limit: pd.Timedelta | None, older_than: Any, protect: Any, now: pd.Timestamp,
              unused: UnpulledRule | None) -> _Tagged:
    """Step 1, the rules: protect, what is not an image, keep_last, older_than; then
    tags on one digest and a kept index's reach share the fate of what stays."""
    in_scope = inv.tags["repository"].astype(str).isin(scope).to_numpy()
    rows = np.flatnonzero(in_scope)  # the plan's tags, as row numbers of inv.tags
    frame = inv.tags[in_scope][["repository", "tag", "digest"]].astype("string").reset_index(
        drop=True)
    keys = pd.MultiIndex.from_arrays([frame["repository"], frame["digest"]])
    frame["created"] = _created(created, keys)
    about = manifest_roles(inv).reindex(keys)
    referrer = about["subject"].notna().to_numpy()
    image = about["role"].isin(IMAGE_ROLES).to_numpy() & ~referrer
    unknown_time = (frame["created"].isna() | (frame["created"] <= EPOCH)).to_numpy()
    decided = _Reasons(len(frame))
    keep = decided.keep
    keep(_protected(frame, protect), "protected")
    keep(about["role"].isna(), "manifest not read (see errors)")
    keep(~image & ~referrer, (about["role"] + " " + about["artifact_type"].fillna(""))
         .str.strip() + ", not an image")
    if keep_last is None and limit is None and unused is None:
        keep(image, "no rule given")
    if keep_last is not None or limit is not None:
        keep(image & unknown_time, "creation time unknown")
    if keep_last is not None:
        images = frame[image & ~unknown_time].drop_duplicates(["repository", "digest"])
        rank = images.sort_values(["created", "digest"], ascending=[False, True]
                                  ).groupby("repository").cumcount()
        newest = images.loc[rank[rank < keep_last].index, ["repository", "digest"]]
        keep(keys.isin(pd.MultiIndex.from_frame(newest)), f"among the {keep_last} newest images")
    if limit is not None:
        keep(frame["created"] >= now - limit, f"newer than {older_than}")
    if unused is not None:
        for mask, why in unused.reasons(frame, image):
            keep(mask, why)
    _share_fates(inv, rows, decided)
    return _Tagged(frame, rows, referrer, decided,
                   fate=pd.Series("", index=frame.index, dtype=object),
                   why=pd.Series("", index=frame.index, dtype="string"))


def _follow_subjects(inv: Inventory, tagged: _Tagged, plain_untagged: pd.DataFrame,
                     scope: set[str], created: pd.Series, *, untagged: bool, orphans: bool
                     ) -> pd.DataFrame:
    """Step 2, referrer fates: a tagged referrer is kept or deleted with its subject
    (``tagged`` updated in place, and the fates shared again); returns the delete rows
    of the referrers no tag reaches."""
    referrer_rows = _untagged_rows(inv, scope, created, referrers=True)
    if not tagged.referrer.any() and not len(referrer_rows):
        return referrer_rows
    frame, decided = tagged.frame, tagged.decided
    doomed = frame[~decided.kept & ~tagged.referrer]
    fates = ReferrerFates(inv, removed_by_tags(inv, pd.concat([doomed, plain_untagged])),
                          orphans=orphans)
    for row in np.flatnonzero(tagged.referrer):
        tagged.fate[row], tagged.why[row] = fates.of(frame.at[row, "repository"],
                                                     frame.at[row, "digest"])
    decided.keep(tagged.fate == "keep", tagged.why)
    _share_fates(inv, tagged.rows, decided)
    verdicts = [fates.of(r, d, untagged=untagged) for r, d in zip(
        referrer_rows["repository"], referrer_rows["digest"], strict=True)]
    referrer_rows["reason"] = pd.array([v[1] for v in verdicts], dtype="string")
    return referrer_rows[[v[0] == "delete" for v in verdicts]]


def _plan_frame(inv: Inventory, tagged: _Tagged, untagged_parts: list[pd.DataFrame],
                rules: str, created: pd.Series, *, collector: str | None) -> pd.DataFrame:
    """Step 3, the frame: the tags' actions and reasons, the untagged delete rows, the
    index children the deletions take with them, sorted, with
    ``attrs["reclaimable_bytes"]``."""
    frame, decided = tagged.frame, tagged.decided
    frame["action"] = pd.array(np.where(decided.kept, "keep", "delete"), dtype="string")
    frame["reason"] = decided.reasons.fillna(tagged.why.where(tagged.fate == "delete", rules))
    frame = _concat([frame[PLAN_COLUMNS], *untagged_parts])
    frame = _concat([frame, _children_rows(inv, frame[frame["action"] == "delete"], created)])
    frame = frame.sort_values(["repository", "tag", "digest"], ignore_index=True)
    delete = frame[frame["action"] == "delete"]
    frame.attrs["reclaimable_bytes"] = (reclaimable(inv, delete, collector=collector)
                                        if len(delete) else 0)
    frame.attrs["collector"] = collector
    return frame


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The parts one under the other; empty ones left out (their dtypes would win)."""
    full = [part for part in parts if len(part)]
    if len(full) > 1:
        return pd.concat(full, ignore_index=True)
    return full[0] if full else parts[0]


#: the reason of a plan row for an index's child: apply_cleanup deletes such a manifest
#: only when a plan lists it, and only once nothing tagged references it
CHILD_OF = "child of index "


def _children_rows(inv: Inventory, delete: pd.DataFrame, created: pd.Series) -> pd.DataFrame:
    """Delete rows (tag NA, reason ``child of index <digest>``) for the manifests that
    deleting ``delete`` removes beyond its own digests: the children of deleted indexes
    that nothing kept (a tag, an untagged manifest the inventory holds) reaches."""
    listed = set(zip(delete["repository"].astype(str), delete["digest"].astype(str),
                     strict=True))
    edges = sorted(inv.children[["repository", "parent", "digest"]].astype(str)
                   .itertuples(index=False, name=None))
    # only a deleted index takes more with it: without one, no reachability to compute
    deletes_an_index = any((repository, parent) in listed for repository, parent, _ in edges)
    extra = sorted(removed_by_tags(inv, delete) - listed) if deletes_an_index else []
    gone = listed | set(extra)
    parents: dict[tuple[str, str], str] = {}
    for repository, parent, child in edges:
        if (repository, parent) in gone:
            parents.setdefault((repository, child), parent)
    rows = pd.DataFrame({
        "repository": pd.array([r for r, _ in extra], dtype="string"),
        "tag": pd.array([pd.NA] * len(extra), dtype="string"),
        "digest": pd.array([d for _, d in extra], dtype="string")})
    rows["created"] = _created(created, pd.MultiIndex.from_arrays([rows["repository"],
                                                                    rows["digest"]]))
    rows["action"] = pd.array(["delete"] * len(extra), dtype="string")
    # the parent's full digest: the one place a plan names it, copied into commands
    rows["reason"] = pd.array([CHILD_OF + parents.get(key, "") for key in extra],
                              dtype="string")
    return rows[PLAN_COLUMNS]


def _created(created: pd.Series, keys: pd.MultiIndex) -> pd.Series:
    """``image_created`` for these (repository, digest) keys, UTC (NaT: unknown)."""
    return pd.to_datetime(pd.Series(created.reindex(keys).to_numpy(dtype=object)), utc=True)


class _Reasons:
    """Why each of the plan's tags is kept; NA: deleted (so far). The first reason
    given sticks."""

    def __init__(self, count: int) -> None:
        self.reasons = pd.Series(pd.NA, index=pd.RangeIndex(count), dtype="string")

    @property
    def kept(self) -> np.ndarray:
        return self.reasons.notna().to_numpy()

    def keep(self, mask: np.ndarray | pd.Series, why: str | pd.Series) -> None:
        chosen = np.asarray(mask, dtype=bool) & ~self.kept
        self.reasons[chosen] = why if isinstance(why, str) else \
            pd.Series(why).to_numpy()[chosen]


def _share_fates(inv: Inventory, rows: np.ndarray, decided: _Reasons) -> None:
    """Tags on one digest share its fate, and a kept index keeps all it reaches: keep
    the plan's tags (``rows`` of ``inv.tags``) that a kept tag says must stay."""
    reach = Reach.of(inv)
    kept = rows[decided.kept]
    if not len(kept):
        return
    tag_names = inv.tags["tag"].astype(str).to_numpy()
    placed = reach.tag_placements(rows)
    through, reached = reach.placements_reached(kept)
    for why, where, tags in (
        ("shares its digest with kept tag ", reach.tag_placements(kept), kept),
        ("referenced by kept index ", reached, through),
    ):
        first = pd.Series(tag_names[tags], index=where).sort_values()  # first by name
        first = first[~first.index.duplicated()]
        named = pd.Series(first.reindex(placed).to_numpy(), dtype="string")
        decided.keep(named.notna().to_numpy(), why + named.fillna(""))


def _untagged_rows(inv: Inventory, scope: set[str], created: pd.Series, *, referrers: bool
                   ) -> pd.DataFrame:
    """Delete rows (tag NA) for the manifests no tag reaches in the chosen repositories:
    the referrers among them (``referrers=True``) or the others (reason ``untagged``)."""
    manifests = inv.manifests
    chosen = manifests[Reach.of(inv).untagged_rows
                       & (manifests["subject"].notna().to_numpy() == referrers)
                       & manifests["repository"].astype(str).isin(scope).to_numpy()]
    frame = pd.DataFrame({
        "repository": pd.array(chosen["repository"].astype(str), dtype="string"),
        "tag": pd.array([pd.NA] * len(chosen), dtype="string"),
        "digest": pd.array(chosen["digest"].astype(str), dtype="string"),
    })
    frame["created"] = _created(created, pd.MultiIndex.from_arrays([frame["repository"],
                                                                     frame["digest"]]))
    frame["action"] = pd.array(["delete"] * len(frame), dtype="string")
    frame["reason"] = pd.array(["untagged"] * len(frame), dtype="string")
    return frame[PLAN_COLUMNS]
