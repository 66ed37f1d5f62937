"""The out-of-core check: an inventory saved, opened with DuckDB, gives the figures
pandas gives, exactly, for the byte figures and for a spread of cleanup choices."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt

import reginsight as ri


def choices(inv: ri.Inventory, *, most: int = 12) -> list[object]:
    """Deletions to try: nothing, single tags, a repository's tags, every tag, the
    suggested plan, a keep-one plan, and manifests chosen by digest (NA tag)."""
    tags = inv.tags[["repository", "tag"]].astype(str)
    picked: list[object] = [[], list(tags.itertuples(index=False, name=None))]
    step = max(1, len(tags) // most)
    picked += [[pair] for pair in list(tags.itertuples(index=False, name=None))[::step]]
    for repository in tags["repository"].unique()[:3]:
        picked.append(tags[tags["repository"] == repository])
    for policy in ({}, {"keep_last": 1, "older_than": None}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = ri.plan_cleanup(inv, **policy)
        picked.append(plan[plan["action"] == "delete"])
    by_digest = inv.manifests[["repository", "digest"]].astype(str).assign(tag=pd.NA)
    picked.append(by_digest.iloc[::max(1, len(by_digest) // most)])
    return picked


def _recorded(fn, *args):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, sorted({type(w.message).__name__ for w in seen})


def assert_same_out_of_core(inv: ri.Inventory, directory: Path) -> ri.LazyInventory:
    """Save ``inv`` into ``directory``, open it lazily and compare every figure."""
    inv.save(directory)
    lazy = ri.Inventory.open(directory)
    expected, actual = ri.storage_summary(inv), ri.storage_summary(lazy)
    pdt.assert_series_equal(expected, actual)
    np.testing.assert_equal(expected.attrs["dedup_ratio"], actual.attrs["dedup_ratio"])
    pdt.assert_frame_equal(ri.storage_by_repository(inv), ri.storage_by_repository(lazy))
    pdt.assert_frame_equal(ri.layer_sharing(inv), ri.layer_sharing(lazy))
    if inv.from_storage:
        pdt.assert_frame_equal(ri.disk_usage(inv), ri.disk_usage(lazy))
    tried = 0
    for chosen in choices(inv):
        (expected, warned), (actual, warned_lazy) = (
            _recorded(ri.reclaimable_blobs, inv, chosen),
            _recorded(ri.reclaimable_blobs, lazy, chosen))
        pdt.assert_frame_equal(expected, actual)
        assert warned == warned_lazy
        tried += 1
    assert tried >= 5
    s = inv.summary()
    assert {k: v for k, v in lazy.summary().items() if k != "taken_at"} == {
        k: v for k, v in s.items() if k != "taken_at"}
    return lazy
