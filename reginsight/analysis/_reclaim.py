"""What garbage collection frees once the manifests behind chosen tags are deleted."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..inventory._lazy import LazyInventory
from ..inventory._reach import Reach
from . import _outofcore
from ._choice import Chosen, split_choice
from ._disk import freed_after

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


class PartialInventoryWarning(UserWarning):
    """A figure needs the whole registry; the inventory holds only part of it."""


def _chosen(inv: Inventory, tags: Chosen) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers in ``inv.tags`` of the chosen (repository, tag) pairs, and the
    placements (:class:`Reach`) of the manifests chosen by digest: rows of a
    frame whose tag is NA (``plan_cleanup``'s untagged manifests and referrers)."""
    tagged, by_digest = split_choice(tags)
    placements = Reach.of(inv).placements_of(by_digest["repository"], by_digest["digest"])
    wanted = pd.MultiIndex.from_arrays([tagged["repository"], tagged["tag"]])
    index = pd.MultiIndex.from_arrays([inv.tags["repository"].astype(str).to_numpy(dtype=object),
                                       inv.tags["tag"].astype(str).to_numpy(dtype=object)])
    rows = index.get_indexer(wanted) if len(wanted) else np.empty(0, dtype=np.int64)
    return np.unique(rows[rows >= 0]), placements[placements >= 0]


def reclaimable_blobs(inv: Inventory | LazyInventory, tags: Chosen, *,
                      collector: str | None = None) -> pd.DataFrame:
    """The blobs the registry's garbage collector frees once the manifests behind
    ``tags`` are deleted (with every tag on those digests, and index children no
    remaining tag reaches).

    ``tags``: (repository, tag) pairs, or a frame with repository and tag columns
    (a plan's delete rows); a row whose tag is NA deletes the manifest at its
    ``digest`` column (an untagged manifest, a referrer).

    Freed: the deleted manifests themselves, and layer/config blobs no remaining
    manifest references, in any repository. From a crawl, the remaining manifests are
    those the other tags reach plus the untagged ones the crawl found (referrers, their
    subjects); the API lists no others. From a storage scan
    (:func:`reginsight.scan_storage`) it is exact: untagged revisions keep what they
    reference, and the blobs already unreferenced (``disk_usage``) are not counted,
    though a garbage collection frees them too; ``collector`` (``"distribution-2"``,
    ``"distribution-3"``) says whose run, as for :func:`reginsight.gc_preview`: None
    when both free the same, CollectorsDiffer otherwise (3.x stops on a schema1
    manifest it must read). On an inventory that is not
    ``complete`` (part of the catalog, or with errors) this is an upper bound, and a
    PartialInventoryWarning says so.
    Columns: digest (string), size (int64), kind (string: manifest/layer/config).
    A :class:`LazyInventory`: the same, by DuckDB.
    """
    lazy = isinstance(inv, LazyInventory)
    if not inv.from_storage and not inv.complete:
        errors = inv.count("errors") if lazy else len(inv.errors)
        warnings.warn(
            f"the inventory covers {inv.scope or 'the catalog'} with {errors} "
            "errors: blobs shared with what it does not see are counted as freed",
            PartialInventoryWarning, stacklevel=2)
    if lazy:
        return _outofcore.reclaimable_blobs(inv, tags)
    if inv.from_storage:
        return freed_after(inv, removed_by_tags(inv, tags), collector=collector)
    kept_links, gone_links = _links_after(inv, tags)
    frame = Reach.of(inv).released(gone_links, kept_links).astype(
        {"digest": "string", "size": "int64", "kind": "string"})
    return frame.sort_values("digest", ignore_index=True)


def removed_by_tags(inv: Inventory, tags: Chosen) -> set[tuple[str, str]]:
    """The (repository, digest) manifests that deleting the manifests behind ``tags``
    (and the NA-tag rows' digests) removes: those, and what they reach that nothing
    remaining reaches."""
    _, gone = _links_after(inv, tags)
    repositories, digests = Reach.of(inv).names_of(gone)
    return {(str(r), str(d)) for r, d in zip(repositories, digests, strict=True)}


def _links_after(inv: Inventory, tags: Chosen) -> tuple[np.ndarray, np.ndarray]:
    """The (repository, manifest) placements (:class:`Reach`) that remain,
    and those the deletion removes. A digest delete takes every tag on that digest in
    that repository; what remains is what the other tags and the untagged manifests
    the inventory holds reach."""
    reach = Reach.of(inv)
    chosen, by_digest = _chosen(inv, tags)
    explicit = np.union1d(reach.tag_placements(chosen), by_digest)
    roots = reach.roots()
    every = reach.closure(roots)
    kept = reach.closure(np.setdiff1d(roots, explicit))
    return kept, np.setdiff1d(every, kept)


def reclaimable(inv: Inventory | LazyInventory, tags: Chosen, *,
                collector: str | None = None) -> int:
    """Bytes the garbage collector frees after deleting the manifests behind ``tags``
    (``(repository, tag)`` pairs or a frame with those columns; NA-tag rows delete
    their ``digest``; see :func:`reclaimable_blobs` for exactly which blobs, and
    ``collector``)."""
    return int(reclaimable_blobs(inv, tags, collector=collector)["size"].sum())
