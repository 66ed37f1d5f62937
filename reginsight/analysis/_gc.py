"""The registry's own garbage collectors, modelled from their source: which blobs and
revision links one run deletes, or why it stops first.

Distribution 2.x and 3.x (``registry/storage/garbagecollect.go`` at v2.8.3 and
v3.0.0) both mark, then sweep every blob not marked; they differ in what they mark:

- **finding repositories**: 2.x walks to each ``_layers`` folder (a repository
  without one is never visited, so its manifests mark nothing), 3.x to each
  ``_manifests`` folder, and then lists that repository's ``_layers``: one without
  stops the whole run (3.x also deletes ``_layers`` links to blobs nothing marked,
  which frees no blob).
- **marking**: every revision of a visited repository marks its manifest and what
  it references. 2.x marks one level (an index: its child manifests' blobs, not what
  those reference: the children mark the rest as revisions of their own). 3.x reads
  each manifest it marks (a schema1 one stops the run: 3.x has no schema1 code) and
  goes on into a reference that is a revision of the same repository, unless that
  digest was already marked, in this repository or an earlier one (repositories in
  the order its storage driver walks them: S3 by key, the others folder by folder).
- **--delete-untagged**: only a revision some tag's ``current/link`` names is a root.
  The others are deleted; 2.x deletes them all, tagged index's children included, 3.x
  only those nothing marked. A visited repository without a ``_manifests/tags``
  folder: 2.x stops the run ("failed to retrieve tags ... unknown repository"), 3.x
  skips its revisions, neither marking nor deleting them, so their blobs are swept
  while their revision links stay.

A run that stops deletes nothing: it stops while marking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._errors import CollectorWouldStop, InventoryError

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

COLLECTORS = ("distribution-2", "distribution-3")
#: what each collector calls the version, for messages
VERSION = {"distribution-2": "Distribution 2.x", "distribution-3": "Distribution 3.x"}
#: how each version's collector is run where users run that version: (where, argv);
#: the registry reads its configuration from where its image or package keeps it
RUN_COLLECTOR = {
    "distribution-2": (
        ("registry:2 container", ("docker", "exec", "REGISTRY", "registry", "garbage-collect",
                                  "/etc/docker/registry/config.yml")),
        ("Debian/Ubuntu package", ("sudo", "docker-registry", "garbage-collect",
                                   "/etc/docker/registry/config.yml"))),
    "distribution-3": (
        ("registry:3 container", ("docker", "exec", "REGISTRY", "registry", "garbage-collect",
                                  "/etc/distribution/config.yml")),
        ("Distribution 3 binary", ("registry", "garbage-collect", "CONFIG.yml"))),
}


def check_collector(collector: str | None) -> None:
    if collector is not None and collector not in COLLECTORS:
        raise ValueError(f"collector must be one of {', '.join(map(repr, COLLECTORS))} "
                     f"(or None), not {collector!r}")


@dataclass(frozen=True)
class Graph:
    """The storage as integer ids, built once per inventory: every (manifest, digest
    it marks) pair, and the blobs on disk. Marking is then numpy indexing."""

    manifest: np.ndarray  # object: digest of each manifests row
    repository: np.ndarray  # object: its repository
    tagged: np.ndarray  # bool
    schema1: np.ndarray  # bool
    manifest_id: np.ndarray  # int: the id of each manifests row's digest
    marks_from: np.ndarray  # int ids: a manifest ...
    marks: np.ndarray  # ... and a digest it marks (itself included)
    disk: np.ndarray  # object: digests of the blobs on disk
    disk_id: np.ndarray  # int
    disk_size: np.ndarray  # int64
    disk_kind: np.ndarray  # object, None when nothing references it
    ids: int  # how many distinct digests

    @classmethod
    def of(cls, inv: Inventory) -> Graph:
        return inv.derived("disk", cls._build)

    @classmethod
    def _build(cls, inv: Inventory) -> Graph:
        manifests, layers, children = inv.manifests, inv.layers, inv.children
        blobs = inv.blobs[inv.blobs["on_disk"].to_numpy(dtype=bool)]
        digest = manifests["digest"].to_numpy(dtype=object)
        configs = manifests["config_digest"].notna().to_numpy()
        parts = [
            digest, digest[configs], layers["manifest"].astype(object).to_numpy(),
            children["parent"].to_numpy(dtype=object),  # marking from ...
            digest, manifests["config_digest"].to_numpy(dtype=object)[configs],
            layers["digest"].astype(object).to_numpy(),
            children["digest"].to_numpy(dtype=object),  # ... marking what
            blobs["digest"].to_numpy(dtype=object),
        ]
        codes, universe = pd.factorize(np.concatenate(parts))
        bounds = np.cumsum([0, *(len(p) for p in parts)])
        half = bounds[4]
        return cls(manifest=digest, repository=manifests["repository"].astype(object).to_numpy(),
                   tagged=manifests["tagged"].to_numpy(dtype=bool),
                   schema1=(manifests["kind"].astype(object) == "schema1").to_numpy(),
                   manifest_id=codes[:len(digest)], marks_from=codes[:half],
                   marks=codes[half:bounds[8]], disk=blobs["digest"].to_numpy(dtype=object),
                   disk_id=codes[bounds[8]:],
                   disk_size=blobs["size"].fillna(0).to_numpy(dtype=np.int64),
                   disk_kind=blobs["kind"].astype(object).to_numpy(), ids=len(universe))

    def marked_ids(self, rows: np.ndarray) -> np.ndarray:
        """Which digest ids these manifests rows (a boolean mask) mark: each manifest,
        its config and layers, an index's child manifests (one level)."""
        chosen = np.zeros(self.ids, dtype=bool)
        chosen[self.manifest_id[rows]] = True
        hit = np.zeros(self.ids, dtype=bool)
        hit[self.marks[chosen[self.marks_from]]] = True
        return hit

    def marked(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`marked_ids` as a boolean mask over the disk blobs."""
        return self.marked_ids(rows)[self.disk_id]


@dataclass(frozen=True)
class Run:
    """What one collector's run does to the storage."""

    collector: str
    kept: np.ndarray  # bool over Graph.disk: marked, so not deleted
    visited: np.ndarray  # bool over manifests rows: in a repository the run visits
    removed: frozenset[tuple[str, str]]  # (repository, digest) revision links it deletes
    skipped: frozenset[str]  # 3.x --delete-untagged: repositories left alone (no tags)


def run(inv: Inventory, *, collector: str, delete_untagged: bool,
        gone: np.ndarray | None = None) -> Run:
    """Model one ``garbage-collect`` run; CollectorWouldStop when it stops first.
    ``gone``: manifests rows (a boolean mask) whose revision links are deleted before
    it runs (a plain run only)."""
    graph = Graph.of(inv)
    folders = _folders(inv)
    revisions = set(graph.repository)
    if collector == "distribution-2":
        visited_repos = {r for r in revisions if "_layers" in folders.get(r, ())}
    else:
        visited_repos = {r for r in revisions if "_manifests" in folders.get(r, ())}
        if without := sorted(r for r in visited_repos if "_layers" not in folders[r]):
            raise _stop(collector, f"repository {without[0]} has manifests but no _layers "
                        "folder (the run lists it and fails: path not found)")
    visited = within(graph.repository, visited_repos)
    placed = pd.MultiIndex.from_arrays([graph.repository, graph.manifest])
    if not delete_untagged:
        roots = visited if gone is None else visited & ~gone
    else:
        no_tags = sorted(r for r in visited_repos if "_manifests/tags" not in folders[r])
        if collector == "distribution-2" and no_tags:
            raise _stop(collector, f"repository {no_tags[0]} has manifests but no "
                        "_manifests/tags folder (failed to retrieve tags: unknown "
                        "repository)")
        named = placed.isin(pd.MultiIndex.from_arrays(
            [inv.tags["repository"].to_numpy(dtype=object),
             inv.tags["digest"].to_numpy(dtype=object)]))
        skipped = within(graph.repository, no_tags)
        roots = visited & named & ~skipped
    if collector == "distribution-2":
        hit = graph.marked_ids(roots)
        removed = set(placed[visited & ~roots]) if delete_untagged else set()
        return Run(collector, hit[graph.disk_id], visited, frozenset(removed), frozenset())
    read = roots if not delete_untagged else _read_by_v3(inv, graph, roots)
    if graph.schema1[read].any():
        row = np.flatnonzero(graph.schema1 & read)[0]
        raise _stop(collector, f"{graph.repository[row]}@{graph.manifest[row]} is a schema1 "
                    "manifest, which 3.x cannot read (unrecognized manifest schema version 1)")
    hit = graph.marked_ids(read)
    if not delete_untagged:
        return Run(collector, hit[graph.disk_id], visited, frozenset(), frozenset())
    unmarked = ~hit[graph.manifest_id]
    removed = set(placed[visited & ~roots & ~skipped & unmarked])
    return Run(collector, hit[graph.disk_id], visited, frozenset(removed), frozenset(no_tags))


def _read_by_v3(inv: Inventory, graph: Graph, roots: np.ndarray) -> np.ndarray:
    """3.x ``--delete-untagged``: the manifests rows whose manifest the run reads and
    whose references it marks (a boolean mask). From each root, repositories in its
    driver's walk order, it marks each reference and goes into one that is a revision of the same
    repository; a digest marked before is passed over, wherever it was marked."""
    held = set(zip(graph.repository, graph.manifest, strict=True))
    refs = _manifest_references(inv, set(graph.manifest))
    marked: set[str] = set()
    expanded: set[tuple[str, str]] = set()
    flat = inv.registry.split("://", 1)[0] in ("s3", "s3a")
    order = sorted(range(len(graph.manifest)), key=lambda row: (
        _path_order(graph.repository[row], flat=flat), graph.manifest[row]))
    for row in order:
        if not roots[row]:
            continue
        repository, digest = graph.repository[row], graph.manifest[row]
        marked.add(digest)
        stack = [digest]
        while stack:
            current = stack.pop()
            expanded.add((repository, current))
            for ref in refs.get(current, ()):
                if ref in marked:
                    continue
                marked.add(ref)
                if (repository, ref) in held:
                    stack.append(ref)
    placed = pd.MultiIndex.from_arrays([graph.repository, graph.manifest])
    return placed.isin(list(expanded)) if expanded else np.zeros(len(placed), dtype=bool)


def _manifest_references(inv: Inventory, manifests: set[str]) -> dict[str, list[str]]:
    """For each manifest digest, the references it has that are manifests too (an
    index's children; rarely a layer): the only ones marking can go into."""
    children = inv.children.drop_duplicates(["parent", "digest"])
    refs: dict[str, list[str]] = {}
    for parent, child in zip(children["parent"].to_numpy(dtype=object),
                             children["digest"].to_numpy(dtype=object), strict=True):
        refs.setdefault(parent, []).append(child)
    layers = inv.layers
    odd = within(layers["digest"].astype(object).to_numpy(), manifests)
    for manifest, layer in zip(layers["manifest"].astype(object).to_numpy()[odd],
                               layers["digest"].astype(object).to_numpy()[odd], strict=True):
        refs.setdefault(manifest, []).append(layer)
    return refs


def _path_order(repository: str, *, flat: bool) -> tuple[str, ...]:
    """Where the collector's walk meets a repository's ``_manifests`` folder. Most
    drivers list each folder sorted (its components, then that folder: ``_`` sorts
    after digits, before letters); S3's lists every key in byte order (``o/a-b/...``
    before ``o/a/...``)."""
    if flat:
        return (f"{repository}/_manifests/",)
    return (*repository.split("/"), "_manifests")


def _folders(inv: Inventory) -> dict[str, set[str]]:
    """Each repository's folders (see ``Inventory.folders``). An inventory saved before
    they were recorded: what its frames imply, refused where that cannot tell."""
    folders: dict[str, set[str]] = {}
    if len(inv.folders) or not len(inv.manifests):
        for repository, folder in zip(inv.folders["repository"].astype(object),
                                      inv.folders["folder"].astype(object), strict=True):
            folders.setdefault(repository, set()).add(folder)
        return folders
    raise InventoryError(
        "this storage inventory was saved by an older reginsight, which did not record "
        "the repositories' folders that decide what garbage-collect visits: scan the "
        "storage again")


def _stop(collector: str, reason: str) -> CollectorWouldStop:
    return CollectorWouldStop(
        f"{VERSION[collector]} garbage-collect would stop before deleting anything: "
        f"{reason}", collector=collector, reason=reason)


def within(values: np.ndarray, pool: object) -> np.ndarray:
    """``values`` (object array) in ``pool``, by hash: an explicit object Series, as
    pandas' Arrow-backed strings test membership element by element in Python."""
    listed = list(pool) if isinstance(pool, (set, frozenset)) else pool
    return pd.Series(values, dtype=object).isin(
        pd.Series(np.asarray(listed, dtype=object))).to_numpy()
