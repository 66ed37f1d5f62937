"""Plan files: what plan_cleanup decides, written and read back unchanged; every
malformed file refused whole, naming its bad row."""

from __future__ import annotations

import json

import pandas as pd
import pandas.testing as pdt
import pytest

import reginsight as ri
from reginsight.ops._plan import PLAN_COLUMNS

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
HEADER = ",".join(PLAN_COLUMNS)


@pytest.fixture(scope="module")
def plan() -> pd.DataFrame:
    planned = ri.plan_cleanup(ri.sample(), keep_last=2)
    assert (planned["action"] == "delete").any() and (planned["action"] == "keep").any()
    assert planned["tag"].isna().any() or planned["created"].isna().any()  # NAs round-trip
    return planned


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_round_trip_keeps_every_value_and_dtype(plan, tmp_path, suffix):
    path = ri.save_plan(plan, tmp_path / f"plan{suffix}")
    loaded = ri.load_plan(path)
    pdt.assert_frame_equal(loaded, plan[PLAN_COLUMNS].reset_index(drop=True))
    assert [p.name for p in tmp_path.iterdir()] == [f"plan{suffix}"]  # no temp file left
    # what apply_cleanup reads of it is the same
    from reginsight.ops._apply import deletions
    assert deletions(loaded) == deletions(plan)


def test_csv_text_has_full_digests_and_utc_times(plan):
    text = ri.plan_csv(plan)
    lines = text.splitlines()
    assert lines[0] == HEADER and len(lines) == len(plan) + 1
    frame = pd.read_csv(__import__("io").StringIO(text), dtype=str, keep_default_na=False)
    assert frame["digest"].str.fullmatch(r"sha256:[0-9a-f]{64}").all()
    times = frame["created"][frame["created"] != ""]
    assert len(times) and times.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").all()


def test_empty_plan_round_trips(plan, tmp_path):
    empty = plan.iloc[0:0]
    for suffix in (".csv", ".json"):
        loaded = ri.load_plan(ri.save_plan(empty, tmp_path / f"empty{suffix}"))
        assert len(loaded) == 0
        assert list(loaded.dtypes.astype(str)) == list(plan.dtypes.astype(str))


def write(tmp_path, text: str, name: str = "plan.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def row(repository="team/app", tag="1.0", digest=DIGEST, created="2024-05-01T00:00:00Z",
        action="delete", reason="older than 30d") -> str:
    return ",".join([repository, tag, digest, created, action, reason])


@pytest.mark.parametrize(("lines", "message"), [
    ([row(digest="sha256:57102a9a33ef")], "line 2: digest 'sha256:57102a9a33ef' is shortened; "
                                          "the plan needs full digests"),
    ([row(digest="57102a9a33ef")], "line 2: digest '57102a9a33ef' is shortened"),
    ([row(), row(tag="2.0", digest="sha256:" + "AB" * 32)], "line 3: "),
    ([row(action="remove")], "line 2: action 'remove' is neither delete nor keep"),
    ([row(action="")], "line 2: action is empty"),
    ([row(repository="Team/App")], "line 2: invalid repository name 'Team/App'"),
    ([row(repository="team/../etc")], "line 2: invalid repository name"),
    ([row(tag="-bad")], "line 2: invalid tag '-bad'"),
    ([row(created="yesterday")], "line 2: created 'yesterday' is not an ISO 8601 time"),
    ([row(), row(digest=OTHER)], "line 3: tag team/app:1.0 is listed twice"),
    ([row(action="keep"), row(tag="2.0")], "line 3: digest " + DIGEST + " of team/app is "
                                            "deleted here and kept on another row"),
    ([row(), "team/app,2.0," + DIGEST], "line 3: 3 fields, the header has 6"),
])
def test_bad_rows_are_refused_naming_the_line(tmp_path, lines, message):
    path = write(tmp_path, "\n".join([HEADER, *lines]) + "\n")
    with pytest.raises(ri.PlanError) as caught:
        ri.load_plan(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("", "the file is empty"),
    ("repository,tag,digest\nteam/app,1.0," + DIGEST + "\n", "missing the plan columns "
                                                          "['created', 'action', 'reason']"),
    ("\x00\x01garbage\n\x7f", "missing the plan columns"),
    (HEADER + ",tag\n", "the header names a column twice"),
    (HEADER + '\n"team/app,1.0\n', "not CSV"),
])
def test_files_that_are_not_plans_are_refused(tmp_path, text, message):
    with pytest.raises(ri.PlanError, match=r"plan .*: ") as caught:
        ri.load_plan(write(tmp_path, text))
    assert message in str(caught.value)


def test_extra_columns_are_ignored_and_a_bom_accepted(tmp_path):
    path = tmp_path / "plan.csv"
    path.write_bytes(("\ufeff" + HEADER + ",frees\n" + row(tag="") + ",123\n").encode())
    loaded = ri.load_plan(path)
    assert list(loaded.columns) == PLAN_COLUMNS and loaded["tag"].isna().all()
    assert loaded.at[0, "created"] == pd.Timestamp("2024-05-01", tz="UTC")


@pytest.mark.parametrize(("data", "message"), [
    ("{", "not JSON"),
    ('{"rows": []}', "a JSON plan is a list of row objects"),
    ("[1]", "row 1 is not an object"),
    ('[{"repository": "team/app"}]', "row 1 misses the plan columns"),
    (json.dumps([dict(zip(PLAN_COLUMNS, ["team/app", "1.0", DIGEST, None, "delete", 5],
                          strict=True))]), "row 1: every value is a string or null"),
    (json.dumps([dict(zip(PLAN_COLUMNS, ["team/app", "1.0", DIGEST[:19], None, "delete", ""],
                          strict=True))]), "row 1: digest 'sha256:abababababab' is shortened"),
])
def test_bad_json_plans_are_refused(tmp_path, data, message):
    with pytest.raises(ri.PlanError) as caught:
        ri.load_plan(write(tmp_path, data, "plan.json"))
    assert message in str(caught.value)


def test_unreadable_and_oversized_files_are_refused(tmp_path):
    with pytest.raises(ri.PlanError, match="cannot be read"):
        ri.load_plan(tmp_path / "absent.csv")
    binary = tmp_path / "plan.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ri.PlanError, match="not UTF-8"):
        ri.load_plan(binary)
    big = write(tmp_path, HEADER + "\n" + row() + "\n", "big.csv")
    with pytest.raises(ri.PlanError, match="larger than 50 bytes"):
        ri.load_plan(big, max_bytes=50)
    assert len(ri.load_plan(big, max_bytes=big.stat().st_size)) == 1
    with pytest.raises(ri.PlanError, match=r"\.csv or \.json, not 'plan\.txt'"):
        ri.load_plan(write(tmp_path, HEADER, "plan.txt"))


def test_save_refuses_other_suffixes_and_files_that_are_not_plans(plan, tmp_path):
    with pytest.raises(ri.PlanError, match=r"\.csv or \.json"):
        ri.save_plan(plan, tmp_path / "plan.html")
    precious = write(tmp_path, "name,amount\nrent,1200\n", "budget.csv")
    with pytest.raises(ri.PlanError, match="exists and is not a plan file: not replaced"):
        ri.save_plan(plan, precious)
    assert precious.read_text() == "name,amount\nrent,1200\n"
    notes = write(tmp_path, '{"a": 1}', "notes.json")
    with pytest.raises(ri.PlanError, match="not a plan file"):
        ri.save_plan(plan, notes)
    # a plan file is replaced whole
    earlier = ri.save_plan(plan.iloc[:3], tmp_path / "plan.json")
    ri.save_plan(plan, earlier)
    assert len(ri.load_plan(earlier)) == len(plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budget.csv", "notes.json",
                                                          "plan.json"]


def test_save_refuses_a_plan_load_would_refuse(plan, tmp_path):
    short = plan.assign(digest=plan["digest"].str.slice(0, 19))
    with pytest.raises(ri.PlanError, match="shortened"):
        ri.save_plan(short, tmp_path / "plan.csv")
    with pytest.raises(ri.PlanError, match="missing"):
        ri.plan_csv(plan.drop(columns="action"))
    assert not list(tmp_path.iterdir())
