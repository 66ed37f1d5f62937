"""What garbage collection frees once the manifests behind chosen tags are deleted."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._errors import PlanError
from ..inventory._reach import Reach
from ._disk import freed_after

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


class PartialInventoryWarning(UserWarning):
    """A figure needs the whole registry; the inventory holds only part of it."""



def _chosen_tags(inv: Inventory, tags: Iterable[tuple[str, str]] | pd.DataFrame
                 ) -> np.ndarray:
    """Row numbers in ``inv.tags`` of the chosen (repository, tag) pairs."""
    try:
        if isinstance(tags, pd.DataFrame):
            pairs = list(zip(tags["repository"].astype(str), tags["tag"].astype(str),
                             strict=True))
        else:
            pairs = [(str(r), str(t)) for r, t in tags]
    except (KeyError, TypeError, ValueError):
        raise PlanError("tags: give (repository, tag) pairs or a frame with those columns"
                        ) from None
    index = pd.MultiIndex.from_arrays([inv.tags["repository"].astype(str),
                                       inv.tags["tag"].astype(str)])
    rows = index.get_indexer(pd.MultiIndex.from_tuples(pairs, names=index.names)
                             if pairs else index[:0])
    return np.unique(rows[rows >= 0])


def reclaimable_blobs(inv: Inventory, tags: Iterable[tuple[str, str]] | pd.DataFrame
                      ) -> pd.DataFrame:
    """The blobs the registry's garbage collector frees once the manifests behind
    ``tags`` are deleted (with every tag on those digests, and index children no
    remaining tag reaches).

    Freed: the deleted manifests themselves, and layer/config blobs no remaining tag
    reaches, in any repository. From a crawl, this assumes no untagged manifest holds
    blobs (the registry's API cannot list those); from a storage scan
    (:func:`reginsight.scan_storage`) it is exact: untagged revisions keep what they
    reference, and the blobs already unreferenced (``disk_usage``) are not counted,
    though a garbage collection frees them too. On an inventory that is not
    ``complete`` (part of the catalog, or with errors) this is an upper bound, and a
    PartialInventoryWarning says so.
    Columns: digest (string), size (int64), kind (string: manifest/layer/config).
    """
    if inv.from_storage:
        return freed_after(inv, removed_by_tags(inv, tags))
    if not inv.complete:
        warnings.warn(
            f"the inventory covers {inv.scope or 'the catalog'} with {len(inv.errors)} "
            "errors: blobs shared with what it does not see are counted as freed",
            PartialInventoryWarning, stacklevel=2)
    reach = Reach.of(inv)
    nm = len(reach.manifests)
    kept_links, gone_links = _links_after(inv, tags)
    linked_after = np.unique(kept_links % nm)
    deleted = np.unique(gone_links % nm)
    freed_manifests = np.setdiff1d(deleted, linked_after)
    kept_blobs = reach.uses_blob[np.isin(reach.uses_manifest, linked_after)]
    gone_blobs = np.unique(reach.uses_blob[np.isin(reach.uses_manifest, deleted)])
    freed_blobs = np.setdiff1d(gone_blobs, kept_blobs)
    manifest_sizes = inv.blobs.drop_duplicates("digest").set_index("digest")["size"]
    names = reach.manifests[freed_manifests]
    frame = pd.concat([
        pd.DataFrame({"digest": names.to_numpy(),
                      "size": manifest_sizes.reindex(names).fillna(0).to_numpy(dtype=np.int64),
                      "kind": "manifest"}),
        pd.DataFrame({"digest": reach.blobs[freed_blobs].to_numpy(),
                      "size": reach.blob_size[freed_blobs], "kind": reach.blob_kind[freed_blobs]}),
    ], ignore_index=True)
    frame = frame.astype({"digest": "string", "size": "int64", "kind": "string"})
    return frame.sort_values("digest", ignore_index=True)


def removed_by_tags(inv: Inventory, tags: Iterable[tuple[str, str]] | pd.DataFrame
                    ) -> set[tuple[str, str]]:
    """The (repository, digest) revisions that deleting the manifests behind ``tags``
    removes: those manifests, and what they reach that no remaining tag reaches."""
    reach = Reach.of(inv)
    nm = len(reach.manifests)
    _, gone = _links_after(inv, tags)
    return {(str(reach.repositories[g // nm]), str(reach.manifests[g % nm])) for g in gone}


def _links_after(inv: Inventory, tags: Iterable[tuple[str, str]] | pd.DataFrame
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The (repository, manifest) placements (:meth:`Reach.placement`) the remaining
    tags still reach, and those deleting the manifests behind ``tags`` removes. A
    digest delete takes every tag on that digest in that repository."""
    reach = Reach.of(inv)
    chosen = _chosen_tags(inv, tags)
    link = reach.placement(reach.tag_repository, reach.tag_manifest)
    kept_tags = np.flatnonzero(~np.isin(link, link[chosen]))
    kept_rows = np.isin(reach.reach_tag, kept_tags)
    links = reach.placement(reach.tag_repository[reach.reach_tag], reach.reach_manifest)
    kept = np.unique(links[kept_rows])
    return kept, np.setdiff1d(np.unique(links[~kept_rows]), kept)


def reclaimable(inv: Inventory, tags: Iterable[tuple[str, str]] | pd.DataFrame) -> int:
    """Bytes the garbage collector frees after deleting the manifests behind ``tags``
    (``(repository, tag)`` pairs or a frame with those columns; see
    :func:`reclaimable_blobs` for exactly which blobs)."""
    return int(reclaimable_blobs(inv, tags)["size"].sum())
