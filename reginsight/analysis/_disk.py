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
pull of that tagged index breaks. The model below is that algorithm, on frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._errors import InventoryError
from ..inventory._layout import GC_FATAL_STAGES
from ..inventory._reach import Reach

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

CATEGORIES = ("tagged", "untagged", "unreferenced", "uploads")
GC_COLUMNS = ["digest", "size", "kind", "repositories", "reason", "breaks"]


def _require_storage(inv: Inventory, what: str) -> None:
    if not inv.from_storage:
        raise InventoryError(
            f"{what} needs an inventory read from the registry's storage "
            "(reginsight.scan_storage): the API does not list untagged manifests or blobs")


def references(inv: Inventory, manifests: Iterable[str]) -> set[str]:
    """The digests the garbage collector marks for these manifest digests: each
    manifest itself, its config and layers, an index's child manifests (one level,
    as Distribution 2.x does)."""
    chosen = set(manifests)
    frame = inv.manifests
    configs = frame.loc[frame["digest"].isin(chosen) & frame["config_digest"].notna(),
                        "config_digest"]
    layers = inv.layers.loc[inv.layers["manifest"].isin(chosen), "digest"]
    children = inv.children.loc[inv.children["index"].isin(chosen), "digest"]
    return chosen | set(configs) | set(layers.astype(str)) | set(children)


def disk_blobs(inv: Inventory) -> pd.DataFrame:
    """Every blob in the storage with its disk category.

    Columns: digest (string), size (int64, bytes of its data), kind (string:
    manifest/config/layer, NA when nothing references it), category (string:
    ``tagged`` a tag reaches it, through indexes too; ``untagged`` only revisions no
    tag reaches reference it; ``unreferenced`` no revision references it).
    Sorted by digest.
    """
    _require_storage(inv, "disk_blobs")
    blobs = inv.blobs[inv.blobs["on_disk"]]
    manifests = inv.manifests
    tagged = references(inv, manifests.loc[manifests["tagged"], "digest"])
    referenced = references(inv, manifests["digest"])
    digest = blobs["digest"].astype(str)
    category = np.where(digest.isin(tagged), "tagged",
                        np.where(digest.isin(referenced), "untagged", "unreferenced"))
    return pd.DataFrame({
        "digest": pd.array(digest, dtype="string"),
        "size": blobs["size"].fillna(0).astype("int64").to_numpy(),
        "kind": pd.array(blobs["kind"].astype(object), dtype="string"),
        "category": pd.array(category, dtype="string"),
    }).sort_values("digest", ignore_index=True)


def disk_usage(inv: Inventory) -> pd.DataFrame:
    """Where the storage's bytes go: one row per category, in the order ``tagged``,
    ``untagged``, ``unreferenced``, ``uploads`` (see :func:`disk_blobs`; ``uploads``
    is the data of unfinished uploads). The rows sum to every byte of blob data
    plus the upload data the storage holds.

    Columns: category (string), blobs (int64: how many; for uploads, how many
    uploads), bytes (int64).
    """
    blobs = disk_blobs(inv)
    grouped = blobs.groupby("category")["size"].agg(["size", "sum"])
    rows = [(c, int(grouped.loc[c, "size"]) if c in grouped.index else 0,
             int(grouped.loc[c, "sum"]) if c in grouped.index else 0) for c in CATEGORIES[:3]]
    rows.append(("uploads", len(inv.uploads), int(inv.uploads["size"].fillna(0).sum())))
    frame = pd.DataFrame(rows, columns=["category", "blobs", "bytes"])
    return frame.astype({"category": "string", "blobs": "int64", "bytes": "int64"})


def freed_after(inv: Inventory, removed: set[tuple[str, str]]) -> pd.DataFrame:
    """The blobs a plain garbage collection frees once the ``removed`` (repository,
    digest) revisions are deleted that it would not free today (blobs already
    unreferenced are left out: see :func:`disk_usage`).

    Columns: digest (string), size (int64), kind (string). Sorted by digest.
    """
    _require_storage(inv, "freed_after")
    manifests = inv.manifests
    placed = pd.MultiIndex.from_arrays([manifests["repository"].astype(str),
                                        manifests["digest"].astype(str)])
    gone = placed.isin(list(removed)) if removed else np.zeros(len(placed), dtype=bool)
    lost = references(inv, manifests["digest"]) - references(inv, manifests.loc[~gone, "digest"])
    blobs = disk_blobs(inv)
    freed = blobs.loc[blobs["digest"].isin(lost), ["digest", "size", "kind"]]
    return freed.reset_index(drop=True)


def _check_readable(inv: Inventory) -> None:
    fatal = inv.errors[inv.errors["stage"].isin(GC_FATAL_STAGES)]
    if len(fatal):
        first = fatal.iloc[0]
        raise InventoryError(
            f"cannot predict garbage-collect: {len(fatal)} revision(s) could not be read "
            f"(e.g. {first['repository']} {first['reference']}: {first['error']}); the "
            "registry's collector stops on such a revision and deletes nothing")


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
    tagged index``), breaks (string: the ``repository:tag``s whose pull it breaks,
    comma-separated; empty when none). Sorted by reason, then digest.
    ``size`` sums to what the real command frees. Raises InventoryError when the
    scan could not read a revision (the real command would stop).
    """
    _require_storage(inv, "gc_preview")
    _check_readable(inv)
    manifests = inv.manifests
    placed = pd.MultiIndex.from_arrays([manifests["repository"].astype(str),
                                        manifests["digest"].astype(str)])
    if delete_untagged:
        named = pd.MultiIndex.from_arrays([inv.tags["repository"].astype(str),
                                           inv.tags["digest"].astype(str)])
        kept = placed.isin(named)
    else:
        kept = np.ones(len(manifests), dtype=bool)
    marked = references(inv, manifests.loc[kept, "digest"])
    blobs = disk_blobs(inv)
    doomed = blobs[~blobs["digest"].isin(marked)].copy()
    removed = set(placed[~kept])  # revision links --delete-untagged removes

    tagged_refs = references(inv, manifests.loc[manifests["tagged"], "digest"])
    doomed["reason"] = np.where(
        doomed["category"] == "unreferenced", "unreferenced",
        np.where(doomed["digest"].isin(tagged_refs), "child of a tagged index", "untagged"))
    breaks = _breaks(inv, set(doomed["digest"]), removed)
    users = _users(inv)
    doomed["kind"] = doomed["kind"].fillna("unknown")
    doomed["repositories"] = [users.get(d, "") for d in doomed["digest"]]
    doomed["breaks"] = [breaks.blob.get(d, "") for d in doomed["digest"]]
    gone = set(doomed["digest"])
    revisions = [
        (digest, 0, "revision", repo,
         "child of a tagged index" if tagged else "untagged", broken)
        for (repo, digest), tagged in zip(placed, manifests["tagged"], strict=True)
        if (repo, digest) in removed and digest not in gone
        and (broken := breaks.revision.get((repo, digest)))]
    frame = pd.concat([doomed[GC_COLUMNS],
                       pd.DataFrame(revisions, columns=GC_COLUMNS)], ignore_index=True)
    frame = frame.astype({"digest": "string", "size": "int64", "kind": "string",
                          "repositories": "string", "reason": "string", "breaks": "string"})
    return frame.sort_values(["reason", "digest"], ignore_index=True)


class _Broken:
    """Which tags break, per deleted blob and per removed revision."""

    def __init__(self, blob: dict[str, str], revision: dict[tuple[str, str], str]) -> None:
        self.blob, self.revision = blob, revision


def _breaks(inv: Inventory, deleted: set[str], removed: set[tuple[str, str]]) -> _Broken:
    reach = Reach.of(inv)
    names = (inv.tags["repository"].astype(str) + ":" + inv.tags["tag"].astype(str)).to_numpy()
    by_blob: dict[str, set[str]] = {}
    # a config or layer the tag's images use
    lost = reach.blobs.isin(list(deleted))[reach.pair_blob]
    for tag, blob in zip(reach.pair_tag[lost], reach.pair_blob[lost], strict=True):
        by_blob.setdefault(reach.blobs[blob], set()).add(names[tag])
    # a manifest the tag reaches: its blob deleted, or its revision removed in that repo
    manifest = reach.manifests[reach.reach_manifest].astype(str)
    repository = reach.repositories[reach.tag_repository[reach.reach_tag]].astype(str)
    by_revision: dict[tuple[str, str], set[str]] = {}
    for tag, repo, digest in zip(reach.reach_tag, repository, manifest, strict=True):
        if digest in deleted:
            by_blob.setdefault(digest, set()).add(names[tag])
        if (repo, digest) in removed:
            by_revision.setdefault((repo, digest), set()).add(names[tag])
    joined = {key: ", ".join(sorted(tags)) for key, tags in by_blob.items()}
    return _Broken(joined, {key: ", ".join(sorted(t)) for key, t in by_revision.items()})


def _users(inv: Inventory) -> dict[str, str]:
    """Per digest, the repositories whose revisions reference it or that link it."""
    pairs = pd.concat([
        inv.manifests[["repository", "digest"]],
        inv.manifests.loc[inv.manifests["config_digest"].notna(),
                          ["repository", "config_digest"]].rename(
                              columns={"config_digest": "digest"}),
        inv.layers[["repository", "digest"]],
        inv.children[["repository", "digest"]],
        inv.layer_links[["repository", "digest"]],
    ], ignore_index=True).astype(str).drop_duplicates()
    return pairs.sort_values("repository").groupby("digest")["repository"].agg(", ".join
                                                                              ).to_dict()
