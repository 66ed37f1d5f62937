"""When each image was last used: pull records joined to an inventory. Pure: no I/O.

A pull record names a manifest by tag or by digest. One by digest names that
manifest; one by tag without a digest (a log line: the registry logs the tag, not
what it resolved to) is credited to the digest the tag names in the inventory.
An index counts as used when it, or any manifest it reaches, is pulled: a client
pulls the index by tag, then one child by digest, and a node with the image cached
sends only a HEAD, which counts as use too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..usage._frame import PULL_METHODS

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: the window ``pulls_30d`` counts over
RECENT = pd.Timedelta(days=30)
LAST_PULLED_COLUMNS = ["repository", "tag", "digest", "last_pulled", "pulls_30d", "last_client",
                       "tag_last_pulled", "last_pushed"]


def _times(values: object) -> pd.Series | pd.DatetimeIndex:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def utc_now(now: object = None) -> pd.Timestamp:
    """``now`` as a UTC timestamp (naive: taken as UTC); None: the current time."""
    when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")


def manifest_requests(inv: Inventory, pulls: pd.DataFrame) -> pd.DataFrame:
    """The manifest requests of ``pulls`` that succeeded, each with the digest it
    named: its own, else the digest its tag names in ``inv`` (dropped when the tag
    is not there). Columns: time, repository, reference, digest (object), method,
    client."""
    rows = pulls[(pulls["kind"] == "manifest") & ~(pulls["status"] >= 400).fillna(False)]
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


def _members(inv: Inventory) -> pd.DataFrame:
    """(repository, root, member): every manifest each manifest reaches through
    indexes, at any depth, itself included."""
    roots = pd.DataFrame({"repository": inv.manifests["repository"].astype(object),
                          "root": inv.manifests["digest"].astype(object)})
    roots["member"] = roots["root"]
    edges = inv.children[["repository", "parent", "digest"]].astype(object).rename(
        columns={"parent": "member", "digest": "child"}).drop_duplicates()
    pairs, frontier = roots, roots
    while len(frontier):
        step = frontier.merge(edges, on=["repository", "member"])[["repository", "root", "child"]]
        step = step.rename(columns={"child": "member"})
        fresh = step.merge(pairs, how="left", indicator=True)
        frontier = fresh.loc[fresh["_merge"] == "left_only", ["repository", "root", "member"]
                             ].drop_duplicates()
        pairs = pd.concat([pairs, frontier], ignore_index=True)  # a loop of indexes ends
    return pairs


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
    members = _members(inv)
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
    """The newest successful GET or HEAD per (repository, reference)."""
    rows = pulls[(pulls["kind"] == "manifest") & pulls["method"].isin(PULL_METHODS)
                 & ~(pulls["status"] >= 400).fillna(False)]
    return rows.groupby([rows["repository"].astype(object), rows["reference"].astype(object)]
                        )["time"].max()


#: the windows the report and :func:`unpulled_bytes` look back over
COLD_WINDOWS = (30, 90, 180)


def unpulled_bytes(inv: Inventory, pulls: pd.DataFrame, *,
                   days: tuple[int, ...] = COLD_WINDOWS, collector: str | None = None,
                   now: object = None) -> pd.DataFrame:
    """Cold storage: per window, the images nobody pulled within it and their bytes.

    Images are the tagged images and indexes that are about no other manifest (a
    signature or SBOM goes with its image); an image is cold when no GET or HEAD of
    it, or of anything it reaches, falls in the window (see :func:`last_pulled`). A
    window the records do not cover gets no figures: a missing record there means
    unknown, not unused.

    Columns: days (int64), since (datetime64[ns, UTC]: the window's start before
    ``now``), images (Int64: cold images, distinct digests), tags (Int64: their tags),
    stored_bytes (Int64: the distinct layer and config blobs they reach, shared ones
    included), reclaimable_bytes (Int64: what garbage collection frees once they are
    deleted, :func:`reginsight.reclaimable`, with ``collector`` for a storage scan),
    unknown (string: why the records do not cover the window; NA when they do).
    """
    from .._artifacts import IMAGE_ROLES
    from ..usage._frame import coverage_gap
    from ._reclaim import reclaimable
    from ._referrers import manifest_roles
    from ._storage import tag_blobs

    when = utc_now(now)
    used = last_pulled(inv, pulls, now=when)
    tagged = used[used["tag"].notna()]
    roles = manifest_roles(inv).reindex(pd.MultiIndex.from_arrays(
        [tagged["repository"].astype(object), tagged["digest"].astype(object)]))
    images = tagged[(roles["role"].isin(IMAGE_ROLES) & roles["subject"].isna()).to_numpy()]
    blobs = tag_blobs(inv)
    rows = []
    for window in days:
        start = when - pd.Timedelta(days=window)
        gap = coverage_gap(pulls, start, when)
        row: dict[str, object] = {"days": window, "since": start, "unknown": gap}
        if gap is None:
            cold = images[~(images["last_pulled"] >= start).to_numpy()]
            reached = blobs.merge(cold[["repository", "tag"]], on=["repository", "tag"])
            row.update(images=cold[["repository", "digest"]].drop_duplicates().shape[0],
                       tags=len(cold),
                       stored_bytes=int(reached.drop_duplicates("digest")["size"].sum()),
                       reclaimable_bytes=reclaimable(inv, cold, collector=collector)
                       if len(cold) else 0)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["days", "since", "images", "tags", "stored_bytes",
                                        "reclaimable_bytes", "unknown"])
    return frame.astype({"days": "int64", "since": "datetime64[ns, UTC]", "images": "Int64",
                         "tags": "Int64", "stored_bytes": "Int64", "reclaimable_bytes": "Int64",
                         "unknown": "string"})
