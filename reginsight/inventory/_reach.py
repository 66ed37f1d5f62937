"""Reachability, computed one way for everyone: which manifests and blobs a tag reaches.

A tag reaches the manifest it points at; an index reaches its children, and their
children, to a fixpoint with no depth limit (a loop of indexes ends, it does not
hang). Frame assembly (:func:`reachable` over the crawl's facts), the analysis and
the cleanup plan (:class:`Reach` over the frames) all take the closure from here,
so a byte figure and a plan can never disagree about what a tag holds. The layers
above ask :class:`Reach` questions (who reaches these blobs, what these tags reach,
what these placements hold) and never read its arrays, so their layout can change
here alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pandas.api.extensions import ExtensionArray

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


def _names(values: Iterable[object]) -> np.ndarray:
    """Names (digests, repositories) as an object array, the type the Indexes hold."""
    if isinstance(values, set | frozenset):
        values = list(values)
    return np.asarray(values, dtype=object)


def _marked(universe: pd.Index, names: Iterable[object]) -> np.ndarray:
    """A bool mask over ``universe``'s ids: True at each of ``names`` it holds."""
    ids = universe.get_indexer(_names(names))
    mask = np.zeros(len(universe), dtype=bool)
    mask[ids[ids >= 0]] = True
    return mask


def _sizes(universe: pd.Index, blobs: pd.DataFrame) -> np.ndarray:
    """int64 by id in ``universe``: the size of the first ``blobs`` row of each digest,
    0 where it has none or no size."""
    ids = universe.get_indexer(blobs["digest"].astype(object))
    known = ids >= 0
    # the first row of each id, by sorting ints (drop_duplicates hashes every name again)
    first_ids, first_rows = np.unique(ids[known], return_index=True)
    sizes = np.zeros(len(universe), dtype=np.int64)
    sizes[first_ids] = blobs["size"].fillna(0).to_numpy(dtype=np.int64)[known][first_rows]
    return sizes


def _frame(**columns: np.ndarray | ExtensionArray) -> pd.DataFrame:
    """A frame of these arrays as they are, not copied (each is made for the answer).
    Names come as the Index holding them has them (pandas' string dtype, taken at C
    speed, or object): an object array of a million names would be converted one by one."""
    return pd.DataFrame({name: pd.Series(values, copy=False, dtype=values.dtype
                                         if isinstance(values, np.ndarray) else None)
                         for name, values in columns.items()}, copy=False)


@dataclass(frozen=True)
class Reached:
    """What a set of tags reaches, counted."""

    manifests: int  # distinct manifests, through indexes, the tags' own included
    blobs: int  # distinct layer/config blobs
    stored_bytes: int  # their sizes, each blob once
    logical_bytes: int  # each tag's image bytes (its distinct blobs), summed over tags


@dataclass(frozen=True)
class Reach:
    """Which manifests and blobs each tag reaches, asked through the methods below.

    A tag is a row number of ``inv.tags``. A placement is one int64 per (repository,
    manifest) pair, equal exactly when both are: a manifest in a repository, the unit a
    DELETE by digest removes. Compare placements, and let :meth:`names_of` take them
    apart. The arrays are laid out for this module alone."""

    _repositories: np.ndarray  # repository names (object), by repository id
    _tag_repository: np.ndarray  # repository id of each tag row
    _tag_manifest: np.ndarray  # the manifest id each tag points at
    _manifests: pd.Index  # manifest digests, by manifest id
    _blob_rows: pd.DataFrame  # inv.blobs itself, for the manifests' sizes when asked
    _blobs: pd.Index  # layer/config digests, by blob id
    _blob_size: np.ndarray  # int64, 0 when unknown
    _blob_kind: np.ndarray  # "layer" / "config"
    _reach_tag: np.ndarray  # (tag, manifest) pairs: every manifest a tag reaches
    _reach_manifest: np.ndarray
    _uses_manifest: np.ndarray  # (manifest, blob) pairs: the blobs a manifest references
    _uses_blob: np.ndarray
    _pair_tag: np.ndarray  # (tag, blob) pairs, distinct: every blob a tag reaches
    _pair_blob: np.ndarray
    _row_repository: np.ndarray  # repository id of each manifests row
    _row_manifest: np.ndarray  # manifest id of each manifests row
    _closure_from: np.ndarray  # (manifest, manifest it reaches) pairs, itself included
    _closure_to: np.ndarray

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
        sizes = _sizes(blob_index, inv.blobs)
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
            _repositories=repository_index.to_numpy(dtype=object),
            _tag_repository=ids_of(repository_index, tags["repository"]),
            _tag_manifest=tag_manifest, _manifests=manifest_index,
            _blob_rows=inv.blobs, _blobs=blob_index,
            _blob_size=sizes, _blob_kind=kinds, _reach_tag=reach_tag,
            _reach_manifest=reach_manifest, _uses_manifest=uses_m, _uses_blob=uses_b,
            _pair_tag=pair_tag, _pair_blob=pair_blob,
            _row_repository=ids_of(repository_index, manifests["repository"]),
            _row_manifest=manifest_index.get_indexer(manifests["digest"].astype(object)),
            _closure_from=closure_from, _closure_to=closure_to)

    @functools.cached_property
    def _manifest_size(self) -> np.ndarray:
        """int64 by manifest id: the manifest's own blob, 0 when unknown (only the
        cleanup figures ask, so a build does not pay for it)."""
        return _sizes(self._manifests, self._blob_rows)

    @functools.cached_property
    def _kinds(self) -> ExtensionArray:
        return pd.Index(self._blob_kind).array  # the string dtype the names have

    @functools.cached_property
    def _repository_index(self) -> pd.Index:
        return pd.Index(self._repositories)

    # -- placements: a manifest in a repository ---------------------------------------

    def _placement(self, repository_ids: np.ndarray, manifest_ids: np.ndarray) -> np.ndarray:
        return repository_ids.astype(np.int64) * len(self._manifests) + manifest_ids

    def placements_of(self, repositories: Iterable[object], digests: Iterable[object]
                      ) -> np.ndarray:
        """The placement of each (repository, manifest digest) pair, the two aligned;
        -1 where the inventory holds no such repository or manifest."""
        repository_ids = self._repository_index.get_indexer(_names(repositories))
        manifest_ids = self._manifests.get_indexer(_names(digests))
        known = (repository_ids >= 0) & (manifest_ids >= 0)
        return np.where(known, self._placement(repository_ids, manifest_ids), -1)

    def names_of(self, placements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(repository names, manifest digests) of these placements: object arrays."""
        placements = np.asarray(placements, dtype=np.int64)
        nm = max(len(self._manifests), 1)
        return (self._repositories[placements // nm],
                self._manifests.array.take(placements % nm).to_numpy(dtype=object))

    def tag_placements(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The placement each tag points at (every tag's, in row order, when ``rows``
        is None)."""
        if rows is None:
            return self._placement(self._tag_repository, self._tag_manifest)
        return self._placement(self._tag_repository[rows], self._tag_manifest[rows])

    def placements_reached(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(tag, placement) pairs, distinct: every manifest these tags reach in their
        repository (their own, and through indexes every child): what they keep."""
        chosen = np.isin(self._reach_tag, rows)
        tags = self._reach_tag[chosen]
        return tags, self._placement(self._tag_repository[tags], self._reach_manifest[chosen])

    @functools.cached_property
    def untagged_rows(self) -> np.ndarray:
        """Which ``manifests`` rows no tag of their repository reaches (bool mask)."""
        rows = self._placement(self._row_repository, self._row_manifest)
        return ~np.isin(rows, self._placement(self._tag_repository[self._reach_tag],
                                              self._reach_manifest))

    def roots(self) -> np.ndarray:
        """The placements that keep what they reach: every tag's, and every manifest
        row no tag reaches (a crawl's referrers and subjects, a scan's revisions).
        Distinct, sorted."""
        rows = self._placement(self._row_repository, self._row_manifest)
        return np.union1d(self.tag_placements(), rows[self.untagged_rows])

    def _reached_from(self, placements: np.ndarray) -> pd.DataFrame:
        """(root, manifest id) pairs: each placement with every manifest it reaches."""
        nm = len(self._manifests)
        return pd.DataFrame({"root": placements, "manifest": placements % nm}).merge(
            pd.DataFrame({"manifest": self._closure_from, "item": self._closure_to}),
            on="manifest")[["root", "item"]]

    def closure(self, placements: np.ndarray) -> np.ndarray:
        """Every placement reachable from these: the same repository, the manifests
        each one reaches through indexes (itself included). Distinct, sorted."""
        reached = self._reached_from(np.unique(placements))
        nm = len(self._manifests)
        return np.unique(self._placement(reached["root"].to_numpy() // nm,
                                         reached["item"].to_numpy()))

    def held_by(self, roots: np.ndarray) -> pd.DataFrame:
        """What each of these placements holds: the manifests it reaches (itself
        included) and the layer/config blobs they reference, one row per distinct
        (root, item). Columns: root (int64: the placement), item (int64: an id, equal
        exactly when the manifest or the blob is; numbered apart for each), blob (bool:
        a layer/config blob, not a manifest), size (int64: its bytes, a manifest's own
        blob's for a manifest; 0 when unknown), repository (int64: the root's
        repository, a position in :meth:`repository_names`)."""
        reached = self._reached_from(roots)
        blobs = reached.merge(pd.DataFrame({"item": self._uses_manifest,
                                            "blob": self._uses_blob}),
                              on="item")[["root", "blob"]].rename(columns={"blob": "item"})
        held = pd.concat([
            reached.assign(size=self._manifest_size[reached["item"]], blob=False),
            blobs.assign(size=self._blob_size[blobs["item"]], blob=True)],
            ignore_index=True).drop_duplicates(["root", "item", "blob"])
        held["repository"] = held["root"] // len(self._manifests)
        return held

    def released(self, removed: np.ndarray, remaining: np.ndarray) -> pd.DataFrame:
        """What the ``removed`` placements hold and none of the ``remaining`` ones
        does: their manifests no remaining placement has (in any repository), and the
        layer/config blobs only those reference. Columns: digest (str), size (int64,
        0 when unknown), kind (str: manifest/layer/config); manifests first."""
        nm = len(self._manifests)
        linked_after = np.unique(np.asarray(remaining, dtype=np.int64) % nm)
        deleted = np.unique(np.asarray(removed, dtype=np.int64) % nm)
        freed_manifests = np.setdiff1d(deleted, linked_after)
        kept_blobs = self._uses_blob[np.isin(self._uses_manifest, linked_after)]
        gone_blobs = np.unique(self._uses_blob[np.isin(self._uses_manifest, deleted)])
        freed_blobs = np.setdiff1d(gone_blobs, kept_blobs)
        return pd.concat([
            _frame(digest=self._manifests.array.take(freed_manifests),
                   size=self._manifest_size[freed_manifests],
                   kind=pd.Index(np.full(len(freed_manifests), "manifest", dtype=object)).array),
            _frame(digest=self._blobs.array.take(freed_blobs),
                   size=self._blob_size[freed_blobs], kind=self._kinds.take(freed_blobs)),
        ], ignore_index=True)

    # -- who reaches what --------------------------------------------------------------

    def tags_reaching_blobs(self, digests: Iterable[object]) -> pd.DataFrame:
        """The tags whose images use these layer/config blobs, through any index: one
        row per distinct (tag, blob). Columns: tag (int64: a row of ``inv.tags``),
        digest (str)."""
        chosen = _marked(self._blobs, digests)[self._pair_blob]
        return _frame(tag=self._pair_tag[chosen],
                      digest=self._blobs.array.take(self._pair_blob[chosen]))

    def tags_reaching_manifests(self, digests: Iterable[object]) -> pd.DataFrame:
        """The tags that reach these manifests (their own, or an index's child at any
        depth): one row per distinct (tag, manifest). Columns: tag (int64: a row of
        ``inv.tags``), digest (str)."""
        chosen = _marked(self._manifests, digests)[self._reach_manifest]
        return _frame(tag=self._reach_tag[chosen],
                      digest=self._manifests.array.take(self._reach_manifest[chosen]))

    def tags_reaching_placements(self, repositories: Iterable[object],
                                 digests: Iterable[object]) -> pd.DataFrame:
        """The tags that reach these (repository, manifest digest) pairs, the two
        aligned: a tag reaches a manifest only in its own repository. One row per
        distinct (tag, pair). Columns: tag (int64: a row of ``inv.tags``), repository,
        digest (str)."""
        wanted = self.placements_of(repositories, digests)
        reached = self._placement(self._tag_repository[self._reach_tag], self._reach_manifest)
        chosen = np.isin(reached, wanted[wanted >= 0])
        tags = self._reach_tag[chosen]
        return _frame(tag=tags,
                      repository=self._repository_index.array.take(self._tag_repository[tags]),
                      digest=self._manifests.array.take(self._reach_manifest[chosen]))

    @functools.cached_property
    def _repository_blobs(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (repository id, blob id) pairs: the blobs each repository's tags reach."""
        return unique_pairs(self._tag_repository[self._pair_tag], self._pair_blob,
                             len(self._blobs))

    @functools.cached_property
    def _repository_dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype(self._repository_index)

    @functools.cached_property
    def _blob_dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype(self._blobs)

    def repository_names(self) -> np.ndarray:
        """Every repository the inventory names (tags' and manifests'), sorted:
        the categories of the ``repository`` columns answered here."""
        return self._repositories.copy()

    def repositories_reaching(self, digests: Iterable[object] | None = None) -> pd.DataFrame:
        """Which repositories' tags reach these layer/config blobs (every blob a tag
        reaches when ``digests`` is None): one row per distinct (repository, blob).
        Columns: repository (category: :meth:`repository_names`, unused ones included),
        digest (category: every layer/config blob the inventory names), size (int64)."""
        repository, blob = self._repository_blobs
        if digests is not None:
            chosen = _marked(self._blobs, digests)[blob]
            repository, blob = repository[chosen], blob[chosen]
        return _frame(
            repository=pd.Categorical.from_codes(repository, dtype=self._repository_dtype),
            digest=pd.Categorical.from_codes(blob, dtype=self._blob_dtype),
            size=self._blob_size[blob])

    # -- what tags reach ---------------------------------------------------------------

    def reached(self, rows: np.ndarray | None = None) -> Reached:
        """What these tags (every tag when ``rows`` is None; each tag once) reach."""
        if rows is None:
            manifests, blobs = self._reach_manifest, self._pair_blob
        else:
            manifests = self._reach_manifest[np.isin(self._reach_tag, rows)]
            blobs = self._pair_blob[np.isin(self._pair_tag, rows)]
        distinct = unique(blobs)
        return Reached(manifests=len(unique(manifests)), blobs=len(distinct),
                       stored_bytes=int(self._blob_size[distinct].sum()),
                       logical_bytes=int(self._blob_size[blobs].sum()))

    def tag_bytes(self) -> np.ndarray:
        """Each tag's image bytes (the distinct layer/config blobs it reaches), int64
        by tag row."""
        return np.bincount(self._pair_tag, weights=self._blob_size[self._pair_blob],
                           minlength=len(self._tag_manifest)).astype(np.int64)

    def blobs_by_tag(self) -> pd.DataFrame:
        """Every (tag, layer/config blob it reaches) pair, distinct. Columns: tag
        (int64: a row of ``inv.tags``), digest (str), size (int64), kind (str:
        layer/config)."""
        return _frame(tag=self._pair_tag.copy(), digest=self._blobs.array.take(self._pair_blob),
                      size=self._blob_size[self._pair_blob],
                      kind=self._kinds.take(self._pair_blob))

    def reached_blobs(self) -> pd.DataFrame:
        """Every layer/config blob some tag reaches, with how widely it is used.
        Columns: digest (str), size (int64), kind (str: layer/config),
        repositories (int64: how many repositories' tags reach it), manifests (int64:
        how many of the inventory's manifests reference it, reached or not), tags
        (int64: how many tags reach it)."""
        nb = len(self._blobs)
        used = unique(self._pair_blob)
        _, blob = self._repository_blobs
        return _frame(
            digest=self._blobs.array.take(used), size=self._blob_size[used],
            kind=self._kinds.take(used),
            repositories=np.bincount(blob, minlength=nb)[used].astype(np.int64),
            manifests=np.bincount(self._uses_blob, minlength=nb)[used].astype(np.int64),
            tags=np.bincount(self._pair_blob, minlength=nb)[used].astype(np.int64))

    def blobs_referenced(self, groups: pd.Series) -> pd.DataFrame:
        """The layer/config blobs each group of manifests references, reached or not
        (an index references none). ``groups``: a group number (int, >= 0) by manifest
        digest; manifests it leaves out are in no group. One row per distinct (group,
        blob). Columns: group (int64), digest (category: every layer/config blob the
        inventory names), size (int64)."""
        group_of = np.full(len(self._manifests), -1, dtype=np.int64)
        at = self._manifests.get_indexer(_names(groups.index))
        group_of[at[at >= 0]] = groups.to_numpy(dtype=np.int64)[at >= 0]
        used = group_of[self._uses_manifest]
        group, blob = unique_pairs(used[used >= 0], self._uses_blob[used >= 0],
                                   len(self._blobs))
        return _frame(group=group, digest=pd.Categorical.from_codes(blob, dtype=self._blob_dtype),
                      size=self._blob_size[blob])
