"""Part of an inventory: the repositories ``repositories=`` (or ``--repositories``)
names, as the inventory a crawl of only those would have given. A saved inventory or
a storage scan holds the whole registry; a report of part of it shows the part and
counts what a cleanup frees against the whole."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from .._errors import InventoryError
from .._text import printable
from .._units import count
from ._frames import FRAME_NAMES, SCHEMAS
from ._selection import describe_scope, selection

if TYPE_CHECKING:
    from ._inventory import Inventory


def selected(inv: Inventory, repositories: str | Sequence[str]) -> Inventory:
    """The part of ``inv`` that ``repositories`` (names, globs) covers: the inventory a
    crawl of only those would have given (its ``blobs`` counts recomputed, its
    categories those it uses, ``scope`` saying what was chosen). InventoryError when a
    name is not in ``inv`` or a glob matches nothing: a report of nothing helps no one."""
    from ._inventory import Inventory

    wanted = [repositories] if isinstance(repositories, str) else list(repositories)
    held = _held(inv)
    missing = missing_repositories(inv, wanted)
    if missing:
        raise InventoryError(
            f"{', '.join(map(printable, missing))}: not in this inventory (it holds "
            f"{count(len(held), 'repository')}{f', crawled as {inv.scope}' if inv.scope else ''})")
    chosen = selection(wanted)
    keep = {name for name in held if chosen.matches(name)}
    frames = {}
    for name in FRAME_NAMES:
        frame = getattr(inv, name)
        if "repository" in SCHEMAS[name]:
            frame = frame[frame["repository"].astype(str).isin(keep)]
        frames[name] = _tight(frame)
    frames["blobs"] = _tight(_blobs_of(inv.blobs, frames))
    part = Inventory(registry=inv.registry, taken_at=inv.taken_at,
                     scope=describe_scope(wanted) if inv.scope is None else
                     f"{inv.scope}, then {describe_scope(wanted)}",
                     repositories=None if inv.repositories is None else
                     [n for n in inv.repositories if n in keep], **frames)
    part.label = inv.label
    return part


def _held(inv: Inventory) -> list[str]:
    """Every repository ``inv`` names: with tags or manifests, read without tags, or
    in an errors row (a named repository that does not exist)."""
    return sorted({*inv.tags["repository"].astype(str), *inv.manifests["repository"].astype(
        str), *inv.errors["repository"].dropna().astype(str), *(inv.repositories or ())})


def missing_repositories(inv: Inventory, repositories: Sequence[str]) -> list[str]:
    """The names of ``repositories`` that ``inv`` does not hold, and the globs that
    match none of its repositories."""
    held = _held(inv)
    chosen = selection(list(repositories))
    return [n for n in chosen.names if n not in held] + [
        str(p) for p in chosen.patterns if not any(selection([p]).matches(n) for n in held)]


def _tight(frame: pd.DataFrame) -> pd.DataFrame:
    """A fresh RangeIndex, and categoricals holding only the values used (as a crawl
    of those rows alone would make them)."""
    frame = frame.reset_index(drop=True)
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            used = frame[name].cat.remove_unused_categories()
            # no value at all: the categories of no value, as a crawl types them
            frame[name] = used if len(used.cat.categories) else used.astype(
                pd.CategoricalDtype(categories=[]))
    return frame


def _blobs_of(blobs: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``blobs`` rows the kept manifests use, each with how many kept repositories hold
    it and how many kept manifests reference it (what a crawl counts): a manifest is
    held where it is a row and referenced by the indexes listing it there; a layer or
    a config by the images using it."""
    manifests, layers, children = frames["manifests"], frames["layers"], frames["children"]
    rows = pd.MultiIndex.from_arrays([manifests["repository"].astype(str), manifests["digest"]])
    listed = children[pd.MultiIndex.from_arrays(
        [children["repository"].astype(str), children["digest"]]).isin(rows)]
    configs = manifests[manifests["config_digest"].notna()]
    uses = pd.concat([
        pd.DataFrame({"digest": manifests["digest"], "repository": manifests["repository"],
                      "user": pd.NA}),
        pd.DataFrame({"digest": listed["digest"], "repository": listed["repository"],
                      "user": listed["parent"]}),
        pd.DataFrame({"digest": layers["digest"], "repository": layers["repository"],
                      "user": layers["manifest"]}),
        pd.DataFrame({"digest": configs["config_digest"], "repository": configs["repository"],
                      "user": configs["digest"]}),
    ]).astype({"digest": str, "repository": str, "user": object})
    counted = uses.groupby("digest").agg(repositories=("repository", "nunique"),
                                         manifests=("user", "nunique"))
    kept = blobs[blobs["digest"].isin(counted.index)].copy()
    for name in ("repositories", "manifests"):
        kept[name] = counted[name].reindex(kept["digest"]).to_numpy(dtype="int64")
    return kept
