"""The report's "What is used" section, from pull records (:func:`reginsight.read_pulls`):
the images nobody used in the last 30, 90 and 180 days and what deleting them frees,
the most pulled images, and what the records cover. Plain values the template
escapes; the plot of pulls per day is drawn by the report (:func:`plot_pulls`).

A missing record means "not used" only where the records cover the whole window:
where they do not, the window's figures are "unknown" and say what the records lack,
as :func:`reginsight.plan_cleanup` keeps such images.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._errors import CollectorsDiffer
from .._policy import age_limit
from .._units import count, format_bytes
from ..analysis._pulls import image_use, pull_uses, unused_windows
from ..analysis._reclaim import PartialInventoryWarning, reclaimable
from ..analysis._referrers import manifest_roles
from ..inventory._reach import Reach
from ..usage._frame import coverage_gap, covered
from ._sections import column, redacted

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

#: the window the most pulled images are counted over (image_use's pulls_30d)
RECENT_DAYS = 30
#: sources named at most in the records' line; more are counted
MOST_SOURCES = 4
#: tags named at most per image in a table
MOST_TAGS = 5
#: what the commands name pull records by when the report was not told how the user
#: named them (a DataFrame given to the Python API)
PULLS_PLACEHOLDER = "PULLS"


def records_end(pulls: pd.DataFrame) -> pd.Timestamp | None:
    """When the records end: their last covered time (None: no records)."""
    parts = covered(pulls.attrs.get("coverage", []))
    ends = [end for _, end in parts]
    if len(pulls):
        ends.append(pulls["time"].max())
    return max(ends) if ends else None


def _names(tags: list[str]) -> str:
    more = f" and {len(tags) - MOST_TAGS} more" if len(tags) > MOST_TAGS else ""
    return ", ".join(tags[:MOST_TAGS]) + more


def _freed(inv: Inventory, tags: pd.DataFrame, collector: str | None) -> tuple[int, str]:
    """What garbage-collect frees once ``tags`` are deleted, and a note when the two
    collectors differ on this storage and the report was not told which runs (then
    the one that would not stop, as the plan counts it)."""
    from ..analysis._disk import VERSION

    with warnings.catch_warnings():  # the section's note says it
        warnings.simplefilter("ignore", PartialInventoryWarning)
        try:
            return reclaimable(inv, tags, collector=collector), ""
        except CollectorsDiffer as exc:
            runs = [n for n, o in exc.outcomes.items() if isinstance(o, pd.DataFrame)]
            if not runs or collector is not None:
                raise
            return (reclaimable(inv, tags, collector=runs[0]),
                    f"as {VERSION[runs[0]]}'s garbage-collect frees them")


def unused_table(inv: Inventory, shown: Inventory, pulls: pd.DataFrame, *,
                 collector: str | None, now: pd.Timestamp) -> dict[str, Any]:
    """One row per window (30, 90, 180 days, as :func:`unused_windows`): the images
    nobody used in it, their tags, what deleting them frees after garbage collection,
    and the stored bytes they reach; "unknown" and what the records lack where they do
    not cover it."""
    rows, notes = [], set()
    for window in unused_windows(shown, pulls, now=now):
        if window.unknown is not None:
            rows.append((f"{window.days} days", f"unknown: {window.unknown}", "", "", ""))
            continue
        tags = shown.tags.iloc[window.tag_rows][["repository", "tag"]].astype(str)
        freed, note = _freed(inv, tags, collector) if len(tags) else (0, "")
        notes.add(note)
        rows.append((f"{window.days} days", f"{window.images:,}", f"{len(tags):,}",
                     format_bytes(freed), format_bytes(_stored(inv, tags))))
    bound = "" if inv.complete else (" An upper bound: the inventory does not cover the "
                                     "whole registry.")
    told = "; ".join(sorted(n for n in notes if n))
    return {
        "title": "Images nobody used",
        "note": f"As of {now:%Y-%m-%d %H:%M} UTC, when the inventory was read: tagged "
        "images and indexes (a platform image goes with its index, a signature with its "
        "image) with no pull in the window, of them or of a platform image they list, "
        "by tag or digest, GET or HEAD, and not pushed or created in it. Frees: what "
        "deleting them frees after garbage collection" + (f" ({told})" if told else "")
        + "; stored: the config and layer bytes they reach, each blob once. Where the "
        "records do not cover a window, no record is no proof of no use." + bound,
        "columns": [column("not used for"), column("images", num=True),
                    column("tags", num=True), column("frees", num=True),
                    column("stored", num=True)],
        "rows": rows}


def _stored(inv: Inventory, tags: pd.DataFrame) -> int:
    """The distinct config and layer bytes these (repository, tag) pairs reach."""
    index = pd.MultiIndex.from_arrays([inv.tags["repository"].astype(str),
                                       inv.tags["tag"].astype(str)])
    rows = index.get_indexer(pd.MultiIndex.from_frame(tags[["repository", "tag"]]))
    return Reach.of(inv).reached(rows[rows >= 0]).stored_bytes if len(rows) else 0


def most_pulled(inv: Inventory, pulls: pd.DataFrame, *, top: int = 10) -> dict[str, Any]:
    """The ``top`` images (and artifacts) pulled most in the last :data:`RECENT_DAYS`
    days of the records, each with its tags, its last pull and who made it. A
    platform image pulled through its index counts with the index's last pull, its
    own requests in its own row."""
    end = records_end(pulls)
    if end is None:
        return {"title": "Most pulled images", "note": "no pull records", "columns": [],
                "rows": []}
    use = image_use(inv, pulls, now=end)
    roles = manifest_roles(inv).reindex(use.index)
    children = set(zip(inv.children["repository"].astype(str),
                       inv.children["digest"].astype(str), strict=True))
    use = use[roles["subject"].isna().to_numpy()
              & np.array([(str(r), str(d)) not in children for r, d in use.index], dtype=bool)
              & (use["pulls_30d"] > 0).to_numpy()]
    use = use.reset_index().sort_values(["pulls_30d", "repository", "digest"],
                                        ascending=[False, True, True]).head(top)
    tags = inv.tags.astype({"repository": str, "tag": str, "digest": str}).groupby(
        ["repository", "digest"])["tag"].agg(lambda t: _names(sorted(t)))
    since = end - pd.Timedelta(days=RECENT_DAYS)
    return {
        "title": f"Most pulled images (the last {RECENT_DAYS} days of the records)",
        "note": "manifest GETs and HEADs naming the image, by a tag or its digest, from "
        f"{since:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
        + (f"; the {top} most pulled" if len(use) == top else ""),
        "columns": [column("repository"), column("tags"), column("digest", digest=True),
                    column("pulls", num=True), column("last pulled"),
                    column("last client")],
        "rows": [(str(r.repository), tags.get((str(r.repository), str(r.digest)),
                                              "(untagged)"), str(r.digest),
                  f"{r.pulls_30d:,}", when(r.last_pulled),
                  "" if pd.isna(r.last_client) else str(r.last_client))
                 for r in use.itertuples()]}


def when(time: Any) -> str:
    """A time as the report writes it, UTC to the minute; "" when none."""
    return "" if time is None or pd.isna(time) else f"{time:%Y-%m-%d %H:%M}"


def records_line(pulls: pd.DataFrame) -> str:
    """What the records are: how many pulls, from which sources, the time they cover
    (and the gaps in it), the malformed lines skipped."""
    spans = pulls.attrs.get("coverage", [])
    sources = list(dict.fromkeys(str(s.source) for s in spans))
    named = ", ".join(sources[:MOST_SOURCES]) + (
        f" and {len(sources) - MOST_SOURCES} more" if len(sources) > MOST_SOURCES else "")
    parts = covered(spans)
    times = " and ".join(f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
                         for first, last in parts)
    used = pull_uses(pulls)
    skipped = sum(pulls.attrs.get("skipped", {}).values())
    if not sources:
        return ("Pull records: none cover any time, so nothing is known of what is used"
                + (f" ({count(skipped, 'malformed line')} skipped)." if skipped else "."))
    return (f"Pull records: {count(len(used), 'manifest pull')} (GET and HEAD), from "
            f"{count(len(sources), 'source')} ({named}), covering {times} UTC; "
            + (f"{count(skipped, 'malformed line')} skipped." if skipped
               else "no malformed line skipped."))


def usage_data(inv: Inventory, shown: Inventory, pulls: pd.DataFrame, *,
               collector: str | None, top: int = 10) -> dict[str, Any]:
    """The section's values: ``records`` (the records' line), ``unused`` and ``pulled``
    (tables), ``pulls`` (the records of ``shown``'s repositories, for the plot).
    ``inv``: what a deletion frees is counted against; ``shown``: the part reported."""
    names = set(shown.tags["repository"].astype(str)) | set(
        shown.manifests["repository"].astype(str))
    mine = pulls[pulls["repository"].astype(str).isin(names)]
    return {"records": records_line(mine),
            "unused": unused_table(inv, shown, pulls, collector=collector,
                                   now=inv.taken_at),
            "pulled": most_pulled(shown, pulls, top=top), "pulls": mine}


def unknown_use(pulls: pd.DataFrame, unpulled_for: str, now: pd.Timestamp) -> str:
    """What the plan's pull rule cannot know, in words ("" when the records cover its
    window): then every image without a pull in it is kept."""
    gap = coverage_gap(pulls, now - pd.Timedelta(age_limit(unpulled_for)), now)
    return "" if gap is None else (
        f"The pull records do not cover the last {unpulled_for} ({gap}): the plan keeps "
        "every image without a pull in them, its use unknown, not unused.")


def last_pull_words(last: Any, created: Any, since: pd.Timestamp | None) -> str:
    """An image's last pull as a table shows it: its time; "never" when the records
    cover everything since it was created; "not since <day>" when they cover only
    since that day; "unknown" when they do not reach ``now``."""
    if not pd.isna(last):
        return when(last)
    if since is None:
        return "unknown"
    if not pd.isna(created) and created >= since:
        return "never"
    return f"not since {since:%Y-%m-%d}"


def pulls_flags(unpulled_for: str, source: str | None) -> list[str]:
    """``--unpulled-for WINDOW --pulls SOURCE``: the cleanup command's pull rule.
    ``source``: the pull records as the user named them on the command line (a log
    file or folder, the listener's folder), never credentials; None: PULLS."""
    return ["--unpulled-for", unpulled_for, "--pulls",
            PULLS_PLACEHOLDER if source is None else redacted(source)]
