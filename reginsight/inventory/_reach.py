"""Reachability, computed one way for everyone: which manifests and blobs a tag reaches.

A tag reaches the manifest it points at; an index reaches its children, and their
children, to a fixpoint with no depth limit (a loop of indexes ends, it does not
hang). Frame assembly (:func:`reachable` over the crawl's facts), the analysis and
the cleanup plan (:class:`Reach` over the frames) all take the closure from here,
so a byte figure and a plan can never disagree about what a tag holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ._inventory import Inventory

N = TypeVar("N", bound=Hashable)


def reachable(roots: Iterable[N], successors: Callable[[N], Iterable[N]]) -> set[N]:
    """Every node reachable from ``roots`` (roots included), following ``successors``:
    a fixpoint, no depth limit; a node seen once is never expanded again, so cycles end."""
    seen: set[N] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(successors(node))
    return seen


def manifest_closure(parent: np.ndarray, child: np.ndarray, count: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """For manifests numbered ``0..count-1`` and index edges ``parent[i] -> child[i]``
    (-1 ignored): every pair (manifest, manifest it reaches), itself included."""
    edges: dict[int, list[int]] = {}
    for p, c in zip(parent.tolist(), child.tolist(), strict=True):
        if p >= 0 and c >= 0:
            edges.setdefault(p, []).append(c)
    sources, targets = [], []
    for index in edges:
        closure = reachable([index], lambda m: edges.get(m, ()))
        sources.extend([index] * len(closure))
        targets.extend(closure)
    plain = np.setdiff1d(np.arange(count, dtype=np.int64),
                         np.fromiter(edges, dtype=np.int64, count=len(edges)))
    return (np.concatenate([np.asarray(sources, dtype=np.int64), plain]),
            np.concatenate([np.asarray(targets, dtype=np.int64), plain]))


def ids_of(universe: pd.Index, values: pd.Series) -> np.ndarray:
    """Positions of ``values`` in ``universe``, fast for categoricals (-1: absent)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = universe.get_indexer(values.cat.categories.astype(object))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[codes], -1)
    return universe.get_indexer(values.astype(object))


def unique(values: np.ndarray) -> np.ndarray:
    # pandas' hash table beats numpy's unique on a million int64s by ~10x
    return pd.unique(values)


def unique_pairs(a: np.ndarray, b: np.ndarray, b_count: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(b_count, 1)
    keys = unique(a.astype(np.int64) * width + b)
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
    row_repository: np.ndarray  # repository id of each manifests row
    row_manifest: np.ndarray  # manifest id of each manifests row
    closure_from: np.ndarray  # (manifest, manifest it reaches) pairs, itself included
    closure_to: np.ndarray

    @classmethod
    def of(cls, inv: Inventory) -> Reach:
        """The inventory's Reach, built once and kept on it while its frames stay the
        same objects (reassigning a frame, e.g. ``inv.tags = inv.tags[...]``, rebuilds)."""
        return inv.derived("reach", cls._build)

    @classmethod
    def _build(cls, inv: Inventory) -> Reach:
        tags, layers, manifests, children = inv.tags, inv.layers, inv.manifests, inv.children
        configs = manifests.loc[manifests["config_digest"].notna(), ["digest", "config_digest"]]
        manifest_index = pd.Index(pd.unique(np.concatenate([
            tags["digest"].astype(object).to_numpy(),
            manifests["digest"].astype(object).to_numpy(),
            children["parent"].astype(object).to_numpy(),
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
        layer_ids = ids_of(blob_index, layers["digest"])
        layer_sizes = layers["size"].fillna(0).to_numpy(dtype=np.int64)
        np.maximum.at(sizes, layer_ids, layer_sizes)  # repeated ids: every size counts
        kinds = np.full(len(blob_index), "layer", dtype=object)
        config_ids = blob_index.get_indexer(configs["config_digest"].astype(object))
        kinds[config_ids] = "config"

        uses_m = np.concatenate([ids_of(manifest_index, layers["manifest"]),
                                 manifest_index.get_indexer(configs["digest"].astype(object))])
        uses_b = np.concatenate([layer_ids, config_ids])
        uses_m, uses_b = unique_pairs(uses_m, uses_b, len(blob_index))

        repository_index = pd.Index(sorted({*tags["repository"].cat.categories.astype(str),
                                            *manifests["repository"].cat.categories.astype(str)}))
        tag_manifest = manifest_index.get_indexer(tags["digest"].astype(object))
        child_of = manifest_index.get_indexer(children["parent"].astype(object))
        child = manifest_index.get_indexer(children["digest"].astype(object))
        # every manifest a tag reaches: its own, and through indexes the whole closure
        closure_from, closure_to = manifest_closure(child_of, child, len(manifest_index))
        reached = pd.DataFrame({"tag": np.arange(len(tags)), "manifest": tag_manifest}).merge(
            pd.DataFrame({"manifest": closure_from, "reached": closure_to}), on="manifest")
        reach_tag, reach_manifest = unique_pairs(reached["tag"].to_numpy(),
                                                  reached["reached"].to_numpy(),
                                                  len(manifest_index))
        joined = pd.DataFrame({"tag": reach_tag, "manifest": reach_manifest}).merge(
            pd.DataFrame({"manifest": uses_m, "blob": uses_b}), on="manifest")
        pair_tag, pair_blob = unique_pairs(joined["tag"].to_numpy(), joined["blob"].to_numpy(),
                                            len(blob_index))
        return cls(
            repositories=repository_index.to_numpy(dtype=object),
            tag_repository=ids_of(repository_index, tags["repository"]),
            tag_manifest=tag_manifest, manifests=manifest_index, blobs=blob_index,
            blob_size=sizes, blob_kind=kinds, reach_tag=reach_tag,
            reach_manifest=reach_manifest, uses_manifest=uses_m, uses_blob=uses_b,
            pair_tag=pair_tag, pair_blob=pair_blob,
            row_repository=ids_of(repository_index, manifests["repository"]),
            row_manifest=manifest_index.get_indexer(manifests["digest"].astype(object)),
            closure_from=closure_from, closure_to=closure_to)

    def repositories_index(self) -> pd.Index:
        """Repository names as an Index: id by name."""
        return pd.Index(self.repositories)

    def placement(self, repository_ids: np.ndarray, manifest_ids: np.ndarray) -> np.ndarray:
        """One int64 per (repository, manifest) pair, equal exactly when both are: a
        manifest in a repository, the unit a DELETE by digest removes."""
        return repository_ids.astype(np.int64) * len(self.manifests) + manifest_ids

    @functools.cached_property
    def untagged_rows(self) -> np.ndarray:
        """Which ``manifests`` rows no tag of their repository reaches (bool mask)."""
        rows = self.placement(self.row_repository, self.row_manifest)
        return ~np.isin(rows, self.placement(self.tag_repository[self.reach_tag],
                                             self.reach_manifest))

    def roots(self) -> np.ndarray:
        """The placements that keep what they reach: every tag's, and every manifest
        row no tag reaches (a crawl's referrers and subjects, a scan's revisions).
        Distinct, sorted."""
        rows = self.placement(self.row_repository, self.row_manifest)
        return np.union1d(self.placement(self.tag_repository, self.tag_manifest),
                          rows[self.untagged_rows])

    def closure(self, placements: np.ndarray) -> np.ndarray:
        """Every placement reachable from these: the same repository, the manifests
        each one reaches through indexes (itself included). Distinct, sorted."""
        placements = np.unique(placements)
        nm = len(self.manifests)
        roots = pd.DataFrame({"repository": placements // nm, "manifest": placements % nm})
        reached = roots.merge(pd.DataFrame({"manifest": self.closure_from,
                                            "reached": self.closure_to}), on="manifest")
        return np.unique(self.placement(reached["repository"].to_numpy(),
                                        reached["reached"].to_numpy()))

    def repository_blobs(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (repository id, blob id) pairs."""
        return unique_pairs(self.tag_repository[self.pair_tag], self.pair_blob,
                             len(self.blobs))


