"""The cleanup policy's words, one module for plan_cleanup, the CLI and the widgets."""

import datetime as dt

import pytest

import reginsight as ri
from reginsight._policy import SUGGESTED_POLICY, age_limit, policy_from_text


@pytest.mark.parametrize(("text", "days"), [("90d", 90), ("2w", 14), (" 36h ", 1.5),
                                            ("1.5d", 1.5)])
def test_ages_with_a_unit(text, days):
    assert age_limit(text) == dt.timedelta(days=days)


@pytest.mark.parametrize("text", ["90", "d", "-3d", "0d", "3 days", "1e9999d"])
def test_an_age_without_a_unit_or_not_positive_is_refused(text):
    with pytest.raises(ri.PlanError, match="older_than"):
        age_limit(text)


def test_an_empty_or_zero_age_and_an_empty_protect_are_no_rule():
    for age in ("", "  ", "0", "0d", "0.0w"):
        rules = policy_from_text(keep_last=3, older_than=age, protect="")
        assert rules == {"keep_last": 3, "older_than": None, "protect": None}


def test_a_broken_protect_regex_is_a_plan_error_before_any_plan():
    with pytest.raises(ri.PlanError, match=r"protect='\(' is not a regular expression"):
        policy_from_text(keep_last=None, older_than="90d", protect="(")


def test_plan_cleanup_reads_ages_the_same_way():
    inv = ri.sample()
    with pytest.raises(ri.PlanError, match="give a number and a unit"):
        ri.plan_cleanup(inv, older_than="90")
    by_text = ri.plan_cleanup(inv, now=inv.taken_at, **policy_from_text(**SUGGESTED_POLICY))
    by_delta = ri.plan_cleanup(inv, now=inv.taken_at, keep_last=3,
                               older_than=dt.timedelta(days=180), protect=r"^(latest|stable)$")
    columns = ["repository", "tag", "digest", "action"]
    assert by_text[columns].equals(by_delta[columns])
    assert (by_text["action"] == "delete").any()
