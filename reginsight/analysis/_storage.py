"""Storage analysis: pure functions of an Inventory, vectorised, no I/O.

What the figures mean (DESIGN.md): the image bytes of a tag are the distinct
layer and config blobs it reaches (through an index: all its children);
``logical_bytes`` sums image bytes over tags (what pulling every tag moves);
``stored_bytes`` counts each distinct layer/config blob once (per repository, or
registry-wide); ``exclusive_bytes`` are blobs only this repository reaches;
``shared_bytes`` = stored - exclusive; ``dedup_ratio`` = logical / stored (a float,
so :func:`storage_summary` keeps it in ``.attrs`` beside its int64 figures).
A size the registry would not tell (an ``errors`` row says so) counts as 0.

Every function first turns the inventory into integer ids (:class:`Reach`): tags,
manifests and blobs are numbered once, and the work is numpy over int arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..inventory._lazy import LazyInventory
from ..inventory._reach import Reach, unique
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
    reach = Reach.of(inv)
    tags = inv.tags
    frame = pd.DataFrame({
        "repository": pd.array(tags["repository"].astype(object).to_numpy()[reach.pair_tag],
                               dtype="string"),
        "tag": pd.array(tags["tag"].astype(object).to_numpy()[reach.pair_tag], dtype="string"),
        "digest": pd.array(reach.blobs[reach.pair_blob].to_numpy(), dtype="string"),
        "size": reach.blob_size[reach.pair_blob],
        "kind": pd.array(reach.blob_kind[reach.pair_blob], dtype="string"),
    })
    return frame.sort_values(["repository", "tag", "digest"], ignore_index=True)


def storage_summary(inv: Inventory | LazyInventory) -> pd.Series:
    """Registry-wide figures: an int64 Series (exact bytes) with index repositories
    (with tags), tags, manifests (distinct digests), stored_blobs (the distinct layer
    and config blobs tags reach), logical_bytes and stored_bytes (their bytes).
    ``.attrs["dedup_ratio"]`` (float) = logical / stored (NaN when nothing is stored).

    Names mean the same numbers in :meth:`Inventory.summary`, which counts every row
    of ``blobs`` (manifests included) as ``blobs``/``blob_bytes``.
    A :class:`LazyInventory` (``Inventory.open``): the same figures, by DuckDB."""
    if isinstance(inv, LazyInventory):
        return _outofcore.storage_summary(inv)
    reach = Reach.of(inv)
    logical = int(reach.blob_size[reach.pair_blob].sum())
    used = unique(reach.pair_blob)
    stored = int(reach.blob_size[used].sum())
    figures = pd.Series({
        "repositories": int(inv.tags["repository"].nunique()),
        "tags": len(inv.tags),
        "manifests": int(inv.manifests["digest"].nunique()),
        "stored_blobs": len(used),
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
    n = len(reach.repositories)
    repo, blob = reach.repository_blobs()
    holders = counts(blob, len(reach.blobs))
    size = reach.blob_size[blob].astype(np.float64)
    stored = counts(repo, n, size)
    exclusive = counts(repo, n, np.where(holders[blob] == 1, size, 0.0))
    logical = counts(reach.tag_repository[reach.pair_tag], n,
                      reach.blob_size[reach.pair_blob].astype(np.float64))
    manifests = inv.manifests.groupby("repository", observed=False)["digest"].nunique()
    frame = pd.DataFrame({
        "repository": pd.array(reach.repositories, dtype="string"),
        "tags": counts(reach.tag_repository, n).astype(np.int64),
        "manifests": manifests.reindex(reach.repositories).fillna(0).to_numpy(dtype=np.int64),
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
    reach = Reach.of(inv)
    nb = len(reach.blobs)
    used = unique(reach.pair_blob)
    _, blob = reach.repository_blobs()
    manifests = counts(reach.uses_blob, nb)[used]
    frame = pd.DataFrame({
        "digest": pd.array(reach.blobs[used].to_numpy(), dtype="string"),
        "size": reach.blob_size[used],
        "kind": pd.array(reach.blob_kind[used], dtype="string"),
        "repositories": counts(blob, nb)[used].astype(np.int64),
        "manifests": manifests.astype(np.int64),
        "tags": counts(reach.pair_blob, nb)[used].astype(np.int64),
        "bytes_saved": reach.blob_size[used] * np.maximum(manifests - 1, 0),
    })
    return frame.sort_values(["bytes_saved", "digest"], ascending=[False, True],
                             ignore_index=True)


def sharing_matrix(inv: Inventory, *, top: int | None = 30) -> pd.DataFrame:
    """Repository x repository bytes shared (blobs both reach); the diagonal is each
    repository's stored bytes. ``top`` keeps the repositories storing most.

    A square DataFrame of int64, index and columns the repository names.
    """
    reach = Reach.of(inv)
    repo, blob = reach.repository_blobs()
    stored = counts(repo, len(reach.repositories), reach.blob_size[blob].astype(np.float64))
    order = np.argsort(-stored, kind="stable")
    order = order[stored[order] > 0] if top is None else order[stored[order] > 0][:top]
    position = np.full(len(reach.repositories), -1)
    position[order] = np.arange(len(order))
    keep = position[repo] >= 0
    blob_ids, columns = np.unique(blob[keep], return_inverse=True)
    matrix = np.zeros((len(order), len(blob_ids)))
    matrix[position[repo[keep]], columns] = 1.0
    shared = (matrix * reach.blob_size[blob_ids].astype(np.float64)) @ matrix.T
    names = pd.Index(reach.repositories[order].astype(str), name="repository")
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
