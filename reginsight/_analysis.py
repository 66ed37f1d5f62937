"""Storage analysis: pure functions of an Inventory, vectorised, no I/O.

What the figures mean (DESIGN.md): the image bytes of a tag are the distinct
layer and config blobs it reaches (through an index: all its children);
``logical_bytes`` sums image bytes over tags (what pulling every tag moves);
``stored_bytes`` counts each distinct layer/config blob once (per repository, or
registry-wide); ``exclusive_bytes`` are blobs only this repository reaches;
``shared_bytes`` = stored - exclusive; ``dedup_ratio`` = logical / stored.
A size the registry would not tell (an ``errors`` row says so) counts as 0.

Every function first turns the inventory into integer ids (:class:`Reach`): tags,
manifests and blobs are numbered once, and the work is numpy over int arrays.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._errors import PlanError

if TYPE_CHECKING:
    from ._inventory import Inventory

class PartialInventoryWarning(UserWarning):
    """A figure needs the whole registry; the inventory holds only part of it."""


_MAX_INDEX_DEPTH = 4  # indexes of indexes exist; deeper nesting is not seen in practice


def _ids(universe: pd.Index, values: pd.Series) -> np.ndarray:
    """Positions of ``values`` in ``universe``, fast for categoricals (-1: absent)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = universe.get_indexer(values.cat.categories.astype(object))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[codes], -1)
    return universe.get_indexer(values.astype(object))


def _unique(values: np.ndarray) -> np.ndarray:
    # pandas' hash table beats numpy's unique on a million int64s by ~10x
    return pd.unique(values)


def _unique_pairs(a: np.ndarray, b: np.ndarray, b_count: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(b_count, 1)
    keys = _unique(a.astype(np.int64) * width + b)
    return keys // width, keys % width


@dataclass(frozen=True)
class Reach:
    """The inventory as integer ids: which manifests and blobs each tag reaches."""

    repositories: np.ndarray  # repository names (object), by repository id
    tag_repository: np.ndarray  # repository id of each tag row
    tag_manifest: np.ndarray  # the manifest id each tag points at
    manifests: pd.Index  # manifest digests, by manifest id
    blobs: pd.Index  # layer/config digests, by blob id
    blob_size: np.ndarray  # int64, 0 when unknown
    blob_kind: np.ndarray  # "layer" / "config"
    reach_tag: np.ndarray  # (tag, manifest) pairs: every manifest a tag reaches
    reach_manifest: np.ndarray
    uses_manifest: np.ndarray  # (manifest, blob) pairs: the blobs a manifest references
    uses_blob: np.ndarray
    pair_tag: np.ndarray  # (tag, blob) pairs, distinct: every blob a tag reaches
    pair_blob: np.ndarray

    @classmethod
    def of(cls, inv: Inventory) -> Reach:
        """The inventory's Reach, built once and kept on it while its frames stay the
        same objects (reassigning a frame, e.g. ``inv.tags = inv.tags[...]``, rebuilds)."""
        frames = tuple(frame for _, frame in inv.frames())
        cached = inv._cache.get("reach")
        if cached is not None and all(a is b for a, b in zip(cached[0], frames, strict=True)):
            return cached[1]
        reach = cls._build(inv)
        inv._cache["reach"] = (frames, reach)  # the frames themselves: ids get reused
        return reach

    @classmethod
    def _build(cls, inv: Inventory) -> Reach:
        tags, layers, manifests, children = inv.tags, inv.layers, inv.manifests, inv.children
        configs = manifests.loc[manifests["config_digest"].notna(), ["digest", "config_digest"]]
        manifest_index = pd.Index(pd.unique(np.concatenate([
            tags["digest"].astype(object).to_numpy(),
            manifests["digest"].astype(object).to_numpy(),
            children["index"].astype(object).to_numpy(),
            children["digest"].astype(object).to_numpy(),
            layers["manifest"].cat.categories.astype(object).to_numpy(),
        ])))
        blob_index = pd.Index(pd.unique(np.concatenate([
            layers["digest"].cat.categories.astype(object).to_numpy(),
            configs["config_digest"].astype(object).to_numpy(),
        ])))
        known = inv.blobs.drop_duplicates("digest")
        sizes = np.zeros(len(blob_index), dtype=np.int64)
        at = blob_index.get_indexer(known["digest"].astype(object))
        sizes[at[at >= 0]] = known["size"].fillna(0).to_numpy(dtype=np.int64)[at >= 0]
        layer_ids = _ids(blob_index, layers["digest"])
        layer_sizes = layers["size"].fillna(0).to_numpy(dtype=np.int64)
        np.maximum.at(sizes, layer_ids, layer_sizes)  # repeated ids: every size counts
        kinds = np.full(len(blob_index), "layer", dtype=object)
        config_ids = blob_index.get_indexer(configs["config_digest"].astype(object))
        kinds[config_ids] = "config"

        uses_m = np.concatenate([_ids(manifest_index, layers["manifest"]),
                                 manifest_index.get_indexer(configs["digest"].astype(object))])
        uses_b = np.concatenate([layer_ids, config_ids])
        uses_m, uses_b = _unique_pairs(uses_m, uses_b, len(blob_index))

        tag_manifest = manifest_index.get_indexer(tags["digest"].astype(object))
        child_of = manifest_index.get_indexer(children["index"].astype(object))
        child = manifest_index.get_indexer(children["digest"].astype(object))
        edges = pd.DataFrame({"manifest": child_of, "child": child}).drop_duplicates()
        reach = [pd.DataFrame({"tag": np.arange(len(tags)), "manifest": tag_manifest})]
        frontier = reach[0]
        for _ in range(_MAX_INDEX_DEPTH):
            frontier = frontier.merge(edges, on="manifest")[["tag", "child"]].rename(
                columns={"child": "manifest"})
            if frontier.empty:
                break
            reach.append(frontier)
        reached = pd.concat(reach, ignore_index=True)
        reach_tag, reach_manifest = _unique_pairs(reached["tag"].to_numpy(),
                                                  reached["manifest"].to_numpy(),
                                                  len(manifest_index))
        joined = pd.DataFrame({"tag": reach_tag, "manifest": reach_manifest}).merge(
            pd.DataFrame({"manifest": uses_m, "blob": uses_b}), on="manifest")
        pair_tag, pair_blob = _unique_pairs(joined["tag"].to_numpy(), joined["blob"].to_numpy(),
                                            len(blob_index))
        return cls(
            repositories=tags["repository"].cat.categories.astype(object).to_numpy(),
            tag_repository=tags["repository"].cat.codes.to_numpy(),
            tag_manifest=tag_manifest, manifests=manifest_index, blobs=blob_index,
            blob_size=sizes, blob_kind=kinds, reach_tag=reach_tag,
            reach_manifest=reach_manifest, uses_manifest=uses_m, uses_blob=uses_b,
            pair_tag=pair_tag, pair_blob=pair_blob)

    def repository_blobs(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (repository id, blob id) pairs."""
        return _unique_pairs(self.tag_repository[self.pair_tag], self.pair_blob,
                             len(self.blobs))


def _counts(ids: np.ndarray, length: int, weights: np.ndarray | None = None) -> np.ndarray:
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


def storage_summary(inv: Inventory) -> pd.Series:
    """Registry-wide figures, a Series with index: repositories, tags, manifests,
    blobs, logical_bytes, stored_bytes (int) and dedup_ratio (float)."""
    reach = Reach.of(inv)
    logical = int(reach.blob_size[reach.pair_blob].sum())
    used = _unique(reach.pair_blob)
    stored = int(reach.blob_size[used].sum())
    return pd.Series({
        "repositories": int(inv.tags["repository"].nunique()),
        "tags": len(inv.tags),
        "manifests": int(inv.manifests["digest"].nunique()),
        "blobs": len(used),
        "logical_bytes": logical,
        "stored_bytes": stored,
        "dedup_ratio": logical / stored if stored else float("nan"),
    }, dtype=object)


def storage_by_repository(inv: Inventory) -> pd.DataFrame:
    """One row per repository, largest stored first.

    Columns: repository (string), tags, manifests, logical_bytes, stored_bytes,
    exclusive_bytes, shared_bytes (int64).
    """
    reach = Reach.of(inv)
    n = len(reach.repositories)
    repo, blob = reach.repository_blobs()
    holders = _counts(blob, len(reach.blobs))
    size = reach.blob_size[blob].astype(np.float64)
    stored = _counts(repo, n, size)
    exclusive = _counts(repo, n, np.where(holders[blob] == 1, size, 0.0))
    logical = _counts(reach.tag_repository[reach.pair_tag], n,
                      reach.blob_size[reach.pair_blob].astype(np.float64))
    manifests = inv.manifests.groupby("repository", observed=False)["digest"].nunique()
    frame = pd.DataFrame({
        "repository": pd.array(reach.repositories, dtype="string"),
        "tags": _counts(reach.tag_repository, n).astype(np.int64),
        "manifests": manifests.reindex(reach.repositories).fillna(0).to_numpy(dtype=np.int64),
        "logical_bytes": logical.astype(np.int64),
        "stored_bytes": stored.astype(np.int64),
        "exclusive_bytes": exclusive.astype(np.int64),
    })
    frame["shared_bytes"] = frame["stored_bytes"] - frame["exclusive_bytes"]
    frame = frame[frame["tags"] > 0]
    return frame.sort_values(["stored_bytes", "repository"], ascending=[False, True],
                             ignore_index=True)


def layer_sharing(inv: Inventory) -> pd.DataFrame:
    """Per layer/config blob: who uses it and what sharing it saves, most saved first.

    Columns: digest (string), size (int64), kind (string: layer/config),
    repositories, manifests, tags (int64: how many reach it), bytes_saved (int64:
    size x (manifests - 1), the extra bytes one copy per image would cost).
    """
    reach = Reach.of(inv)
    nb = len(reach.blobs)
    used = _unique(reach.pair_blob)
    _, blob = reach.repository_blobs()
    manifests = _counts(reach.uses_blob, nb)[used]
    frame = pd.DataFrame({
        "digest": pd.array(reach.blobs[used].to_numpy(), dtype="string"),
        "size": reach.blob_size[used],
        "kind": pd.array(reach.blob_kind[used], dtype="string"),
        "repositories": _counts(blob, nb)[used].astype(np.int64),
        "manifests": manifests.astype(np.int64),
        "tags": _counts(reach.pair_blob, nb)[used].astype(np.int64),
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
    stored = _counts(repo, len(reach.repositories), reach.blob_size[blob].astype(np.float64))
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


# ----------------------------------------------------------------- reclaimable


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
    reaches, in any repository. Assumes no untagged manifest outside the inventory
    holds blobs (the registry's API cannot list those). On an inventory that is not
    ``complete`` (part of the catalog, or with errors) this is an upper bound, and a
    PartialInventoryWarning says so.
    Columns: digest (string), size (int64), kind (string: manifest/layer/config).
    """
    if not inv.complete:
        warnings.warn(
            f"the inventory covers {inv.scope or 'the catalog'} with {len(inv.errors)} "
            "errors: blobs shared with what it does not see are counted as freed",
            PartialInventoryWarning, stacklevel=2)
    reach = Reach.of(inv)
    nm = len(reach.manifests)
    chosen = _chosen_tags(inv, tags)
    # a digest delete takes every tag on that digest in that repository
    link = reach.tag_repository.astype(np.int64) * nm + reach.tag_manifest
    gone = np.isin(link, link[chosen])
    kept_tags = np.flatnonzero(~gone)
    kept_rows = np.isin(reach.reach_tag, kept_tags)
    links = reach.tag_repository[reach.reach_tag].astype(np.int64) * nm + reach.reach_manifest
    kept_links = np.unique(links[kept_rows])
    gone_links = np.setdiff1d(np.unique(links[~kept_rows]), kept_links)
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


def reclaimable(inv: Inventory, tags: Iterable[tuple[str, str]] | pd.DataFrame) -> int:
    """Bytes the garbage collector frees after deleting the manifests behind ``tags``
    (``(repository, tag)`` pairs or a frame with those columns; see
    :func:`reclaimable_blobs` for exactly which blobs)."""
    return int(reclaimable_blobs(inv, tags)["size"].sum())
