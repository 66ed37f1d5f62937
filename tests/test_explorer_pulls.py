"""The explorer with pull records: the tag table's last_pulled (a time, "never" only
where the records cover the image's whole life, "not since <day>" where they start
later, "unknown" where they end early) and pulls_30d, sorted by time not by text;
the Clean up tab's "not pulled for" rule, as plan_cleanup(pulls=, unpulled_for=)."""

from __future__ import annotations

import pandas as pd

import reginsight as ri
from reginsight.present._browse import NEVER, UNKNOWN
from reginsight.usage._frame import Span
from tests.test_report_pulls import DAY, NOW, SAMPLE, child_of, records, tag_digest

EVENTS = [
    {"repository": "web/api", "reference": "v2", "days": 2, "client": "10.0.0.9"},
    {"repository": "web/api", "reference": "v2", "days": 40, "method": "HEAD"},
    {"repository": "web/api", "reference": tag_digest("web/api", "v3"), "days": 10},
    {"repository": "web/api", "reference": "v3", "days": 12, "method": "HEAD"},
    {"repository": "web/api", "reference": "v1", "days": 1, "status": 404},  # refused
    {"repository": "platform/base", "days": 4,
     "reference": child_of("platform/base", "2026.10", "amd64")},
]


def _table(explorer, repository: str) -> pd.DataFrame:
    explorer.select(repository)
    return explorer.browse.tags.df.set_index("tag")


def _def_of(table, column: str) -> dict:
    names = list(table.df.columns)
    return next(d for d in table._dt_args["columnDefs"] if d.get("targets") == names.index(column))


def test_the_tag_table_says_when_each_image_was_last_pulled():
    explorer = ri.explore(SAMPLE, pulls=records(EVENTS, covers=(60, 0)))
    api = _table(explorer, "web/api")
    assert api.loc["v2", "last_pulled"] == f"{NOW - 2 * DAY:%Y-%m-%d %H:%M}"
    assert api.loc["v2", "pulls_30d"] == 1  # the HEAD 40 days before: outside
    assert api.loc["v3", "last_pulled"] == f"{NOW - 10 * DAY:%Y-%m-%d %H:%M}"  # by digest
    assert api.loc["v3", "pulls_30d"] == 2  # by digest and by tag
    # v1 was refused, and made before the records start: no pull since they do
    assert api.loc["v1", "last_pulled"] == f"not since {NOW - 60 * DAY:%Y-%m-%d}"
    assert api.loc["v1", "pulls_30d"] == 0
    # latest (and v4 on its digest) was created 25 days before: the records saw it all
    created = SAMPLE.tags.set_index(["repository", "tag"])["created"][("web/api", "latest")]
    assert created > NOW - 60 * DAY
    assert api.loc["latest", "last_pulled"] == api.loc["v4", "last_pulled"] == "never"
    # an index is used when one of its platform images is
    base = _table(explorer, "platform/base")
    assert base.loc["2026.10", "last_pulled"] == f"{NOW - 4 * DAY:%Y-%m-%d %H:%M}"
    assert base.loc["latest", "last_pulled"] == base.loc["2026.10", "last_pulled"]
    assert base.loc["2026.10", "pulls_30d"] == 0  # its own requests only
    assert base.loc["2026.10-amd64", "pulls_30d"] == 1
    assert "Pull records: 5 manifest pulls" in explorer.title.value


def test_records_that_end_early_leave_the_rest_unknown():
    explorer = ri.explore(SAMPLE, pulls=records(EVENTS, covers=(200, 3)))
    api = _table(explorer, "web/api")
    assert api.loc["v1", "last_pulled"] == "unknown"
    assert api.loc["latest", "last_pulled"] == "unknown"  # not "never": records end early
    assert api.loc["v2", "last_pulled"] == f"{NOW - 2 * DAY:%Y-%m-%d %H:%M}"  # still a fact


def test_last_pulled_sorts_by_time_coldest_first():
    explorer = ri.explore(SAMPLE, pulls=records(EVENTS, covers=(60, 0)))
    explorer.select("web/api")
    table = explorer.browse.tags
    shown = table.df
    column = _def_of(table, "last_pulled")
    assert column["type"] == "string"
    ranks = shown.iloc[:, column["orderData"]]
    hidden = next(d for d in table._dt_args["columnDefs"] if d.get("visible") is False)
    assert column["orderData"] in hidden["targets"]
    by_rank = list(shown["last_pulled"][ranks.argsort(kind="stable")])
    times = [t for t in by_rank if t[:1].isdigit()]
    assert times == sorted(times) and len(times) == 2  # v3, then v2
    assert by_rank.index("never") < by_rank.index(f"not since {NOW - 60 * DAY:%Y-%m-%d}") \
        < by_rank.index(times[0])
    assert set(ranks[shown["last_pulled"] == "never"]) == {NEVER}
    assert set(ranks[shown["last_pulled"].str.startswith("not since")]) == {UNKNOWN}


def test_without_records_the_tag_table_is_as_before():
    explorer = ri.explore(SAMPLE)
    explorer.select("web/api")
    assert "last_pulled" not in explorer.browse.tags.df.columns
    assert explorer.unpulled_for.layout.display == "none"
    assert "--pulls" not in explorer.cleanup.command.value
    assert "Pull records" not in explorer.title.value


def test_the_cleanup_tab_plans_with_the_records():
    pulls = records([*EVENTS, {"repository": "data/etl", "reference": "nightly-20250301",
                               "days": 80}])
    explorer = ri.explore(SAMPLE, pulls=pulls, pulls_source="/var/log/registry")
    assert explorer.unpulled_for.value == "90d"
    assert explorer.unpulled_for.layout.display is None
    plan = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                           protect=r"^(latest|stable)$", pulls=pulls, unpulled_for="90d",
                           now=NOW)
    shown = explorer.cleanup.plan
    assert list(shown["digest"]) == list(plan["digest"])
    assert list(shown["action"]) == list(plan["action"])
    kept = shown.set_index(["repository", "tag"])
    assert kept.loc[("data/etl", "nightly-20250301"), "action"] == "keep"
    assert "pulled" in kept.loc[("data/etl", "nightly-20250301"), "reason"]
    assert ("--unpulled-for 90d --pulls /var/log/registry"
            in explorer.cleanup.command.value)
    explorer.unpulled_for.value = ""  # no such rule
    plain = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                            protect=r"^(latest|stable)$", now=NOW)
    assert list(explorer.cleanup.plan["action"]) == list(plain["action"])
    assert "--pulls" not in explorer.cleanup.command.value
    explorer.unpulled_for.value = "90"  # no unit: refused, nothing can be deleted
    assert explorer.cleanup.plan is None and "90d" in explorer.cleanup.summary.value


def test_short_records_keep_every_image_and_the_tab_says_why():
    explorer = ri.explore(SAMPLE, pulls=records(EVENTS, covers=(60, 0)))
    assert explorer.cleanup.doomed.empty
    summary = explorer.cleanup.summary.value
    assert "do not cover the last 90d" in summary and "unknown, not unused" in summary
    assert "PULLS</code> in the command below stands for the pull records" in summary
    assert "--pulls PULLS" in explorer.cleanup.command.value


def test_the_records_survive_a_refresh():
    pulls = records(EVENTS, covers=(60, 0))
    pulls.attrs["coverage"] = [Span("registry.log", NOW - 60 * DAY, NOW)]
    explorer = ri.explore(SAMPLE, pulls=pulls, refresh=lambda: SAMPLE)
    explorer.select("web/api", "v2")
    assert explorer.reread()
    assert explorer.browse.tag == "v2"
    assert _table(explorer, "web/api").loc["v2", "last_pulled"] == (
        f"{NOW - 2 * DAY:%Y-%m-%d %H:%M}")
