"""last_pulled and plan_cleanup(pulls=, unpulled_for=) on the bundled sample: pure
DataFrame units (the real-registry proof is in tests/test_pulls_cleanup_registry.py)."""

from __future__ import annotations

import pandas as pd
import pytest

import reginsight as ri
from reginsight.usage._frame import Span, from_frame

NOW = pd.Timestamp("2026-12-06T12:00:00Z")


@pytest.fixture(scope="module")
def inv() -> ri.Inventory:
    return ri.sample()


def records(rows: list[tuple], *, since: str = "2026-06-01", until: pd.Timestamp = NOW
            ) -> pd.DataFrame:
    """A pull frame of (time, repository, reference, method, status, client) rows,
    covering ``since`` .. ``until``."""
    frame = from_frame(pd.DataFrame(rows, columns=["time", "repository", "reference", "method",
                                                   "status", "client"]).assign(kind="manifest"))
    frame.attrs["coverage"] = [Span("log", pd.Timestamp(since, tz="UTC"), until)]
    return frame


def tag_digest(inv: ri.Inventory, repository: str, tag: str) -> str:
    tags = inv.tags
    chosen = (tags["repository"] == repository) & (tags["tag"] == tag)
    return str(tags.loc[chosen, "digest"].iloc[0])


def index_and_child(inv: ri.Inventory) -> tuple[str, str, str, str]:
    """(repository, tag, index digest, one child digest) of a tagged index."""
    children = inv.children.astype(str)
    tags = inv.tags.astype({"repository": str, "tag": str, "digest": str})
    merged = tags.merge(children, left_on=["repository", "digest"],
                        right_on=["repository", "parent"], suffixes=("", "_child"))
    row = merged.iloc[0]
    return row["repository"], row["tag"], row["digest"], row["digest_child"]


def row_of(frame: pd.DataFrame, repository: str, tag: str) -> pd.Series:
    return frame[(frame["repository"] == repository) & (frame["tag"] == tag)].iloc[0]


def test_a_pull_by_tag_dates_every_tag_on_its_digest(inv: ri.Inventory) -> None:
    digest = tag_digest(inv, "data/etl", "latest")
    others = inv.tags[(inv.tags["digest"] == digest) & (inv.tags["tag"] != "latest")]
    assert len(others), "the sample has a second tag on data/etl:latest's digest"
    pulls = records([("2026-12-01T08:00:00Z", "data/etl", "latest", "GET", 200, "10.0.0.1"),
                     ("2026-12-02T08:00:00Z", "data/etl", "latest", "HEAD", 200, "10.0.0.2"),
                     ("2026-12-03T08:00:00Z", "data/etl", "latest", "GET", 404, "10.0.0.3")])
    used = ri.last_pulled(inv, pulls, now=NOW)
    latest = row_of(used, "data/etl", "latest")
    other = row_of(used, "data/etl", others["tag"].iloc[0])
    # the HEAD is use; the 404 is not
    assert latest["last_pulled"] == pd.Timestamp("2026-12-02T08:00:00Z")
    assert latest["last_client"] == "10.0.0.2"
    assert latest["pulls_30d"] == 2
    assert other["last_pulled"] == latest["last_pulled"]  # same image
    assert latest["tag_last_pulled"] == pd.Timestamp("2026-12-02T08:00:00Z")
    assert pd.isna(other["tag_last_pulled"])  # nobody asked for it by that name
    assert used.loc[used["repository"] != "data/etl", "last_pulled"].isna().all()


def test_an_index_is_used_when_a_child_is_pulled_by_digest(inv: ri.Inventory) -> None:
    repository, tag, index, child = index_and_child(inv)
    pulls = records([("2026-11-20T00:00:00Z", repository, child, "GET", 200, "10.0.0.9")])
    used = ri.last_pulled(inv, pulls, now=NOW)
    row = row_of(used, repository, tag)
    assert row["digest"] == index
    assert row["last_pulled"] == pd.Timestamp("2026-11-20T00:00:00Z")
    assert row["pulls_30d"] == 0  # requests naming the index itself
    assert pd.isna(row["tag_last_pulled"])


def test_frame_shape_and_dtypes(inv: ri.Inventory) -> None:
    used = ri.last_pulled(inv, records([]), now=NOW)
    assert list(used.columns) == ["repository", "tag", "digest", "last_pulled", "pulls_30d",
                                  "last_client", "tag_last_pulled", "last_pushed"]
    assert str(used["last_pulled"].dtype) == "datetime64[ns, UTC]"
    assert str(used["pulls_30d"].dtype) == "int64"
    assert len(used[used["tag"].notna()]) == len(inv.tags)
    children = set(zip(inv.children["repository"].astype(str), inv.children["digest"].astype(str),
                       strict=True))
    alone = used[used["tag"].isna()]
    assert not set(zip(alone["repository"], alone["digest"], strict=True)) & children


def plan(inv: ri.Inventory, pulls: pd.DataFrame, **rules: object) -> pd.DataFrame:
    return ri.plan_cleanup(inv, pulls=pulls, unpulled_for="90d", now=NOW, **rules)


def test_unpulled_for_keeps_what_was_pulled_and_deletes_the_rest(inv: ri.Inventory) -> None:
    repository, tag, _, child = index_and_child(inv)
    pulls = records([("2026-11-01T00:00:00Z", "web/api", "v1", "GET", 200, "10.0.0.1"),
                     ("2026-11-02T00:00:00Z", repository, child, "HEAD", 200, "10.0.0.1"),
                     ("2026-08-01T00:00:00Z", "web/api", "v2", "GET", 200, "10.0.0.1")])
    result = plan(inv, pulls)
    assert row_of(result, "web/api", "v1")["action"] == "keep"
    assert row_of(result, "web/api", "v1")["reason"] == "pulled 2026-11-01, within 90d"
    assert row_of(result, repository, tag)["action"] == "keep"  # through its child
    v2 = row_of(result, "web/api", "v2")  # pulled, but before the window
    assert (v2["action"], v2["reason"]) == ("delete", "not pulled for 90d")
    # nothing deleted was used in the window or made in it
    doomed = result[result["action"] == "delete"]
    used = ri.last_pulled(inv, pulls, now=NOW).set_index(["repository", "digest"])
    start = NOW - pd.Timedelta(days=90)
    for key in zip(doomed["repository"], doomed["digest"], strict=True):
        assert not (used.loc[[key], "last_pulled"] >= start).any()
    assert (doomed["created"].dropna() < start).all()
    assert result.attrs["reclaimable_bytes"] == ri.reclaimable(inv, doomed)


@pytest.mark.parametrize(("since", "until", "why"), [
    ("2026-10-01", NOW, "the records cover only since 2026-10-01"),
    ("2026-06-01", NOW - pd.Timedelta(hours=30), "the records end 30 h before now"),
])
def test_short_records_make_no_record_unknown_not_unused(inv: ri.Inventory, since: str,
                                                         until: pd.Timestamp, why: str) -> None:
    pulls = records([("2026-11-01T00:00:00Z", "web/api", "v1", "GET", 200, "10.0.0.1")],
                    since=since, until=until)
    result = plan(inv, pulls)
    v2 = row_of(result, "web/api", "v2")
    assert v2["action"] == "keep"
    assert why in v2["reason"] and "unknown, not unused" in v2["reason"]
    assert row_of(result, "web/api", "v1")["reason"] == "pulled 2026-11-01, within 90d"
    assert (result["action"] == "keep").all()


def test_a_push_in_the_window_is_not_unused(inv: ri.Inventory) -> None:
    pulls = records([("2026-11-15T00:00:00Z", "web/api", "v2", "PUT", 201, "10.0.0.1")])
    v2 = row_of(plan(inv, pulls), "web/api", "v2")
    assert (v2["action"], v2["reason"]) == ("keep", "pushed 2026-11-15, within 90d")


def test_every_rule_must_allow_a_deletion(inv: ri.Inventory) -> None:
    pulls = records([])
    alone = plan(inv, pulls)
    both = plan(inv, pulls, keep_last=2)
    assert set(both.loc[both["action"] == "delete", "digest"]) < set(
        alone.loc[alone["action"] == "delete", "digest"])
    assert "not among the 2 newest, not pulled for 90d" in set(both["reason"])


@pytest.mark.parametrize(("options", "words"), [
    ({"unpulled_for": "90d"}, "needs pulls="),
    ({"pulls": "frame"}, "needs unpulled_for="),
    ({"pulls": "frame", "unpulled_for": "soon"}, "give a number and a unit"),
])
def test_the_rule_needs_both_halves(inv: ri.Inventory, options: dict, words: str) -> None:
    if options.get("pulls") == "frame":
        options = {**options, "pulls": records([])}
    with pytest.raises(ri.PlanError, match=words):
        ri.plan_cleanup(inv, now=NOW, **options)


@pytest.mark.parametrize(("flags", "words"), [
    (["--unpulled-for", "90d"], "--unpulled-for needs --pulls"),
    (["--pulls", "x.log"], "--pulls needs --unpulled-for"),
    (["--pulls", "x.log", "--unpulled-for", "soon"], "--unpulled-for 'soon'"),
    (["--plan", "p.csv", "--pulls", "x.log"], "--plan FILE is applied as it is"),
])
def test_cleanup_flags_are_checked_before_anything_is_read(
        flags: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    from reginsight._cli import main

    # a refused flag never reaches the registry: this address is never contacted
    assert main(["cleanup", "http://127.0.0.1:9", *flags]) == 2
    assert words in capsys.readouterr().err


def test_unpulled_bytes_are_what_deleting_the_cold_images_frees(inv: ri.Inventory) -> None:
    pulls = records([("2026-12-01T00:00:00Z", "web/api", "v1", "GET", 200, "10.0.0.1"),
                     ("2026-10-01T00:00:00Z", "web/frontend", "1.0.0", "GET", 200, "10.0.0.1")],
                    since="2026-07-01")
    cold = ri.unpulled_bytes(inv, pulls, now=NOW).set_index("days")
    # the unused set worked out here from the records: images about nothing else and
    # no index's platform image, whose digest no request in the window named, not
    # built in the window either
    roles = inv.manifests.set_index(["repository", "digest"])
    children = set(zip(inv.children["repository"].astype(str),
                       inv.children["digest"].astype(str), strict=True))
    created = ri.image_created(inv)
    for days, hot in ((30, {("web/api", "v1")}), (90, {("web/api", "v1"),
                                                       ("web/frontend", "1.0.0")})):
        start = NOW - pd.Timedelta(days=days)
        hot_digests = {tag_digest(inv, r, t) for r, t in hot}
        cold_tags = [(r, t) for r, t, d in inv.tags[["repository", "tag", "digest"]].astype(str)
                     .itertuples(index=False)
                     if d not in hot_digests and (r, d) not in children
                     and roles.loc[(r, d), "role"] in ("image", "index")
                     and pd.isna(roles.loc[(r, d), "subject"])
                     and not created.loc[(r, d)] >= start]
        assert cold.loc[days, "tags"] == len(cold_tags)
        assert cold.loc[days, "reclaimable_bytes"] == ri.reclaimable(inv, cold_tags)
        assert pd.isna(cold.loc[days, "unknown"])
    assert cold.loc[30, "reclaimable_bytes"] > cold.loc[90, "reclaimable_bytes"] > 0
    assert pd.isna(cold.loc[180, "images"])  # the records start 158 days before NOW
    assert "cover only since 2026-07-01" in cold.loc[180, "unknown"]


def test_reginsights_own_reads_are_no_use(inv: ri.Inventory) -> None:
    """A crawl GETs every manifest: were that use, every image would look pulled."""
    pulls = records([("2026-12-01T00:00:00Z", "web/api", "v2", "GET", 200, "10.0.0.1")])
    crawl = pulls.assign(user_agent=pd.Categorical(["reginsight/0.9.0"]))
    crawl.attrs = pulls.attrs
    assert row_of(ri.last_pulled(inv, pulls, now=NOW), "web/api", "v2")["pulls_30d"] == 1
    own = row_of(ri.last_pulled(inv, crawl, now=NOW), "web/api", "v2")
    assert pd.isna(own["last_pulled"]) and own["pulls_30d"] == 0
    assert row_of(plan(inv, crawl), "web/api", "v2")["action"] == "delete"
