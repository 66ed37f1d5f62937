"""Where a registry's disk goes, and what its own garbage collector would delete.

Pure functions of an inventory read from the storage (:func:`reginsight.scan_storage`),
which holds every manifest revision and every blob. The disk categories are facts of
the storage; what a garbage collection deletes depends on the registry's version,
whose collectors differ (modelled in :mod:`._gc`), and the storage does not say which
version writes it: so :func:`gc_preview` never assumes one where they differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._errors import CollectorsDiffer, CollectorWouldStop, InventoryError
from .._units import count
from ..inventory._frames import GC_FATAL_STAGES
from ..inventory._lazy import LazyInventory
from ..inventory._reach import Reach
from . import _outofcore
from ._gc import (
    COLLECTORS,
    VERSION,
    Graph,
    Run,
    check_collector,
    run,
    within,
)

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

CATEGORIES = ("tagged", "untagged", "unreferenced", "uploads")
GC_COLUMNS = ["digest", "size", "kind", "repositories", "reason", "breaks"]


def _require_storage(inv: Inventory, what: str) -> None:
    if not inv.from_storage:
        raise InventoryError(
            f"{what} needs an inventory read from the registry's storage "
            "(reginsight.scan_storage): the API does not list untagged manifests or blobs")


def disk_blobs(inv: Inventory) -> pd.DataFrame:
    """Every blob in the storage with its disk category.

    Columns: digest (string), size (int64, bytes of its data), kind (string:
    manifest/config/layer, NA when nothing references it), category (string:
    ``tagged`` a tag reaches it, through indexes too; ``untagged`` only revisions no
    tag reaches reference it; ``unreferenced`` no revision references it).
    Sorted by digest.
    """
    _require_storage(inv, "disk_blobs")
    graph = Graph.of(inv)
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


def freed_after(inv: Inventory, removed: set[tuple[str, str]], *,
                collector: str | None = None) -> pd.DataFrame:
    """The blobs a plain garbage collection frees once the ``removed`` (repository,
    digest) revisions are deleted that it would not free today (blobs already
    unreferenced are left out: see :func:`disk_usage`). ``collector`` as for
    :func:`gc_preview`: None when both would free the same (CollectorsDiffer if not).
    What the scan could not read is left out (:func:`gc_preview` refuses instead).

    Columns: digest (string), size (int64), kind (string). Sorted by digest.
    """
    _require_storage(inv, "freed_after")
    check_collector(collector)
    graph = Graph.of(inv)
    gone = (_placements(graph.repository, graph.manifest).isin(list(removed)) if removed
            else np.zeros(len(graph.manifest), dtype=bool))

    def freed(name: str) -> pd.DataFrame:
        # the run after the deletions: a revision they remove is never read
        visited = run(inv, collector=name, delete_untagged=False, gone=gone).visited
        lost = graph.marked(visited) & ~graph.marked(visited & ~gone)
        return pd.DataFrame({
            "digest": pd.array(graph.disk[lost], dtype="string"),
            "size": graph.disk_size[lost],
            "kind": pd.array(graph.disk_kind[lost], dtype="string")}
        ).sort_values("digest", ignore_index=True)

    return _one(_each(collector, freed),
                "what a garbage collection frees after these deletions", "collector=")


def _each(collector: str | None, model: Callable[[str], pd.DataFrame]
          ) -> dict[str, pd.DataFrame | CollectorWouldStop]:
    """``model`` of the collector asked, or of each: its frame, or why it stops."""
    outcomes: dict[str, pd.DataFrame | CollectorWouldStop] = {}
    for name in (collector,) if collector else COLLECTORS:
        try:
            outcomes[name] = model(name)
        except CollectorWouldStop as exc:
            outcomes[name] = exc
    return outcomes


def _one(outcomes: dict[str, pd.DataFrame | CollectorWouldStop], what: str, how: str
         ) -> pd.DataFrame:
    """The outcome when every collector asked gives the same frame; the stop when
    only one was asked; CollectorsDiffer naming each outcome otherwise."""
    frames = list(outcomes.values())
    if len(frames) == 1 and isinstance(frames[0], CollectorWouldStop):
        raise frames[0]
    first = frames[0]
    if all(isinstance(f, pd.DataFrame) for f in frames) and all(
            f.equals(first) for f in frames[1:]):
        first.attrs["collector"] = " or ".join(outcomes)
        return first
    said = "; ".join(f"{VERSION[name]}: {_outcome(frame)}" for name, frame in outcomes.items())
    raise CollectorsDiffer(
        f"{what} depends on the registry's version, and the storage does not say which "
        f"writes it: {said}. Say which one runs: {how}\"distribution-2\" (the registry:2 "
        "image, Debian's docker-registry) or \"distribution-3\" (registry:3; "
        "`registry --version` on its host tells)", outcomes=outcomes)


def _outcome(frame: pd.DataFrame | CollectorWouldStop) -> str:
    if isinstance(frame, CollectorWouldStop):
        return f"stops before deleting anything ({frame.reason})"
    blobs = frame[frame["kind"] != "revision"]
    cells = frame.get("breaks", ())  # what a cleanup frees has none
    names = {name for cell in cells if cell for name in cell.split(", ")}
    return (f"deletes {count(len(blobs), 'blob')}, {int(blobs['size'].sum()):,} bytes"
            + (f", and breaks {count(len(names), 'image')} ({', '.join(sorted(names)[:3])}"
               f"{' ...' if len(names) > 3 else ''})" if names else ", breaks nothing"))


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


def gc_preview(inv: Inventory, *, delete_untagged: bool = False,
               collector: str | None = None) -> pd.DataFrame:
    """What the registry's ``garbage-collect`` would delete from the storage this
    inventory was read from, and what that breaks.

    ``collector``: ``"distribution-2"`` (the registry:2 image, Debian's
    ``docker-registry``) or ``"distribution-3"`` (registry:3), whose collectors
    differ; the storage cannot say which one writes it. None: the preview when both
    would do the same, CollectorsDiffer naming what each would do otherwise (its
    ``outcomes`` hold each one's preview, or its CollectorWouldStop).

    One row per blob it deletes, and one per manifest revision that 2.x's
    ``--delete-untagged`` removes while keeping the manifest's blob (the child of a
    tagged index: its layers may all survive through other images, yet the index no
    longer pulls). Columns: digest (string), size (int64: bytes freed; 0 for a
    revision row), kind (string: manifest/config/layer/revision, or unknown for a
    blob nothing references), repositories (string: those referencing or linking it,
    comma-separated), reason (string: ``unreferenced``; ``untagged``; 2.x: ``child of
    a tagged index``, ``repository never visited (no _layers)``; 3.x:
    ``repository without tags (its revisions stay)``, ``child of a tagged index,
    marked first in another repository``), breaks (string: the ``repository:tag``s
    whose pull it breaks, and ``repository@digest`` for a revision 3.x leaves
    pointing at deleted blobs; comma-separated, empty when none). Sorted by reason,
    then digest; ``attrs["collector"]`` names the collector(s) it models. ``size``
    sums to what the real command frees.

    Raises CollectorWouldStop when the collector would stop before deleting
    anything (2.x ``--delete-untagged``: a repository without a tags folder; 3.x: a
    schema1 manifest it must read, a repository without ``_layers``), and
    InventoryError when the scan could not read what the collector reads.
    """
    _require_storage(inv, "gc_preview")
    check_collector(collector)
    _check_readable(inv, delete_untagged=delete_untagged)
    outcomes = _each(collector, lambda name: _preview(
        inv, run(inv, collector=name, delete_untagged=delete_untagged)))
    command = "garbage-collect" + (" --delete-untagged" if delete_untagged else "")
    return _one(outcomes, f"what {command} deletes", "collector=")


def gc_outcomes(inv: Inventory, *, delete_untagged: bool = False,
                collector: str | None = None
                ) -> dict[str | None, pd.DataFrame | CollectorWouldStop]:
    """For presentation: :func:`gc_preview` as what each collector would do, by name
    (a preview, or why it stops); ``{None: preview}`` when no collector was chosen and
    both would do the same. Raises what gc_preview raises otherwise."""
    try:
        return {collector: gc_preview(inv, delete_untagged=delete_untagged,
                                      collector=collector)}
    except CollectorsDiffer as exc:
        return dict(exc.outcomes)
    except CollectorWouldStop as exc:
        return {collector: exc}


_TAGGED_REASON = {"distribution-2": "child of a tagged index",
                  "distribution-3": "child of a tagged index, marked first in another "
                                    "repository"}


def _preview(inv: Inventory, outcome: Run) -> pd.DataFrame:
    graph = Graph.of(inv)
    placed = _placements(graph.repository, graph.manifest)
    doomed = ~outcome.kept
    everything = np.ones(len(placed), dtype=bool)
    skipped = within(graph.repository, outcome.skipped)
    tagged = graph.marked(graph.tagged)
    reason = np.select(
        [~graph.marked(everything), ~graph.marked(outcome.visited), graph.marked(skipped),
         tagged],
        ["unreferenced", "repository never visited (no _layers)",
         "repository without tags (its revisions stay)", _TAGGED_REASON[outcome.collector]],
        "untagged")
    digests = graph.disk[doomed]
    removed = set(outcome.removed)
    # only a blob some tag reaches, a removed revision or a kept one can break a pull
    breaks = (_breaks(inv, set(digests), removed) if removed or (tagged & doomed).any()
              else _Broken({}, {}))
    for digest, revisions in _dangling(graph, skipped, doomed).items():
        named = {*filter(None, breaks.blob.get(digest, "").split(", ")), *revisions}
        breaks.blob[digest] = ", ".join(sorted(named))
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
         _TAGGED_REASON[outcome.collector] if was_tagged else "untagged", broken)
        for (repo, digest), was_tagged in zip(placed, graph.tagged, strict=True)
        if (repo, digest) in removed and digest not in gone
        and (broken := breaks.revision.get((repo, digest)))], columns=GC_COLUMNS)
    frame = pd.concat([blobs, revisions], ignore_index=True) if len(revisions) else blobs
    frame = frame.astype({"digest": "string", "size": "int64", "kind": "string",
                          "repositories": "string", "reason": "string", "breaks": "string"})
    return frame.sort_values(["reason", "digest"], ignore_index=True)


def _dangling(graph: Graph, skipped: np.ndarray, doomed: np.ndarray) -> dict[str, set[str]]:
    """For each deleted blob, the ``repository@digest`` revisions that stay (3.x
    passes a repository without tags by) though they reference it: left pointing at
    nothing."""
    if not skipped.any():
        return {}
    deleted = np.zeros(graph.ids, dtype=bool)
    deleted[graph.disk_id[doomed]] = True
    digest_of = np.empty(graph.ids, dtype=object)
    digest_of[graph.disk_id] = graph.disk
    lost = deleted[graph.marks]
    marks: dict[int, list[int]] = {}
    for source, target in zip(graph.marks_from[lost], graph.marks[lost], strict=True):
        marks.setdefault(int(source), []).append(int(target))
    out: dict[str, set[str]] = {}
    for row in np.flatnonzero(skipped):
        for target in marks.get(int(graph.manifest_id[row]), ()):
            out.setdefault(digest_of[target], set()).add(
                f"{graph.repository[row]}@{graph.manifest[row]}")
    return out


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
    # a config or layer the tag's images use, or a manifest it reaches, deleted
    for found in (reach.tags_reaching_blobs(deleted), reach.tags_reaching_manifests(deleted)):
        for tag, digest in zip(found["tag"], found["digest"], strict=True):
            by_blob.setdefault(digest, set()).add(names[tag])
    # a manifest it reaches whose revision is removed in the tag's repository
    pairs = sorted(removed)
    found = reach.tags_reaching_placements([r for r, _ in pairs], [d for _, d in pairs])
    for tag, repository, digest in zip(found["tag"], found["repository"], found["digest"],
                                       strict=True):
        by_revision.setdefault((repository, digest), set()).add(names[tag])
    return _Broken({k: ", ".join(sorted(v)) for k, v in by_blob.items()},
                   {k: ", ".join(sorted(v)) for k, v in by_revision.items()})


def _users(inv: Inventory, digests: pd.Index) -> dict[str, str]:
    """For these digests, the repositories whose revisions mark them or that link
    them (``_layers``), comma-separated."""
    graph = Graph.of(inv)
    wanted = np.zeros(graph.ids, dtype=bool)
    wanted[graph.disk_id[within(graph.disk, digests)]] = True
    chosen = wanted[graph.marks]
    pairs = pd.DataFrame({"id": graph.manifest_id, "repository": graph.repository}).merge(
        pd.DataFrame({"id": graph.marks_from[chosen], "marked_id": graph.marks[chosen]}),
        on="id")
    digest_of = np.empty(graph.ids, dtype=object)
    digest_of[graph.disk_id] = graph.disk
    pairs["marked"] = digest_of[pairs["marked_id"].to_numpy()]
    links = inv.layer_links[within(inv.layer_links["digest"].to_numpy(dtype=object), digests)]
    found: dict[str, set[str]] = {}
    for digest, repository in zip(
            np.concatenate([pairs["marked"].to_numpy(dtype=object),
                            links["digest"].to_numpy(dtype=object)]),
            np.concatenate([pairs["repository"].to_numpy(dtype=object),
                            links["repository"].astype(object).to_numpy()]), strict=True):
        found.setdefault(digest, set()).add(str(repository))
    return {digest: ", ".join(sorted(names)) for digest, names in found.items()}
