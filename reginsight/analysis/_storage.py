"""Storage analysis: pure functions of an Inventory, vectorised, no I/O.

What the figures mean (DESIGN.md): the image bytes of a tag are the distinct
layer and config blobs it reaches (through an index: all its children);
``logical_bytes`` sums image bytes over tags (what pulling every tag moves);
``stored_bytes`` counts each distinct layer/config blob once (per repository, or
registry-wide); ``exclusive_bytes`` are blobs only this repository reaches;
``shared_bytes`` = stored - exclusive; ``dedup_ratio`` = logical / stored (a float,
so :func:`storage_summary` keeps it in ``.attrs`` beside its int64 figures).
A size the registry would not tell (an ``errors`` row says so) counts as 0.

Every function asks :class:`Reach` what the tags reach: tags, manifests and blobs are
numbered once there, and its answers carry the numbers (category codes) for numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..inventory._lazy import LazyInventory
from ..inventory._reach import Reach, ids_of
from . import _outofcore

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory


def counts(ids: np.ndarray, length: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(ids, weights=weights, minlength=length)


def tag_blobs(inv: Inventory) -> pd.DataFrame:
    """The distinct layer/config blobs each tag reaches: its image bytes, blob by blob.

    Columns: repository (string), tag (string), digest (string), size (int64), kind
    (string: layer/config). Sorted by repository, tag, digest.
    """
    pairs = Reach.of(inv).blobs_by_tag()
    tags, tag = inv.tags, pairs["tag"].to_numpy()
    frame = pd.DataFrame({
        "repository": pd.array(tags["repository"].astype(object).to_numpy()[tag],
                               dtype="string"),
        "tag": pd.array(tags["tag"].astype(object).to_numpy()[tag], dtype="string"),
        "digest": pd.array(pairs["digest"].array, dtype="string"),
        "size": pairs["size"].to_numpy(),
        "kind": pd.array(pairs["kind"].array, dtype="string"),
    })
    return frame.sort_values(["repository", "tag", "digest"], ignore_index=True)


def storage_summary(inv: Inventory | LazyInventory) -> pd.Series:
    """Registry-wide figures: an int64 Series (exact bytes) with index repositories,
    tags, manifests (distinct digests), stored_blobs (the distinct layer and config
    blobs tags reach), logical_bytes and stored_bytes (their bytes).
    ``.attrs["dedup_ratio"]`` (float) = logical / stored (NaN when nothing is stored).

    ``repositories``: those holding tags, and those the inventory records as read
    (``inv.repository_names()``: a crawl counts one whose tags were all deleted while
    the registry still lists it). The other figures are those of tags.

    Names mean the same numbers in :meth:`Inventory.summary`, which counts every row
    of ``blobs`` (manifests included) as ``blobs``/``blob_bytes``.
    A :class:`LazyInventory` (``Inventory.open``): the same figures, by DuckDB."""
    if isinstance(inv, LazyInventory):
        figures = _outofcore.storage_summary(inv)
        if inv.repositories:  # the names tags hold, asked only when there are others
            figures["repositories"] = len(inv.repository_names())
        return figures
    reached = Reach.of(inv).reached()
    logical, stored = reached.logical_bytes, reached.stored_bytes
    figures = pd.Series({
        "repositories": len(inv.repository_names()),
        "tags": len(inv.tags),
        "manifests": int(inv.manifests["digest"].nunique()),
        "stored_blobs": reached.blobs,
        "logical_bytes": logical,
        "stored_bytes": stored,
    }, dtype=np.int64)
    figures.attrs["dedup_ratio"] = logical / stored if stored else float("nan")
    return figures


def storage_by_repository(inv: Inventory | LazyInventory) -> pd.DataFrame:
    """One row per repository, largest stored first.

    Columns: repository (string), tags, manifests, logical_bytes, stored_bytes,
    exclusive_bytes, shared_bytes (int64). A :class:`LazyInventory`: the same, by DuckDB.
    """
    if isinstance(inv, LazyInventory):
        return _outofcore.storage_by_repository(inv)
    reach = Reach.of(inv)
    held = reach.repositories_reaching()
    names = held["repository"].cat.categories
    n = len(names)
    repo, blob = held["repository"].cat.codes.to_numpy(), held["digest"].cat.codes.to_numpy()
    holders = counts(blob, len(held["digest"].cat.categories))
    size = held["size"].to_numpy(dtype=np.float64)
    stored = counts(repo, n, size)
    exclusive = counts(repo, n, np.where(holders[blob] == 1, size, 0.0))
    tag_repository = ids_of(names, inv.tags["repository"])
    logical = counts(tag_repository, n, reach.tag_bytes().astype(np.float64))
    manifests = inv.manifests.groupby("repository", observed=False)["digest"].nunique()
    frame = pd.DataFrame({
        "repository": pd.array(names, dtype="string"),
        "tags": counts(tag_repository, n).astype(np.int64),
        "manifests": manifests.reindex(names).fillna(0).to_numpy(dtype=np.int64),
        "logical_bytes": logical.astype(np.int64),
        "stored_bytes": stored.astype(np.int64),
        "exclusive_bytes": exclusive.astype(np.int64),
    })
    frame["shared_bytes"] = frame["stored_bytes"] - frame["exclusive_bytes"]
    frame = frame[frame["tags"] > 0]
    return frame.sort_values(["stored_bytes", "repository"], ascending=[False, True],
                             ignore_index=True)


def layer_sharing(inv: Inventory | LazyInventory) -> pd.DataFrame:
    """Per layer/config blob: who uses it and what sharing it saves, most saved first.

    Columns: digest (string), size (int64), kind (string: layer/config),
    repositories, manifests, tags (int64: how many reach it), bytes_saved (int64:
    size x (manifests - 1), the extra bytes one copy per image would cost).
    A :class:`LazyInventory`: the same, by DuckDB.
    """
    if isinstance(inv, LazyInventory):
        return _outofcore.layer_sharing(inv)
    used = Reach.of(inv).reached_blobs()
    manifests = used["manifests"].to_numpy()
    frame = pd.DataFrame({
        "digest": pd.array(used["digest"].array, dtype="string"),
        "size": used["size"].to_numpy(),
        "kind": pd.array(used["kind"].array, dtype="string"),
        "repositories": used["repositories"].to_numpy(),
        "manifests": manifests,
        "tags": used["tags"].to_numpy(),
        "bytes_saved": used["size"].to_numpy() * np.maximum(manifests - 1, 0),
    })
    return frame.sort_values(["bytes_saved", "digest"], ascending=[False, True],
                             ignore_index=True)


def sharing_matrix(inv: Inventory, *, top: int | None = 30) -> pd.DataFrame:
    """Repository x repository bytes shared (blobs both reach); the diagonal is each
    repository's stored bytes. ``top`` keeps the repositories storing most.

    A square DataFrame of int64, index and columns the repository names.
    """
    held = Reach.of(inv).repositories_reaching()
    repositories = held["repository"].cat.categories
    repo, blob = held["repository"].cat.codes.to_numpy(), held["digest"].cat.codes.to_numpy()
    size = held["size"].to_numpy()
    stored = counts(repo, len(repositories), size.astype(np.float64))
    order = np.argsort(-stored, kind="stable")
    order = order[stored[order] > 0] if top is None else order[stored[order] > 0][:top]
    position = np.full(len(repositories), -1)
    position[order] = np.arange(len(order))
    keep = position[repo] >= 0
    blob_ids, at, columns = np.unique(blob[keep], return_index=True, return_inverse=True)
    matrix = np.zeros((len(order), len(blob_ids)))
    matrix[position[repo[keep]], columns] = 1.0
    shared = (matrix * size[keep][at].astype(np.float64)) @ matrix.T
    names = pd.Index(repositories[order].astype(str), name="repository")
    return pd.DataFrame(shared.astype(np.int64), index=names, columns=names.copy())


def repositories_without_tags(inv: Inventory) -> pd.DataFrame:
    """Repositories that hold no tag, which every tag-based figure leaves out: those
    a crawl read and found empty (``inv.repositories``), and those holding only
    untagged manifests. A named repository whose tags could not be read is an
    ``errors`` row, not one of these.

    Columns: repository (string), untagged_manifests (int64). Sorted by name.
    """
    tagged = set(inv.tags["repository"].astype(str))
    unread = set(inv.errors.loc[inv.errors["stage"] == "tags", "repository"].astype(str))
    held = inv.manifests["repository"].astype(str)
    names = sorted({*held, *(inv.repositories or ())} - tagged - unread)
    counts = held.value_counts()
    return pd.DataFrame({
        "repository": pd.array(names, dtype="string"),
        "untagged_manifests": np.array([int(counts.get(n, 0)) for n in names], dtype=np.int64)})
