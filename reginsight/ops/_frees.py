"""What each part of a cleanup plan frees: per deleted digest, per repository.

The plan's total (``plan.attrs["reclaimable_bytes"]``) is what garbage collection
frees once the whole plan is applied. Parts of it are told here with the same
definition (:func:`reginsight.reclaimable`), so each figure is one the registry's
collector would confirm if only that part were deleted.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pandas as pd

from ..analysis._reclaim import PartialInventoryWarning, reclaimable

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: digests whose own figure is computed at most; each costs a reclaimable() call
MOST_DIGESTS = 200


def plan_frees(inv: Inventory, plan: pd.DataFrame, *, most: int = MOST_DIGESTS
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan's deletions per digest and per repository, with the bytes each frees.

    Returns ``(by_digest, by_repository)``.

    ``by_digest``, one row per deleted (repository, digest), the tags on a digest
    go together: repository (string), digest (string), tags (string: comma-separated;
    "" for an untagged manifest), created (datetime64[ns, UTC]), reason (string),
    frees (Int64: bytes garbage collection frees if only this digest were deleted;
    NA past the ``most`` largest images, which are the ones computed). Largest
    ``frees`` first.

    ``by_repository``: repository (string), digests, tags (int64), frees (int64:
    bytes freed if this repository's deletions alone were applied). A blob two
    deleted digests share is freed only with both: it counts in neither's ``frees``
    but in their repository's; one shared across repositories counts only in the
    plan's total. Largest first.
    """
    doomed = plan[plan["action"] == "delete"]
    by_digest = (doomed.assign(tag=doomed["tag"].fillna(""))
                 .groupby(["repository", "digest"], sort=True, observed=True)
                 .agg(tags=("tag", lambda t: ", ".join(x for x in t if x)),
                      tag_count=("tag", lambda t: int((t != "").sum())),
                      created=("created", "first"), reason=("reason", "first"))
                 .reset_index())
    sizes = inv.manifests.drop_duplicates(["repository", "digest"]).set_index(
        ["repository", "digest"])["size"]
    image_size = sizes.reindex(pd.MultiIndex.from_frame(
        by_digest[["repository", "digest"]].astype(object))).to_numpy()
    order = pd.Series(image_size, dtype="Float64").fillna(0).sort_values(
        ascending=False, kind="stable").index[:most]
    frees = pd.array([pd.NA] * len(by_digest), dtype="Int64")
    with warnings.catch_warnings():  # the plan's own total says it once
        warnings.simplefilter("ignore", PartialInventoryWarning)
        for row in order:
            key = by_digest.loc[row, ["repository", "digest"]]
            frees[row] = reclaimable(inv, doomed[(doomed["repository"] == key["repository"])
                                                 & (doomed["digest"] == key["digest"])])
        by_digest["frees"] = frees
        repositories = []
        for repository, part in doomed.groupby("repository", sort=True, observed=True):
            repositories.append((repository, part["digest"].nunique(),
                                 int(part["tag"].notna().sum()), reclaimable(inv, part)))
    by_digest = by_digest.astype({"repository": "string", "digest": "string",
                                  "tags": "string", "reason": "string"})
    by_digest = by_digest.sort_values(["frees", "repository", "digest"],
                                      ascending=[False, True, True], na_position="last",
                                      ignore_index=True).drop(columns="tag_count")
    by_repository = pd.DataFrame(repositories,
                                 columns=["repository", "digests", "tags", "frees"])
    by_repository = by_repository.astype({"repository": "string", "digests": "int64",
                                          "tags": "int64", "frees": "int64"})
    return by_digest, by_repository.sort_values(["frees", "repository"],
                                                ascending=[False, True], ignore_index=True)
