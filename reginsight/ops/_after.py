"""An inventory as it is after a deletion: what an explorer shows once it has deleted,
without crawling again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..analysis._reclaim import removed_by_tags

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


def _keep(frame: pd.DataFrame, digest_column: str, removed: set[tuple[str, str]]
          ) -> pd.DataFrame:
    if not removed or frame.empty:
        return frame
    keys = pd.MultiIndex.from_arrays([frame["repository"].astype(str).to_numpy(dtype=object),
                                      frame[digest_column].astype(str).to_numpy(dtype=object)])
    gone = keys.isin(pd.MultiIndex.from_tuples(sorted(removed)))
    kept = frame[~gone].reset_index(drop=True)
    for name in kept.columns:  # as a fresh crawl has them: no category of a gone repository
        if isinstance(kept[name].dtype, pd.CategoricalDtype):
            kept[name] = kept[name].cat.remove_unused_categories()
    return kept


def inventory_after(inv: Inventory, deleted: pd.DataFrame) -> Inventory:
    """``inv`` once the manifests behind ``deleted`` (rows with repository, tag and
    digest, tag NA for a manifest deleted by digest: a plan's delete rows) are gone
    from the registry: every tag on those digests, their manifests, and the index
    children nothing remaining reaches (:func:`reginsight.analysis._reclaim.removed_by_tags`,
    the definition the byte figures use). The blobs stay, as they do in the
    registry until garbage-collect runs; a storage inventory's ``blobs`` still lists
    them, now unreferenced. ``taken_at`` and ``scope`` are kept; ``repositories``
    keeps every repository, emptied or not."""
    from ..inventory._inventory import Inventory

    removed = removed_by_tags(inv, deleted)
    frames = dict(inv.frames())
    frames["tags"] = _keep(inv.tags, "digest", removed)
    frames["manifests"] = _keep(inv.manifests, "digest", removed)
    frames["layers"] = _keep(inv.layers, "manifest", removed)
    frames["children"] = _keep(inv.children, "parent", removed)
    # a repository whose tags all went is still there (the catalog lists it), empty
    repositories = {*(inv.repositories or ()), *inv.tags["repository"].astype(str),
                    *inv.manifests["repository"].astype(str)}
    return Inventory(registry=inv.registry, taken_at=inv.taken_at, scope=inv.scope,
                     repositories=repositories, **frames)
