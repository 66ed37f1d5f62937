"""When each image was last used: pull records joined to an inventory. Pure: no I/O.

A pull record names a manifest by tag or by digest. One by digest names that
manifest; one by tag without a digest (a log line: the registry logs the tag, not
what it resolved to) is credited to the digest the tag names in the inventory.
An index counts as used when it, or any manifest it reaches, is pulled: a client
pulls the index by tag, then one child by digest, and a node with the image cached
sends only a HEAD, which counts as use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..usage._frame import PULL_METHODS, as_pulls, utc_now

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: the window ``pulls_30d`` counts over
RECENT = pd.Timedelta(days=30)
#: reginsight's own User-Agent: its crawls read every manifest, which is no use
OWN_AGENT = "reginsight/"
LAST_PULLED_COLUMNS = ["repository", "tag", "digest", "last_pulled", "pulls_30d", "last_client",
                       "tag_last_pulled", "last_pushed"]


def _times(values: object) -> pd.Series | pd.DatetimeIndex:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def _own(pulls: pd.DataFrame) -> pd.Series:
    """The reads reginsight made itself (a crawl GETs every manifest)."""
    return (pulls["method"].isin(PULL_METHODS)
            & pulls["user_agent"].astype("string").str.startswith(OWN_AGENT).fillna(False))


def _served_manifests(pulls: pd.DataFrame) -> pd.DataFrame:
    """The manifest requests of ``pulls`` not refused (a status under 400, or none: a
    notification is sent only for a request served), reginsight's own reads left out."""
    ok = ~(pulls["status"] >= 400).fillna(False)
    return pulls[(pulls["kind"] == "manifest") & ok & ~_own(pulls)]


def pull_uses(pulls: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``pulls`` that are uses of an image: manifest GETs and HEADs not
    refused, reginsight's own reads left out."""
    served = _served_manifests(pulls)
    return served[served["method"].isin(PULL_METHODS)]


def manifest_requests(inv: Inventory, pulls: pd.DataFrame) -> pd.DataFrame:
    """The manifest requests of ``pulls`` that succeeded (reginsight's own reads left
    out), each with the digest it named: its own, else the digest its tag names in
    ``inv`` (dropped when the tag is not there). Columns: time, repository, reference,
    digest (object), method, client."""
    rows = _served_manifests(pulls)
    frame = pd.DataFrame({
        "time": rows["time"].to_numpy(),
        "repository": rows["repository"].astype(object).to_numpy(),
        "reference": rows["reference"].astype(object).to_numpy(),
        "digest": rows["digest"].astype(object).to_numpy(),
        "method": rows["method"].astype(object).to_numpy(),
        "client": rows["client"].astype(object).to_numpy(),
    })
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    by_tag = pd.Series(inv.tags["digest"].astype(object).to_numpy(),
                       index=pd.MultiIndex.from_arrays([inv.tags["repository"].astype(object),
                                                        inv.tags["tag"].astype(object)]))
    by_digest = frame["digest"].isna() & frame["reference"].astype(str).str.contains(":")
    frame.loc[by_digest, "digest"] = frame.loc[by_digest, "reference"]  # a digest has a ":"
    missing = frame["digest"].isna().to_numpy()
    if missing.any():
        keys = pd.MultiIndex.from_arrays([frame["repository"][missing],
                                          frame["reference"][missing]])
        frame.loc[missing, "digest"] = by_tag.reindex(keys).to_numpy()
    return frame[frame["digest"].notna()].reset_index(drop=True)


def manifest_members(inv: Inventory) -> pd.DataFrame:
    """(repository, root, member): every manifest each ``manifests`` row reaches through
    indexes, at any depth, itself included (the closure the inventory's reachability
    takes, :func:`~reginsight.inventory._reach.manifest_closure`)."""
    from ..inventory._reach import manifest_closure

    manifests, children = inv.manifests, inv.children
    digests = pd.Index(pd.unique(np.concatenate([
        manifests["digest"].astype(object).to_numpy(),
        children["parent"].astype(object).to_numpy(),
        children["digest"].astype(object).to_numpy()])))
    roots, members = manifest_closure(digests.get_indexer(children["parent"].astype(object)),
                                      digests.get_indexer(children["digest"].astype(object)),
                                      len(digests))
    closure = pd.DataFrame({"root": digests.to_numpy()[roots],
                            "member": digests.to_numpy()[members]})
    return pd.DataFrame({"repository": manifests["repository"].astype(object).to_numpy(),
                         "root": manifests["digest"].astype(object).to_numpy()}
                        ).merge(closure, on="root")


def image_use(inv: Inventory, pulls: pd.DataFrame, *, now: object = None) -> pd.DataFrame:
    """Per (repository, digest) of ``inv.manifests``: last_pulled (the newest GET or
    HEAD of it or of anything it reaches), pulls_30d (GETs and HEADs naming it, by a
    tag or its digest, in the 30 days before ``now``), last_client (who made the newest
    of those requests) and last_pushed (its newest manifest PUT). Indexed by
    (repository, digest)."""
    when = utc_now(now)
    requests = manifest_requests(inv, pulls)
    used = requests[requests["method"].isin(PULL_METHODS)]
    pushed = requests[requests["method"] == "PUT"]
    members = manifest_members(inv)
    reached = members.merge(used.rename(columns={"digest": "member"}),
                            on=["repository", "member"])
    newest = reached.sort_values("time", kind="stable").drop_duplicates(
        ["repository", "root"], keep="last").set_index(["repository", "root"])
    recent = used[used["time"] > when - RECENT].groupby(["repository", "digest"]).size()
    last_push = pushed.groupby(["repository", "digest"])["time"].max()
    keys = pd.MultiIndex.from_arrays([inv.manifests["repository"].astype(object),
                                      inv.manifests["digest"].astype(object)],
                                     names=["repository", "digest"])
    return pd.DataFrame({
        "last_pulled": _times(newest["time"].reindex(keys).to_numpy()),
        "pulls_30d": recent.reindex(keys).fillna(0).to_numpy(dtype=np.int64),
        "last_client": pd.array(newest["client"].reindex(keys).to_numpy(), dtype="string"),
        "last_pushed": _times(last_push.reindex(keys).to_numpy()),
    }, index=keys)


def last_pulled(inv: Inventory, pulls: pd.DataFrame, *, now: object = None) -> pd.DataFrame:
    """When each image was last used, from pull records (:func:`reginsight.read_pulls`).

    One row per tag, and per manifest no tag reaches that is not an index's child
    (tag NA; a storage scan's untagged revisions, a crawl's referrers). An image's
    use is the newest successful GET or HEAD naming it, by any tag or its digest, or
    naming anything it reaches (an index is used when a child is pulled). A request
    by tag whose digest the records do not give (a log line) is credited to the
    digest the tag names in ``inv``: a pull made before the tag moved counts for the
    image it names now.

    Columns: repository (string), tag (string; NA: no tag), digest (string),
    last_pulled (datetime64[ns, UTC]; NaT: no record), pulls_30d (int64: GETs and
    HEADs naming this manifest in the 30 days before ``now``, default the current
    time; its children's own requests are not counted), last_client (string: who
    made the newest request), tag_last_pulled (datetime64[ns, UTC]: the newest
    request naming this tag, whatever digest it had then), last_pushed
    (datetime64[ns, UTC]: the newest manifest PUT the records hold for it).
    ``.attrs["coverage"]``: the time spans the records cover, as in ``pulls``.
    """
    pulls = as_pulls(pulls)
    use = image_use(inv, pulls, now=now)
    tags = inv.tags
    tag_rows = pd.DataFrame({
        "repository": pd.array(tags["repository"].astype(str), dtype="string"),
        "tag": pd.array(tags["tag"].astype(str), dtype="string"),
        "digest": pd.array(tags["digest"].astype(str), dtype="string"),
    })
    children = set(zip(inv.children["repository"].astype(str),
                       inv.children["digest"].astype(str), strict=True))
    tagged = set(zip(tag_rows["repository"], tag_rows["digest"], strict=True))
    alone = [(r, d) for r, d in zip(inv.manifests["repository"].astype(str),
                                    inv.manifests["digest"].astype(str), strict=True)
             if (r, d) not in tagged and (r, d) not in children]
    untagged_rows = pd.DataFrame({
        "repository": pd.array([r for r, _ in alone], dtype="string"),
        "tag": pd.array([pd.NA] * len(alone), dtype="string"),
        "digest": pd.array([d for _, d in alone], dtype="string"),
    })
    frame = pd.concat([tag_rows, untagged_rows], ignore_index=True) if len(alone) else tag_rows
    keys = pd.MultiIndex.from_arrays([frame["repository"].astype(object),
                                      frame["digest"].astype(object)])
    found = use.reindex(keys)
    frame["last_pulled"] = _times(found["last_pulled"].to_numpy())
    frame["pulls_30d"] = found["pulls_30d"].fillna(0).to_numpy(dtype=np.int64)
    frame["last_client"] = pd.array(found["last_client"].to_numpy(), dtype="string")
    by_tag = _tag_last(pulls)
    frame["tag_last_pulled"] = _times(by_tag.reindex(pd.MultiIndex.from_arrays(
        [frame["repository"].astype(object), frame["tag"].astype(object)])).to_numpy())
    frame["last_pushed"] = _times(found["last_pushed"].to_numpy())
    frame = frame.sort_values(["repository", "tag", "digest"], ignore_index=True)
    frame.attrs["coverage"] = list(pulls.attrs.get("coverage", []))
    return frame[LAST_PULLED_COLUMNS]


def _tag_last(pulls: pd.DataFrame) -> pd.Series:
    """The newest use per (repository, reference)."""
    rows = pull_uses(pulls)
    return rows.groupby([rows["repository"].astype(object), rows["reference"].astype(object)]
                        )["time"].max()


#: the windows the report and :func:`unpulled_bytes` look back over
COLD_WINDOWS = (30, 90, 180)


def top_level_images(inv: Inventory) -> pd.DataFrame:
    """The tagged images and indexes a cleanup decides on: not a referrer (a subject:
    it goes with its image), not an index's platform image (it goes with its index).
    One row per (repository, digest): repository, digest (object), tags (list of
    str, sorted), rows (list of their ``inv.tags`` row numbers)."""
    from .._artifacts import IMAGE_ROLES
    from ._referrers import manifest_roles

    tags = inv.tags
    keys = pd.MultiIndex.from_arrays([tags["repository"].astype(object),
                                      tags["digest"].astype(object)])
    about = manifest_roles(inv).reindex(keys)
    children = set(zip(inv.children["repository"].astype(str),
                       inv.children["digest"].astype(str), strict=True))
    image = (about["role"].isin(IMAGE_ROLES) & about["subject"].isna()).to_numpy() & np.array(
        [(str(r), str(d)) not in children for r, d in keys], dtype=bool)
    frame = pd.DataFrame({"repository": keys.get_level_values(0)[image],
                          "digest": keys.get_level_values(1)[image],
                          "tag": tags["tag"].astype(str).to_numpy()[image],
                          "row": pd.RangeIndex(len(tags))[image]})
    return frame.groupby(["repository", "digest"], sort=True).agg(
        tags=("tag", sorted), rows=("row", list)).reset_index()


def unused_images(inv: Inventory, pulls: pd.DataFrame, *, days: int, now: pd.Timestamp,
                  use: pd.DataFrame | None = None) -> pd.DataFrame:
    """The :func:`top_level_images` nothing shows in use within ``days`` before ``now``:
    no pull of it or of anything it reaches, and not pushed or created then (a new
    image has had no time to be pulled), as ``plan_cleanup(unpulled_for=)`` decides.
    Only meaningful where the records cover the window (``coverage_gap``).
    ``use``: :func:`image_use` of ``inv`` and ``pulls``, when already worked out."""
    from ._history import image_created

    images = top_level_images(inv)
    keys = pd.MultiIndex.from_frame(images[["repository", "digest"]])
    found = (image_use(inv, pulls, now=now) if use is None else use).reindex(keys)
    start = now - pd.Timedelta(days=days)
    created = pd.Series(image_created(inv).reindex(keys).to_numpy(), dtype="datetime64[ns, UTC]")
    used = ((found["last_pulled"] >= start).fillna(False).to_numpy()
            | (found["last_pushed"] >= start).fillna(False).to_numpy()
            | (created >= start).fillna(False).to_numpy())
    return images[~used].reset_index(drop=True)


@dataclass(frozen=True)
class UnusedWindow:
    """One window of :func:`unused_windows`: its length in ``days``, its start
    (``since``), why the records do not cover it (``unknown``; None: they do), and then
    the unused ``images`` (distinct digests) and their tags (``tag_rows``: row numbers
    of ``inv.tags``)."""

    days: int
    since: pd.Timestamp
    unknown: str | None
    images: int
    tag_rows: np.ndarray


def unused_windows(inv: Inventory, pulls: pd.DataFrame, *,
                   days: tuple[int, ...] = COLD_WINDOWS, now: object = None
                   ) -> list[UnusedWindow]:
    """Per window of ``days`` before ``now`` (default the current time): the
    :func:`unused_images` in it, or why the records cannot tell (no images then)."""
    from ..usage._frame import coverage_gap

    when = utc_now(now)
    pulls = as_pulls(pulls)
    use = image_use(inv, pulls, now=when)  # once: the windows differ only in their start
    windows = []
    for window in days:
        start = when - pd.Timedelta(days=window)
        gap = coverage_gap(pulls, start, when)
        cold = (unused_images(inv, pulls, days=window, now=when, use=use) if gap is None
                else top_level_images(inv)[:0])
        windows.append(UnusedWindow(window, start, gap, len(cold), np.array(
            [row for rows_of in cold["rows"] for row in rows_of], dtype=np.int64)))
    return windows


def unpulled_bytes(inv: Inventory, pulls: pd.DataFrame, *,
                   days: tuple[int, ...] = COLD_WINDOWS, collector: str | None = None,
                   now: object = None) -> pd.DataFrame:
    """Cold storage: per window, the images nobody used within it and their bytes.

    Images are the tagged images and indexes that are about no other manifest and
    are no index's platform image (a signature goes with its image, a platform image
    with its index). One is unused in a window when no GET or HEAD of it, or of
    anything it reaches, falls in it (see :func:`last_pulled`) and it was neither
    pushed nor created in it, as ``plan_cleanup(unpulled_for=)`` decides. A window
    the records do not cover gets no figures: a missing record there means unknown,
    not unused.

    Columns: days (int64), since (datetime64[ns, UTC]: the window's start before
    ``now``, default the current time), images (Int64: unused images, distinct
    digests), tags (Int64: their tags), stored_bytes (Int64: the distinct layer and
    config blobs they reach, shared ones included), reclaimable_bytes (Int64: what
    garbage collection frees once they are deleted, :func:`reginsight.reclaimable`,
    with ``collector`` for a storage scan), unknown (string: why the records do not
    cover the window; NA when they do).
    """
    from ..inventory._reach import Reach
    from ._reclaim import reclaimable

    rows = []
    for window in unused_windows(inv, pulls, days=days, now=now):
        row: dict[str, object] = {"days": window.days, "since": window.since,
                                  "unknown": window.unknown}
        if window.unknown is None:
            tags = inv.tags.iloc[window.tag_rows][["repository", "tag"]].astype(str)
            row.update(images=window.images, tags=len(tags),
                       stored_bytes=Reach.of(inv).reached(window.tag_rows).stored_bytes
                       if len(tags) else 0,
                       reclaimable_bytes=reclaimable(inv, tags, collector=collector)
                       if len(tags) else 0)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["days", "since", "images", "tags", "stored_bytes",
                                        "reclaimable_bytes", "unknown"])
    return frame.astype({"days": "int64", "since": "datetime64[ns, UTC]", "images": "Int64",
                         "tags": "Int64", "stored_bytes": "Int64", "reclaimable_bytes": "Int64",
                         "unknown": "string"})
