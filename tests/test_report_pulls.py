"""The report with pull records: the images nobody used in 30, 90 and 180 days and
what deleting them frees (the garbage collector's figure, worked out here from the
records by hand), "unknown" wherever the records fall short of a window, the most
pulled images, what the records cover, the pulls per day, and a plan (and its
command) that never deletes what was used. Without records the report is as before."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import reginsight as ri
from reginsight.analysis._pulls import unused_images
from reginsight.present import _report
from reginsight.present._plots import plot_pulls
from reginsight.present._report import render_report, report_data
from reginsight.usage._frame import Span, from_frame
from tests.test_report import _commands, _download, _words

SAMPLE = ri.sample()
NOW = SAMPLE.taken_at
DAY = pd.Timedelta(days=1)


def records(rows: list[dict], *, covers: tuple[float, float] = (200, 0),
            skipped: dict[str, int] | None = None) -> pd.DataFrame:
    """A pull frame of ``rows`` (time given as days before the sample was read), its
    records covering ``covers`` = (days before, days before) the sample was read."""
    frame = pd.DataFrame([{"status": 200, "client": "10.0.0.1", "digest": None,
                           "method": "GET", "kind": "manifest", **row,
                           "time": NOW - row["days"] * DAY} for row in rows]
                         ).drop(columns="days")
    frame.attrs["coverage"] = [Span("registry.log", NOW - covers[0] * DAY,
                                    NOW - covers[1] * DAY)]
    frame.attrs["skipped"] = skipped or {}
    return from_frame(frame)


def tag_digest(repository: str, tag: str) -> str:
    tags = SAMPLE.tags
    return str(tags[(tags["repository"] == repository) & (tags["tag"] == tag)]["digest"].iloc[0])


def child_of(repository: str, tag: str, architecture: str) -> str:
    children = SAMPLE.children
    row = children[(children["repository"] == repository)
                   & (children["parent"] == tag_digest(repository, tag))
                   & (children["architecture"] == architecture)]
    return str(row["digest"].iloc[0])


#: what the registry's log says happened: by tag, by digest, a platform image of an
#: index, a HEAD, a refused request, a push, all at known days before the sample
EVENTS = [
    {"repository": "web/frontend", "reference": "1.3.0", "days": 5},
    {"repository": "web/frontend", "reference": "1.3.0", "days": 6, "method": "HEAD",
     "client": "10.0.0.2"},
    {"repository": "web/api", "reference": "v2", "days": 2, "method": "HEAD", "client": "10.0.0.9"},
    # the index platform/base:2026.10 used through its arm64 image, by digest
    {"repository": "platform/base", "reference": child_of("platform/base", "2026.10", "arm64"),
     "days": 50},
    {"repository": "data/etl", "reference": "nightly-20250101", "days": 120},
    {"repository": "data/etl", "reference": "nightly-20250301", "days": 80, "method": "HEAD"},
    {"repository": "ml/train", "reference": tag_digest("ml/train", "exp-2025"), "days": 20},
    # refused: no use
    {"repository": "data/jobs", "reference": "1.0", "days": 1, "status": 404},
    # a push of an old image's digest again: in use
    {"repository": "web/api", "reference": "v1", "days": 10, "method": "PUT"},
    # a blob read is no manifest pull
    {"repository": "data/etl", "reference": "nightly-20250201", "days": 3, "kind": "blob"},
]


def _rows(table: dict) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in table["rows"]}


# ------------------------------------------------------------- worked out by hand

def _reaches(repository: str, digest: str) -> set[str]:
    """The manifest and what it lists, at any depth."""
    children = SAMPLE.children[SAMPLE.children["repository"] == repository]
    found, frontier = {digest}, {digest}
    while frontier:
        frontier = set(children[children["parent"].isin(frontier)]["digest"].astype(str)) - found
        found |= frontier
    return found


def expected_unused(pulls: pd.DataFrame, days: int) -> pd.DataFrame:
    """The tags of the images nobody used within ``days``, from the records and the
    inventory's own columns: a tagged image or index, no referrer, no platform image
    of an index; none of what it reaches pulled (GET/HEAD, status < 400, manifest) by
    tag or digest in the window, not pushed then, not created then."""
    start = NOW - days * DAY
    tags = SAMPLE.tags.astype({"repository": str, "tag": str, "digest": str})
    manifests = SAMPLE.manifests.astype({"repository": str, "digest": str}).set_index(
        ["repository", "digest"])
    children = set(zip(SAMPLE.children["repository"].astype(str),
                       SAMPLE.children["digest"].astype(str), strict=True))
    rows = pulls[(pulls["kind"] == "manifest") & (pulls["status"].fillna(200) < 400)
                 & (pulls["time"] >= start)]
    named = {}  # (repository, digest) -> methods naming it in the window
    for row in rows.itertuples():
        reference = str(row.reference)
        digest = reference if reference.startswith("sha256:") else tag_digest(
            str(row.repository), reference)
        named.setdefault((str(row.repository), digest), set()).add(str(row.method))
    keep = []
    for tag in tags.itertuples():
        facts = manifests.loc[(tag.repository, tag.digest)]
        if facts["role"] not in ("image", "index") or not pd.isna(facts["subject"]):
            continue
        if (tag.repository, tag.digest) in children:
            continue
        reached = _reaches(tag.repository, tag.digest)
        pulled = any({"GET", "HEAD"} & named.get((tag.repository, d), set()) for d in reached)
        pushed = "PUT" in named.get((tag.repository, tag.digest), set())
        created = not pd.isna(tag.created) and tag.created >= start
        if not (pulled or pushed or created):
            keep.append((tag.repository, tag.tag, tag.digest))
    return pd.DataFrame(keep, columns=["repository", "tag", "digest"])


def stored_bytes(unused: pd.DataFrame) -> int:
    """The config and layer bytes these images reach, each blob once, from the
    inventory's layers and configs."""
    blobs = set()
    for repository, digest in unused[["repository", "digest"]].drop_duplicates().itertuples(
            index=False):
        for manifest in _reaches(repository, digest):
            layers = SAMPLE.layers[(SAMPLE.layers["repository"] == repository)
                                   & (SAMPLE.layers["manifest"] == manifest)]
            blobs |= set(layers["digest"].astype(str))
            config = SAMPLE.manifests[(SAMPLE.manifests["repository"] == repository)
                                      & (SAMPLE.manifests["digest"] == manifest)]["config_digest"]
            blobs |= {str(c) for c in config if not pd.isna(c)}
    sizes = SAMPLE.blobs.astype({"digest": str}).set_index("digest")["size"]
    return int(sizes.reindex(sorted(blobs)).sum())


# ------------------------------------------------------------- the figures

def test_the_images_nobody_used_and_what_deleting_them_frees():
    pulls = records(EVENTS)
    data = report_data(SAMPLE, plots=False, pulls=pulls)
    rows = _rows(data["usage"]["unused"])
    assert list(rows) == ["30 days", "90 days", "180 days"]
    figures = []
    for days in (30, 90, 180):
        unused = expected_unused(pulls, days)
        freed = ri.reclaimable(SAMPLE, unused[["repository", "tag"]])
        images = unused[["repository", "digest"]].drop_duplicates()
        assert rows[f"{days} days"] == (f"{len(images):,}", f"{len(unused):,}",
                                        ri.format_bytes(freed),
                                        ri.format_bytes(stored_bytes(unused))), days
        figures.append((len(images), freed))
    # the records make a difference in each window: a longer one finds more in use
    assert figures[0][0] > figures[1][0] > figures[2][0] > 0
    assert figures[0][1] > figures[1][1] > figures[2][1] > 0
    # by name: used in each window as the records say
    ninety = expected_unused(pulls, 90)
    names = set(zip(ninety["repository"], ninety["tag"], strict=True))
    assert ("platform/base", "2026.10") not in names  # its arm64 image was pulled
    assert ("web/api", "v1") not in names  # pushed again
    assert ("data/jobs", "1.0") in names  # refused: no use
    assert ("data/etl", "nightly-20250201") in names  # a blob read: no pull
    assert ("ml/train", "exp-2025") not in names  # by digest


def test_a_window_the_records_do_not_cover_is_unknown_not_unused():
    short = records(EVENTS[:3], covers=(60, 0))
    rows = _rows(report_data(SAMPLE, plots=False, pulls=short)["usage"]["unused"])
    unused = expected_unused(short, 30)
    assert rows["30 days"][2] == ri.format_bytes(ri.reclaimable(SAMPLE, unused))
    for days in ("90 days", "180 days"):
        assert rows[days][0] == (f"unknown: the records cover only since "
                                 f"{NOW - 60 * DAY:%Y-%m-%d %H:%M} UTC")
        assert set(rows[days][1:]) == {""}  # no figure at all
    ended = records(EVENTS[:3], covers=(200, 3))
    for cells in _rows(report_data(SAMPLE, plots=False, pulls=ended)["usage"]["unused"]
                       ).values():
        assert cells[0] == "unknown: the records end 3 days before now"
    html = render_report(SAMPLE, plots=False, pulls=short)
    assert "unknown: the records cover only since" in _words(html)


def test_the_plan_never_deletes_what_was_used_and_its_command_says_how():
    pulls = records(EVENTS)
    html = render_report(SAMPLE, plots=False, pulls=pulls, pulls_source="/var/log/registry")
    plan = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                           protect=r"^(latest|stable)$", pulls=pulls, unpulled_for="90d",
                           now=NOW)
    saved = _download(html)
    assert list(saved["digest"]) == list(plan["digest"])
    assert list(saved["action"]) == list(plan["action"])
    assert list(saved["reason"]) == list(plan["reason"].astype(str))
    without = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                              protect=r"^(latest|stable)$", now=NOW)
    spared = set(without[without["action"] == "delete"]["tag"].dropna()) - set(
        plan[plan["action"] == "delete"]["tag"].dropna())
    assert spared == {"v1", "nightly-20250301"}  # pushed 10, pulled 80 days before
    words = _words(html)
    assert "never an image pulled, pushed or created in the last 90d" in words
    assert ri.format_bytes(plan.attrs["reclaimable_bytes"]) in words
    assert ("reginsight cleanup URL --keep-last 3 --older-than 180d --protect "
            "'^(latest|stable)$' --unpulled-for 90d --pulls /var/log/registry"
            ) in _commands(html)
    # told the records, not how the user named them: a placeholder, explained
    html = render_report(SAMPLE, plots=False, pulls=pulls)
    assert any(c.endswith("--unpulled-for 90d --pulls PULLS") for c in _commands(html))
    assert "PULLS stands for the pull records this report read" in _words(html)
    # a source given with credentials in it never shows them
    html = render_report(SAMPLE, plots=False, pulls=pulls,
                         pulls_source="s3://key:secret@bucket/logs")
    assert "secret" not in html


def test_short_records_keep_every_image_and_the_plan_says_why():
    short = records(EVENTS, covers=(60, 0))
    data = report_data(SAMPLE, plots=False, pulls=short)
    assert data["cleanup"]["deletes"] == 0
    assert "do not cover the last 90d" in data["cleanup"]["pulls_note"]
    assert "unknown, not unused" in _words(render_report(SAMPLE, plots=False, pulls=short))
    # no rule from the records: the plan is the one without them
    plain = report_data(SAMPLE, plots=False, pulls=short, unpulled_for=None)
    assert plain["cleanup"] == report_data(SAMPLE, plots=False)["cleanup"]
    assert plain["usage"] is not None


def test_the_most_pulled_images_count_the_records_last_30_days():
    rows = [{"repository": "web/frontend", "reference": "1.3.0", "days": d % 40,
             "client": f"10.0.1.{d}"} for d in range(12)]
    rows += [{"repository": "web/api", "reference": "v2", "days": 1 + d, "method": "HEAD"}
             for d in range(5)]
    rows += [{"repository": "web/api", "reference": tag_digest("web/api", "v2"), "days": 45}]
    rows += [{"repository": "data/jobs", "reference": "latest", "days": 0.5, "status": 500}]
    # the index's own requests and its platform image's (by digest): rows of their own
    rows += [{"repository": "platform/base", "reference": "latest", "days": 3}]
    rows += [{"repository": "platform/base",
              "reference": child_of("platform/base", "2026.10", "amd64"), "days": 2.9}]
    pulled = report_data(SAMPLE, plots=False, pulls=records(rows))["usage"]["pulled"]
    assert pulled["title"] == "Most pulled images (the last 30 days of the records)"
    assert [(r[0], r[1], r[3]) for r in pulled["rows"]] == [
        ("web/frontend", "1.3.0", "12"),
        ("web/api", "v2", "5"),
        ("platform/base", "2026.10, latest", "1")]  # its amd64 image: not a row
    first = pulled["rows"][0]
    assert first[2] == tag_digest("web/frontend", "1.3.0")  # whole, shown short
    assert first[4] == f"{NOW:%Y-%m-%d %H:%M}" and first[5] == "10.0.1.0"
    # the index's last pull is its platform image's, the newer of the two
    assert pulled["rows"][2][4] == f"{NOW - 2.9 * DAY:%Y-%m-%d %H:%M}"
    html = render_report(SAMPLE, plots=False, pulls=records(rows))
    assert f'title="{first[2]}"' in html  # a digest cell, whole on hover


def test_the_records_line_says_span_sources_and_skipped_lines():
    pulls = records(EVENTS, skipped={"registry.log": 4})
    pulls.attrs["coverage"] = [Span("registry.log.1.gz", NOW - 200 * DAY, NOW - 150 * DAY),
                               Span("registry.log", NOW - 100 * DAY, NOW)]
    line = report_data(SAMPLE, plots=False, pulls=pulls)["usage"]["records"]
    pulls_counted = 7  # manifest GETs and HEADs not refused
    assert line == (
        f"Pull records: {pulls_counted} manifest pulls (GET and HEAD), from 2 sources "
        f"(registry.log.1.gz, registry.log), covering {NOW - 200 * DAY:%Y-%m-%d %H:%M} to "
        f"{NOW - 150 * DAY:%Y-%m-%d %H:%M} and {NOW - 100 * DAY:%Y-%m-%d %H:%M} to "
        f"{NOW:%Y-%m-%d %H:%M} UTC; 4 malformed lines skipped.")
    # a gap in the records: the 180 days are unknown, the 90 are known
    rows = _rows(report_data(SAMPLE, plots=False, pulls=pulls)["usage"]["unused"])
    assert rows["180 days"][0].startswith("unknown: the records cover only since")
    assert not rows["90 days"][0].startswith("unknown")


def test_a_dataframe_of_another_tool_is_read_as_pull_records():
    """A user's frame (no coverage): its first to last row is what it covers, cut
    where two rows lie more than a day apart."""
    times = [NOW - 100 * DAY + k * DAY / 2 for k in range(200)] + [NOW]
    plain = pd.DataFrame({"time": times, "repository": ["web/api"] * len(times),
                          "reference": ["v2"] * (len(times) - 1) + ["v3"],
                          "method": ["GET"] * len(times), "kind": ["manifest"] * len(times)})
    rows = _rows(report_data(SAMPLE, plots=False, pulls=plain)["usage"]["unused"])
    assert not rows["90 days"][0].startswith("unknown")
    assert rows["180 days"][0].startswith("unknown")
    holed = plain[(plain["time"] < NOW - 60 * DAY) | (plain["time"] > NOW - 10 * DAY)]
    rows = _rows(report_data(SAMPLE, plots=False, pulls=holed)["usage"]["unused"])
    assert rows["90 days"][0].startswith("unknown")  # 50 days without a row: a hole


def test_without_records_the_report_is_unchanged():
    html = render_report(SAMPLE, plots=False)
    assert html == render_report(SAMPLE, plots=False, pulls=None, pulls_source="x")
    assert "What is used" not in html and "--pulls" not in html
    assert report_data(SAMPLE, plots=False)["usage"] is None


def test_the_section_follows_the_plan_and_the_plan_stays_first():
    html = render_report(SAMPLE, pulls=records(EVENTS))
    cards = html.index('<div class="cards">')
    plan = html.index("<h2>Cleanup plan</h2>")
    others = [m.start() for m in re.finditer(r"<h2>|<img ", html) if m.start() != plan]
    assert cards < plan < min(o for o in others if o > cards)
    used = html.index("<h2>What is used</h2>")
    assert plan < used < html.index("<h2>Plots</h2>")
    assert html.count('alt="manifest pulls per day"') == 1


#: the smallest text a plot may show, in CSS pixels, at the size the report shows it
SMALLEST_PX = 12


def test_the_pulls_plot_at_the_report_s_size_is_readable_and_counts_every_pull():
    from matplotlib.text import Text

    pulls = records(EVENTS, covers=(200, 0))
    pulls.attrs["coverage"] = [Span("a", NOW - 200 * DAY, NOW - 120 * DAY),
                               Span("b", NOW - 60 * DAY, NOW)]
    with plt.rc_context(_report.READABLE):
        figure, ax = plt.subplots(figsize=_report.PULLS_SIZE, layout="constrained")
        plot_pulls(pulls, ax=ax)
        figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    for text in figure.findobj(Text):
        if not text.get_text() or not text.get_visible():
            continue
        assert text.get_fontsize() * 96 / 72 >= SMALLEST_PX, text.get_text()
        extent = text.get_window_extent(renderer)
        assert figure.bbox.x0 - 1 <= extent.x0 and extent.x1 <= figure.bbox.x1 + 1, (
            text.get_text())
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["GET (4)", "HEAD (3)", "no records"]
    # the bars: one per day and method, their heights the requests of that day
    heights = sum(p.get_height() for p in ax.patches if p.get_height() > 0
                  and p.get_label() != "no records")
    assert heights == 7
    spans = [p for p in ax.patches if p.get_label() == "no records"]
    assert len(spans) == 1  # the 60 days between the two sources
    plt.close(figure)
    assert _report.PULLS_SIZE[0] == _report._WIDE  # as wide as the page


@pytest.mark.parametrize("collector", ["distribution-2", "distribution-3", None])
def test_a_storage_report_counts_what_its_collector_frees(scenario_storage, collector):
    inv = ri.scan_storage(scenario_storage, progress=False)
    tags = inv.tags.astype(str)
    first = tags.iloc[0]
    frame = pd.DataFrame({"time": [inv.taken_at - DAY], "repository": [first["repository"]],
                          "reference": [first["tag"]], "method": ["GET"],
                          "kind": ["manifest"]})
    frame.attrs["coverage"] = [Span("log", inv.taken_at - 365 * DAY, inv.taken_at)]
    pulls = from_frame(frame)
    data = report_data(inv, plots=False, pulls=pulls, collector=collector)
    unused = unused_images(inv, pulls, days=30, now=inv.taken_at)
    rows = inv.tags.iloc[[r for rows in unused["rows"] for r in rows]][["repository", "tag"]]
    assert len(rows) and (first["repository"], first["tag"]) not in set(
        zip(rows["repository"].astype(str), rows["tag"].astype(str), strict=True))
    freed = ri.reclaimable(inv, rows.astype(str), collector=collector)
    assert _rows(data["usage"]["unused"])["30 days"][2] == ri.format_bytes(freed)


@pytest.mark.parametrize("hostile", ["$\\frac{a}{b}$ \u202e", "<script>x</script>"])
def test_outside_text_in_the_records_stays_inert(hostile):
    rows = [{"repository": "web/api", "reference": "v2", "days": 1, "client": hostile}]
    pulls = records(rows)
    pulls.attrs["coverage"] = [Span(hostile, NOW - 200 * DAY, NOW)]
    html = render_report(SAMPLE, pulls=pulls)
    assert "<script>x" not in html and "\u202e" not in html


def test_where_the_collectors_differ_the_figure_is_the_one_that_runs(tmp_path):
    """A storage 3.x cannot collect (a schema1 manifest): not told which registry runs,
    the figures are 2.x's, and the note says so, as the plan's are."""
    from tests.test_collectors import _schema1_storage

    inv = ri.scan_storage(_schema1_storage(tmp_path), progress=False)
    frame = pd.DataFrame({"time": [inv.taken_at], "repository": ["o/old"],  # it stays
                          "reference": ["v1"], "method": ["GET"], "kind": ["manifest"]})
    frame.attrs["coverage"] = [Span("log", inv.taken_at - 365 * DAY, inv.taken_at)]
    pulls = from_frame(frame)
    unused = unused_images(inv, pulls, days=30, now=inv.taken_at)
    tags = inv.tags.iloc[[r for rows in unused["rows"] for r in rows]][["repository", "tag"]]
    assert list(tags.astype(str).itertuples(index=False, name=None)) == [("o/new", "latest")]
    with pytest.raises(ri.CollectorsDiffer):
        ri.reclaimable(inv, tags.astype(str))
    table = report_data(inv, plots=False, pulls=pulls, keep_last=0, older_than=None,
                        protect="^v1$")["usage"]["unused"]
    freed = ri.reclaimable(inv, tags.astype(str), collector="distribution-2")
    assert _rows(table)["30 days"][2] == ri.format_bytes(freed)
    assert "as Distribution 2.x's garbage-collect frees them" in table["note"]


def test_no_records_and_an_empty_registry_render_cleanly(recwarn):
    from reginsight.inventory._frames import empty
    from reginsight.usage._frame import empty_pulls

    data = report_data(SAMPLE, plots=False, pulls=empty_pulls())
    assert data["usage"]["records"] == ("Pull records: none cover any time, so nothing is "
                                        "known of what is used.")
    assert {row[1] for row in data["usage"]["unused"]["rows"]} == {
        "unknown: there are no pull records"}
    assert data["cleanup"]["deletes"] == 0  # nothing known unused: nothing deleted
    frames = {name: empty(name) for name, _ in SAMPLE.frames()}
    nothing = ri.Inventory(registry="http://empty.test", taken_at=NOW, **frames)
    html = render_report(nothing, pulls=records(EVENTS))
    assert "What is used" in html and "nan" not in html.lower().replace("nanosecond", "")
    assert [str(w.message) for w in recwarn] == []
