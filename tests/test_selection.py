"""``repositories=``: names are read directly, patterns need the catalog."""

from __future__ import annotations

import re

from reginsight.inventory._selection import describe_scope, select_repositories, selection

CATALOG = ["team/app", "team/db", "tools/ci", "library/alpine"]


def test_names_need_no_catalog_and_patterns_do():
    assert not selection("team/app").needs_catalog
    assert not selection(["team/app", "tools/ci"]).needs_catalog
    assert selection(None).needs_catalog
    assert selection("team/*").needs_catalog
    assert selection(re.compile("^team/")).needs_catalog
    mixed = selection(["library/alpine", "team/*"])
    assert mixed.names == ("library/alpine",) and mixed.patterns == ("team/*",)


def test_select_repositories_matches_names_and_patterns():
    assert select_repositories(CATALOG, None) == CATALOG
    assert select_repositories(CATALOG, "team/*") == ["team/app", "team/db"]
    assert select_repositories(CATALOG, "team/app") == ["team/app"]
    assert select_repositories(CATALOG, re.compile("ci$")) == ["tools/ci"]
    assert select_repositories(CATALOG, ["library/alpine", "team/d?"]) == [
        "team/db", "library/alpine"]
    assert select_repositories(CATALOG, (name for name in ["tools/ci"])) == ["tools/ci"]
    assert select_repositories(CATALOG, "team") == []  # a name is whole, not a prefix


def test_scopes_read_back():
    assert describe_scope(None) is None
    assert describe_scope("team/*") == "team/*"
    assert describe_scope(["b", re.compile("^a")]) == "^a, b"
