"""What each part of a cleanup plan frees: per deleted digest, per repository.

The plan's total (``plan.attrs["reclaimable_bytes"]``) is what garbage collection
frees once the whole plan is applied. Parts of it are told here with the same
definition (:func:`reginsight.reclaimable`), so each figure is one the registry's
collector would confirm if only that part were deleted.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..analysis._reclaim import PartialInventoryWarning, reclaimable
from ..inventory._reach import Reach

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: from a storage scan, digests whose own figure is computed at most (each costs a
#: reclaimable() call there; a crawl's are all computed at once)
MOST_DIGESTS = 200


def _attributed(inv: Inventory, doomed: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """A crawl's frees per deleted placement and per repository, all at once.

    What ``reclaimable`` frees is every manifest and blob that only deleted roots
    reach, a root being a tag's (repository, manifest) or an untagged manifest the
    crawl holds. So each item is counted with the roots that reach it: one deleted
    root alone -> that digest frees it; deleted roots of one repository -> that
    repository's deletions free it. Returns (bytes by placement, bytes by repository name).
    """
    reach = Reach.of(inv)
    gone = reach.placements_of(doomed["repository"], doomed["digest"])
    pairs = reach.held_by(reach.roots())
    pairs["doomed"] = np.isin(pairs["root"].to_numpy(), np.unique(gone[gone >= 0]))
    items = pairs.groupby(["blob", "item"]).agg(
        roots=("root", "size"), doomed=("doomed", "sum"), first=("root", "min"),
        low=("repository", "min"), high=("repository", "max"), size=("size", "first"))
    freed = items[items["roots"] == items["doomed"]]
    alone = freed[freed["roots"] == 1].groupby("first")["size"].sum()
    one_repository = freed[freed["low"] == freed["high"]].groupby("low")["size"].sum()
    one_repository.index = reach.repository_names()[one_repository.index.to_numpy(dtype=np.int64)]
    return alone, one_repository


def plan_frees(inv: Inventory, plan: pd.DataFrame, *, most: int = MOST_DIGESTS
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan's deletions per digest and per repository, with the bytes each frees.

    Returns ``(by_digest, by_repository)``.

    ``by_digest``, one row per deleted (repository, digest), the tags on a digest
    go together: repository (string), digest (string), tags (string: comma-separated;
    "" for an untagged manifest), created (datetime64[ns, UTC]), reason (string),
    frees (Int64: bytes garbage collection frees if only this digest were deleted;
    from a storage scan, NA past the ``most`` largest images, which are the ones
    computed). Largest ``frees`` first.

    ``by_repository``: repository (string), digests, tags (int64), frees (Int64:
    bytes freed if this repository's deletions alone were applied; from a storage
    scan, NA past the ``most`` repositories with the largest deleted images). A blob two
    deleted digests share is freed only with both: it counts in neither's ``frees``
    but in their repository's; one shared across repositories counts only in the
    plan's total. Largest first.
    """
    doomed = plan[plan["action"] == "delete"]
    by_digest = (doomed.assign(tag=doomed["tag"].fillna(""))
                 .groupby(["repository", "digest"], sort=True, observed=True)
                 .agg(tags=("tag", lambda t: ", ".join(x for x in t if x)),
                      created=("created", "first"), reason=("reason", "first"))
                 .reset_index())
    sizes = inv.manifests.drop_duplicates(["repository", "digest"]).set_index(
        ["repository", "digest"])["size"]
    image_size = sizes.reindex(pd.MultiIndex.from_frame(
        by_digest[["repository", "digest"]].astype(object))).to_numpy()
    frees = pd.array([pd.NA] * len(by_digest), dtype="Int64")
    repositories = []
    with warnings.catch_warnings():  # the plan's own total says it once
        warnings.simplefilter("ignore", PartialInventoryWarning)
        if inv.from_storage:  # the collector's own model: one reclaimable() per part
            collector = plan.attrs.get("collector")
            weight = pd.Series(image_size, dtype="Float64").fillna(0)
            parts = doomed.groupby(["repository", "digest"], observed=True)
            for row in weight.sort_values(ascending=False, kind="stable").index[:most]:
                frees[row] = reclaimable(inv, parts.get_group(
                    tuple(by_digest.loc[row, ["repository", "digest"]])), collector=collector)
            weight = weight.groupby(by_digest["repository"].astype(str).to_numpy()).sum()
            largest = set(weight.sort_values(ascending=False, kind="stable").index[:most])
            per_repository = {str(r): reclaimable(inv, part, collector=collector) for r, part in
                              doomed.groupby("repository", sort=True, observed=True)
                              if str(r) in largest}
        else:
            alone, one_repository = _attributed(inv, doomed)
            placements = Reach.of(inv).placements_of(by_digest["repository"],
                                                     by_digest["digest"])
            frees = pd.array(alone.reindex(placements).fillna(0).to_numpy(dtype=np.int64),
                             dtype="Int64")
            per_repository = {str(r): int(b) for r, b in one_repository.items()}
    for repository, part in doomed.groupby("repository", sort=True, observed=True):
        repositories.append((repository, part["digest"].nunique(),
                             int(part["tag"].notna().sum()),
                             per_repository.get(str(repository),
                                                pd.NA if inv.from_storage else 0)))
    by_digest["frees"] = frees
    by_digest = by_digest.astype({"repository": "string", "digest": "string",
                                  "tags": "string", "reason": "string"})
    by_digest = by_digest.sort_values(["frees", "repository", "digest"],
                                      ascending=[False, True, True], na_position="last",
                                      ignore_index=True)
    by_repository = pd.DataFrame(repositories,
                                 columns=["repository", "digests", "tags", "frees"])
    by_repository = by_repository.astype({"repository": "string", "digests": "int64",
                                          "tags": "int64", "frees": "Int64"})
    return by_digest, by_repository.sort_values(["frees", "repository"],
                                                ascending=[False, True], na_position="last",
                                                ignore_index=True)
