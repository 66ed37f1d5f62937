"""Time in an inventory: when images were made, and how storage changed between two
inventories. Pure DataFrame in, DataFrame out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..inventory._reach import reachable
from ._storage import storage_by_repository

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


def image_created(inv: Inventory) -> pd.Series:
    """Creation time per (repository, digest) of every ``manifests`` row, a Series of
    datetime64[ns, UTC] indexed by (repository, digest). An image's is its config's
    ``created``; an index (which has no config) takes the newest time among the
    manifests it reaches, at any depth. NaT where nothing says."""
    created = inv.manifests.set_index(["repository", "digest"])["created"].copy()
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for repository, index, digest in inv.children[["repository", "index", "digest"]].itertuples(
            index=False):
        edges.setdefault((str(repository), str(index)), []).append((str(repository), str(digest)))
    known = {(str(r), str(d)): t for (r, d), t in created.items() if not pd.isna(t)}
    filled = {}
    for repository, digest in created.index[created.isna()]:
        key = (str(repository), str(digest))
        if key not in edges:
            continue
        times = [known[m] for m in reachable([key], lambda node: edges.get(node, ()))
                 if m in known]
        if times:
            filled[key] = max(times)
    if filled:
        at = pd.MultiIndex.from_tuples(list(filled))
        positions = created.index.get_indexer(at)
        values = created.to_numpy(copy=True)
        values[positions] = pd.array(list(filled.values()), dtype=created.dtype)
        created = pd.Series(values, index=created.index, name="created", dtype=created.dtype)
    return created


def image_ages(inv: Inventory) -> pd.DataFrame:
    """Per tag with a known creation time: repository, tag (as in ``tags``), digest
    (string), created (datetime64[ns, UTC]) and size (Int64: image bytes)."""
    images = inv.manifests[["repository", "digest", "created", "size"]]
    frame = inv.tags[["repository", "tag", "digest"]].merge(images, on=["repository", "digest"])
    return frame[frame["created"].notna()].reset_index(drop=True)


def growth(before: Inventory, after: Inventory) -> pd.DataFrame:
    """Stored bytes per repository in two inventories, largest change first.

    Columns: repository (string), before, after, change (int64: after - before).
    """
    old = storage_by_repository(before).set_index("repository")["stored_bytes"]
    new = storage_by_repository(after).set_index("repository")["stored_bytes"]
    frame = pd.DataFrame({"before": old, "after": new}).fillna(0).astype("int64")
    frame["change"] = frame["after"] - frame["before"]
    frame.index.name = "repository"
    order = np.argsort(-frame["change"].abs().to_numpy(), kind="stable")
    return frame.iloc[order].reset_index()
