"""Where a registry's disk goes, and what its own garbage collector would delete.

Pure functions of an inventory read from the storage (:func:`reginsight.scan_storage`),
which holds every manifest revision and every blob.

Distribution 2.x ``garbage-collect`` (``registry/storage/garbagecollect.go``) marks,
for every revision link of every repository, the manifest's digest and the digests
the manifest references (an image: its config and layers; an index: its child
manifests, not what those reference), then deletes every blob not marked. With
``--delete-untagged`` a revision no tag's ``current/link`` names is neither marked
nor followed, and its revision link is removed; the children of a tagged index are
never named by a tag, so their layers go unless another image marks them: the
pull of that tagged index breaks. Repositories are found by their ``_layers``
folder: one without is never visited. The model below is that algorithm, on frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._errors import InventoryError
from ..inventory._frames import GC_FATAL_STAGES
from ..inventory._lazy import LazyInventory
from ..inventory._reach import Reach
from . import _outofcore

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

CATEGORIES = ("tagged", "untagged", "unreferenced", "uploads")
GC_COLUMNS = ["digest", "size", "kind", "repositories", "reason", "breaks"]


def _require_storage(inv: Inventory, what: str) -> None:
    if not inv.from_storage:
        raise InventoryError(
            f"{what} needs an inventory read from the registry's storage "
            "(reginsight.scan_storage): the API does not list untagged manifests or blobs")


def _within(values: np.ndarray, pool: object) -> np.ndarray:
    """``values`` (object array) in ``pool``, by hash: an explicit object Series, as
    pandas' Arrow-backed strings test membership element by element in Python."""
    return pd.Series(values, dtype=object).isin(
        pd.Series(np.asarray(list(pool) if isinstance(pool, set) else pool, dtype=object))
    ).to_numpy()


@dataclass(frozen=True)
class _Graph:
    """The storage as integer ids, built once per inventory: every (manifest, digest
    it marks) pair, and the blobs on disk. Marking is then numpy indexing."""

    manifest: np.ndarray  # object: digest of each manifests row
    repository: np.ndarray  # object: its repository
    tagged: np.ndarray  # bool
    manifest_id: np.ndarray  # int: the id of each manifests row's digest
    marks_from: np.ndarray  # int ids: a manifest ...
    marks: np.ndarray  # ... and a digest it marks (itself included)
    disk: np.ndarray  # object: digests of the blobs on disk
    disk_id: np.ndarray  # int
    disk_size: np.ndarray  # int64
    disk_kind: np.ndarray  # object, None when nothing references it
    ids: int  # how many distinct digests

    @classmethod
    def of(cls, inv: Inventory) -> _Graph:
        return inv.derived("disk", cls._build)

    @classmethod
    def _build(cls, inv: Inventory) -> _Graph:
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
                   manifest_id=codes[:len(digest)], marks_from=codes[:half],
                   marks=codes[half:bounds[8]], disk=blobs["digest"].to_numpy(dtype=object),
                   disk_id=codes[bounds[8]:],
                   disk_size=blobs["size"].fillna(0).to_numpy(dtype=np.int64),
                   disk_kind=blobs["kind"].astype(object).to_numpy(), ids=len(universe))

    def marked(self, rows: np.ndarray) -> np.ndarray:
        """Which disk blobs the garbage collector marks from these manifests rows (a
        boolean mask over the rows): each manifest, its config and layers, an index's
        child manifests (one level, as Distribution 2.x does)."""
        chosen = np.zeros(self.ids, dtype=bool)
        chosen[self.manifest_id[rows]] = True
        hit = np.zeros(self.ids, dtype=bool)
        hit[self.marks[chosen[self.marks_from]]] = True
        return hit[self.disk_id]


def disk_blobs(inv: Inventory) -> pd.DataFrame:
    """Every blob in the storage with its disk category.

    Columns: digest (string), size (int64, bytes of its data), kind (string:
    manifest/config/layer, NA when nothing references it), category (string:
    ``tagged`` a tag reaches it, through indexes too; ``untagged`` only revisions no
    tag reaches reference it; ``unreferenced`` no revision references it).
    Sorted by digest.
    """
    _require_storage(inv, "disk_blobs")
    graph = _Graph.of(inv)
    tagged = graph.marked(graph.tagged)
    referenced = graph.marked(np.ones(len(graph.manifest), dtype=bool))
    category = np.where(tagged, "tagged", np.where(referenced, "untagged", "unreferenced"))
    return pd.DataFrame({
        "digest": pd.array(graph.disk, dtype="string"),
        "size": graph.disk_size,
        "kind": pd.array(graph.disk_kind, dtype="string"),
        "category": pd.array(category, dtype="string"),
    }).sort_values("digest", ignore_index=True)


def disk_usage(inv: Inventory | LazyInventory) -> pd.DataFrame:
    """Where the storage's bytes go: one row per category, in the order ``tagged``,
    ``untagged``, ``unreferenced``, ``uploads`` (see :func:`disk_blobs`; ``uploads``
    is the data of unfinished uploads). The rows sum to every byte of blob data
    plus the upload data the storage holds.

    Columns: category (string), blobs (int64: how many; for uploads, how many
    uploads), bytes (int64). A :class:`LazyInventory`: the same, by DuckDB.
    """
    _require_storage(inv, "disk_usage")
    if isinstance(inv, LazyInventory):
        by_category, uploads = _outofcore.disk_categories(inv)
    else:
        grouped = disk_blobs(inv).groupby("category")["size"].agg(["size", "sum"])
        by_category = {c: (int(row["size"]), int(row["sum"])) for c, row in grouped.iterrows()}
        uploads = len(inv.uploads), int(inv.uploads["size"].fillna(0).sum())
    rows = [(c, *by_category.get(c, (0, 0))) for c in CATEGORIES[:3]]
    rows.append(("uploads", *uploads))
    frame = pd.DataFrame(rows, columns=["category", "blobs", "bytes"])
    return frame.astype({"category": "string", "blobs": "int64", "bytes": "int64"})


def _placements(repository: np.ndarray, digest: np.ndarray) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([repository, digest])


def freed_after(inv: Inventory, removed: set[tuple[str, str]]) -> pd.DataFrame:
    """The blobs a plain garbage collection frees once the ``removed`` (repository,
    digest) revisions are deleted that it would not free today (blobs already
    unreferenced are left out: see :func:`disk_usage`).

    Columns: digest (string), size (int64), kind (string). Sorted by digest.
    """
    _require_storage(inv, "freed_after")
    graph = _Graph.of(inv)
    gone = (_placements(graph.repository, graph.manifest).isin(list(removed)) if removed
            else np.zeros(len(graph.manifest), dtype=bool))
    lost = graph.marked(np.ones(len(gone), dtype=bool)) & ~graph.marked(~gone)
    return pd.DataFrame({"digest": pd.array(graph.disk[lost], dtype="string"),
                         "size": graph.disk_size[lost],
                         "kind": pd.array(graph.disk_kind[lost], dtype="string")}
                        ).sort_values("digest", ignore_index=True)


def _check_readable(inv: Inventory, *, delete_untagged: bool = False) -> None:
    # with --delete-untagged the collector reads every tag's link too, and stops on one
    # it cannot read (Distribution's tagStore.Lookup), deleting nothing
    stages = GC_FATAL_STAGES | ({"tag link"} if delete_untagged else set())
    fatal = inv.errors[inv.errors["stage"].isin(stages)]
    if len(fatal):
        first = fatal.iloc[0]
        raise InventoryError(
            f"cannot predict garbage-collect: the scan could not read {len(fatal)} part(s) "
            f"of the storage (e.g. {first['repository'] or 'the path'} {first['reference']}: "
            f"{first['error']}); the registry's collector stops on a revision or a "
            "repository name it cannot read, deleting nothing, and follows the links and "
            "reads the odd files a scan refuses: fix those first")


def gc_preview(inv: Inventory, *, delete_untagged: bool = False) -> pd.DataFrame:
    """What ``docker-registry garbage-collect`` (Distribution 2.x) would delete from
    the storage this inventory was read from, and what that breaks.

    One row per blob it deletes, and one per manifest revision that
    ``--delete-untagged`` removes while keeping the manifest's blob (the child of a
    tagged index: its layers may all survive through other images, yet the index no
    longer pulls). Columns: digest (string), size (int64: bytes freed; 0 for a
    revision row), kind (string: manifest/config/layer/revision, or unknown for a
    blob nothing references), repositories (string: those referencing or linking it,
    comma-separated), reason (string: ``unreferenced``, ``untagged``, ``child of a
    tagged index``, or ``repository never visited (no _layers)``: the collector finds
    repositories by their ``_layers`` folder), breaks (string: the ``repository:tag``s
    whose pull it breaks, comma-separated; empty when none). Sorted by reason, then digest.
    ``size`` sums to what the real command frees. Raises InventoryError when the
    scan could not read a revision (the real command would stop).
    """
    _require_storage(inv, "gc_preview")
    _check_readable(inv, delete_untagged=delete_untagged)
    graph = _Graph.of(inv)
    placed = _placements(graph.repository, graph.manifest)
    # the collector finds a repository by its _layers directory; one without is never
    # visited: its revisions are neither marked nor removed
    visited = _within(graph.repository, inv.layer_links["repository"].astype(object).unique())
    if delete_untagged:  # only a revision some tag's current link names is marked
        named = placed.isin(_placements(inv.tags["repository"].to_numpy(dtype=object),
                                        inv.tags["digest"].to_numpy(dtype=object)))
    else:
        named = np.ones(len(placed), dtype=bool)
    kept = visited & named
    doomed = ~graph.marked(kept)
    referenced = graph.marked(np.ones(len(placed), dtype=bool))
    seen = graph.marked(visited)
    tagged = graph.marked(graph.tagged)
    reason = np.select([~referenced, ~seen, tagged],
                       ["unreferenced", "repository never visited (no _layers)",
                        "child of a tagged index"], "untagged")
    digests = graph.disk[doomed]
    removed = set(placed[visited & ~named])  # revision links --delete-untagged removes
    # only a blob some tag reaches, or a removed revision, can break a pull
    breaks = (_breaks(inv, set(digests), removed) if removed or (tagged & doomed).any()
              else _Broken({}, {}))
    users = _users(inv, digests)
    blobs = pd.DataFrame({
        "digest": digests,
        "size": graph.disk_size[doomed],
        "kind": pd.Series(graph.disk_kind[doomed], dtype=object).fillna("unknown").to_numpy(),
        "repositories": [users.get(d, "") for d in digests],
        "reason": reason[doomed],
        "breaks": [breaks.blob.get(d, "") for d in digests],
    })
    gone = set(digests)
    revisions = pd.DataFrame([
        (digest, 0, "revision", repo,
         "child of a tagged index" if was_tagged else "untagged", broken)
        for (repo, digest), was_tagged in zip(placed, graph.tagged, strict=True)
        if (repo, digest) in removed and digest not in gone
        and (broken := breaks.revision.get((repo, digest)))], columns=GC_COLUMNS)
    frame = pd.concat([blobs, revisions], ignore_index=True) if len(revisions) else blobs
    frame = frame.astype({"digest": "string", "size": "int64", "kind": "string",
                          "repositories": "string", "reason": "string", "breaks": "string"})
    return frame.sort_values(["reason", "digest"], ignore_index=True)


def broken_images(preview: pd.DataFrame) -> pd.DataFrame:
    """The tags a :func:`gc_preview` breaks, one row each, sorted by tag.

    Columns: tag (string, ``repository:tag``), lost (int64: blobs and revisions it
    loses), bytes (int64: their size), reason (string: of its first loss).
    """
    pairs = preview.loc[preview["breaks"] != "", ["breaks", "size", "reason"]].astype(object)
    pairs["tag"] = pairs.pop("breaks").str.split(", ")
    per_tag = pairs.explode("tag").groupby("tag", sort=True).agg(
        lost=("size", "size"), bytes=("size", "sum"), reason=("reason", "first"))
    return per_tag.reset_index().astype(
        {"tag": "string", "lost": "int64", "bytes": "int64", "reason": "string"})


@dataclass(frozen=True)
class _Broken:
    """Which tags break ("repo:tag, ..."), per deleted blob and per removed revision."""

    blob: dict[str, str]
    revision: dict[tuple[str, str], str]


def _breaks(inv: Inventory, deleted: set[str], removed: set[tuple[str, str]]) -> _Broken:
    reach = Reach.of(inv)
    names = (inv.tags["repository"].astype(str) + ":" + inv.tags["tag"].astype(str)).to_numpy()
    by_blob: dict[str, set[str]] = {}
    by_revision: dict[tuple[str, str], set[str]] = {}
    # a config or layer the tag's images use
    lost = _within(reach.blobs.to_numpy(dtype=object), deleted)[reach.pair_blob]
    for tag, blob in zip(reach.pair_tag[lost], reach.pair_blob[lost], strict=True):
        by_blob.setdefault(reach.blobs[blob], set()).add(names[tag])
    # a manifest the tag reaches: its blob deleted, or its revision removed there
    manifest = reach.manifests.to_numpy(dtype=object)[reach.reach_manifest]
    repository = reach.repositories[reach.tag_repository[reach.reach_tag]]
    blob_gone = _within(manifest, deleted)
    revision_gone = (_placements(repository, manifest).isin(list(removed)) if removed
                     else np.zeros(len(manifest), dtype=bool))
    for row in np.flatnonzero(blob_gone | revision_gone):
        tag, key = names[reach.reach_tag[row]], (repository[row], manifest[row])
        if blob_gone[row]:
            by_blob.setdefault(key[1], set()).add(tag)
        if revision_gone[row]:
            by_revision.setdefault(key, set()).add(tag)
    return _Broken({k: ", ".join(sorted(v)) for k, v in by_blob.items()},
                   {k: ", ".join(sorted(v)) for k, v in by_revision.items()})


def _users(inv: Inventory, digests: pd.Index) -> dict[str, str]:
    """For these digests, the repositories whose revisions mark them or that link
    them (``_layers``), comma-separated."""
    graph = _Graph.of(inv)
    wanted = np.zeros(graph.ids, dtype=bool)
    wanted[graph.disk_id[_within(graph.disk, digests)]] = True
    chosen = wanted[graph.marks]
    pairs = pd.DataFrame({"id": graph.manifest_id, "repository": graph.repository}).merge(
        pd.DataFrame({"id": graph.marks_from[chosen], "marked_id": graph.marks[chosen]}),
        on="id")
    digest_of = np.empty(graph.ids, dtype=object)
    digest_of[graph.disk_id] = graph.disk
    pairs["marked"] = digest_of[pairs["marked_id"].to_numpy()]
    links = inv.layer_links[_within(inv.layer_links["digest"].to_numpy(dtype=object), digests)]
    found: dict[str, set[str]] = {}
    for digest, repository in zip(
            np.concatenate([pairs["marked"].to_numpy(dtype=object),
                            links["digest"].to_numpy(dtype=object)]),
            np.concatenate([pairs["repository"].to_numpy(dtype=object),
                            links["repository"].astype(object).to_numpy()]), strict=True):
        found.setdefault(digest, set()).add(str(repository))
    return {digest: ", ".join(sorted(names)) for digest, names in found.items()}
