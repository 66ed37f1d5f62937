"""Time in an inventory: when images were made, and how storage changed between two
inventories. Pure DataFrame in, DataFrame out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..inventory._frames import image_times
from ._storage import storage_by_repository

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


def image_created(inv: Inventory) -> pd.Series:
    """Creation time per (repository, digest) of every ``manifests`` row, a Series of
    datetime64[ns, UTC] indexed by (repository, digest). An image's is its config's
    ``created``; an index (which has no config) takes the newest time among the
    manifests it reaches, at any depth. NaT where nothing says. (Per tag, the same
    time is ``inv.tags["created"]``.)"""
    index = inv.manifests.set_index(["repository", "digest"]).index
    return pd.Series(image_times(inv.manifests, inv.children).array, index=index,
                     name="created")


def image_ages(inv: Inventory) -> pd.DataFrame:
    """Per tag with a known creation time (an index's tag: its newest image's):
    repository, tag (as in ``tags``), digest (string), created (datetime64[ns, UTC])
    and size (Int64: image bytes)."""
    tags = inv.tags
    return tags.loc[tags["created"].notna(),
                    ["repository", "tag", "digest", "created", "size"]].reset_index(drop=True)


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
