"""The HTML report's figures and states: the cleanup policy, what each deletion frees,
sharing by name, errors, an empty registry, repositories without tags."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

import reginsight as ri
from reginsight.inventory._frames import build, empty
from reginsight.ops._frees import plan_frees
from reginsight.present._report import render_report, report_data
from tests.test_analysis import L1, MX, MY, inventory

SAMPLE = ri.Inventory.load(Path(__file__).resolve().parent.parent / "data" / "sample")


def _table(data: dict, title_start: str) -> dict:
    return next(t for t in data["tables"] if t["title"].startswith(title_start))


def _card(data: dict, label: str) -> str:
    return dict(data["cards"])[label]


def test_policy_options_change_the_plan_and_the_note():
    default = report_data(SAMPLE, plots=False)
    plan = ri.plan_cleanup(SAMPLE, keep_last=3, older_than="180d",
                           protect=r"^(latest|stable)$", now=SAMPLE.taken_at)
    assert _card(default, "cleanup would free") == ri.format_bytes(
        plan.attrs["reclaimable_bytes"])
    strict = report_data(SAMPLE, plots=False, keep_last=1, older_than=None, protect=None)
    harsh = ri.plan_cleanup(SAMPLE, keep_last=1, now=SAMPLE.taken_at)
    assert _card(strict, "cleanup would free") == ri.format_bytes(
        harsh.attrs["reclaimable_bytes"])
    assert harsh.attrs["reclaimable_bytes"] > plan.attrs["reclaimable_bytes"]
    note = _table(strict, "Cleanup by repository")["note"]
    assert note.startswith("keep the 1 newest images per repository; tags on one digest")
    nothing = report_data(SAMPLE, plots=False, keep_last=None, older_than=None, protect=None)
    assert _card(nothing, "cleanup would free") == "0 B"
    with pytest.raises(ri.PlanError):
        report_data(SAMPLE, plots=False, older_than="whenever")


def test_what_each_deletion_frees_adds_up_per_repository_and_in_all():
    plan = ri.plan_cleanup(SAMPLE, keep_last=1, now=SAMPLE.taken_at)
    by_digest, by_repository = plan_frees(SAMPLE, plan)
    doomed = plan[plan["action"] == "delete"]
    assert len(by_digest) == doomed.groupby(["repository", "digest"]).ngroups
    for row in by_digest.itertuples():  # each figure: that digest alone, by definition
        alone = doomed[(doomed["repository"] == row.repository)
                       & (doomed["digest"] == row.digest)]
        assert row.frees == ri.reclaimable(SAMPLE, alone)
        assert set(row.tags.split(", ")) == set(alone["tag"])
    for row in by_repository.itertuples():
        assert row.frees == ri.reclaimable(SAMPLE, doomed[doomed["repository"]
                                                          == row.repository])
        part = by_digest[by_digest["repository"] == row.repository]["frees"].sum()
        assert part <= row.frees  # layers two deleted images share: only with both
    # no blob is shared across repositories by the deleted images here: they add up
    assert by_repository["frees"].sum() == plan.attrs["reclaimable_bytes"]
    assert list(by_digest["frees"]) == sorted(by_digest["frees"], reverse=True)
    data = report_data(SAMPLE, plots=False, keep_last=1, older_than=None, protect=None)
    rows = _table(data, "Cleanup by repository")["rows"]
    assert rows[-1] == ("all repositories", f"{len(by_digest):,}",
                        f"{int(doomed['tag'].notna().sum()):,}",
                        ri.format_bytes(plan.attrs["reclaimable_bytes"]))
    candidates = _table(data, "Cleanup candidates")
    assert [c["name"] for c in candidates["columns"]] == [
        "repository", "tags", "digest", "created", "frees", "reason"]
    assert candidates["rows"][0][4] == ri.format_bytes(by_digest["frees"].iloc[0])


def test_a_blob_two_deleted_images_share_counts_with_both_not_either():
    inv = inventory()  # a: x, x2 -> MX (L1 L2 C1); y -> MY (L1 L3 C2); b keeps L1
    plan = ri.plan_cleanup(inv, keep_last=0, protect=["b:z", "b:multi"], now=inv.taken_at)
    by_digest, by_repository = plan_frees(inv, plan)
    frees = dict(zip(by_digest["digest"], by_digest["frees"], strict=True))
    assert frees == {MX: 10 + 1 + 500, MY: 20 + 2 + 501}  # L1 stays: b reaches it
    assert by_repository.set_index("repository").loc["a", "frees"] == 1034
    assert by_digest.set_index("digest").loc[MX, "tags"] == "x, x2"


def test_shared_layers_are_named_by_the_repositories_using_them():
    data = report_data(inventory(), plots=False)
    shared = _table(data, "Top 1 shared layers")
    assert shared["columns"][0]["name"] == "used by"
    assert shared["rows"][0][0] == "a, b" and shared["rows"][0][-1] == L1[:19]
    sample = _table(report_data(SAMPLE, plots=False), "Top ")
    assert all(re.fullmatch(r"[a-z/]+(, [a-z/]+)+", row[0]) for row in sample["rows"])


def test_errors_get_a_banner_that_counts_them():
    inv = inventory()
    inv.errors = build("errors", [("a", "v9", "tag", "NotFound: manifest unknown"),
                                  ("b", "", "tags", "RegistryUnreachable: timed out")])
    html = render_report(inv, plots=False)
    banner = re.search(r'<div class="banner error" role="alert">(.*?)</div>', html, re.S)
    assert banner and banner.group(1).startswith("2 reads failed")
    assert "a v9, tag: NotFound: manifest unknown" in banner.group(1)
    assert 'class="banner' not in render_report(inventory(), plots=False)


def test_an_empty_registry_renders_cleanly(recwarn):
    frames = {name: empty(name) for name, _ in SAMPLE.frames()}
    inv = ri.Inventory(registry="http://empty.test", taken_at=SAMPLE.taken_at, **frames)
    data = report_data(inv)
    assert data["plots"] == []  # no blank axes
    assert _card(data, "dedup ratio") == "-" and _card(data, "stored") == "0 B"
    assert data["banners"][0][0] == "info" and "no tags" in data["banners"][0][1]
    html = render_report(inv)
    assert "nan" not in html.lower().replace("nanosecond", "") and "-0 B" not in html
    assert [str(w.message) for w in recwarn] == []
    for plot in (ri.plot_storage, ri.plot_layer_sharing, ri.plot_sharing_matrix,
                 ri.plot_image_age, ri.plot_storage_by_role):
        ax = plot(inv)  # a note where the plot would be, and no warning
        assert ax.texts and not ax.get_xticks().size
    assert [str(w.message) for w in recwarn] == []


def test_repositories_without_tags_are_listed():
    inv = inventory()
    manifests = inv.manifests.astype({"repository": "string"})
    tagless = manifests[manifests["repository"] == "a"].assign(repository="gone")
    inv.manifests = pd.concat([manifests, tagless], ignore_index=True).astype(
        {"repository": "category"})
    table = _table(report_data(inv, plots=False), "Repositories without tags")
    assert table["rows"] == [("gone", "2")]


def test_a_crawled_repository_whose_tags_are_all_deleted_is_listed(registry_server, prefix,
                                                                   tmp_path):
    from tests.images import Pusher

    pusher = Pusher(registry_server.url)
    pusher.image(f"{prefix}/kept", "v1")
    gone = pusher.image(f"{prefix}/emptied", "v1")
    pusher.close()
    with ri.Registry(registry_server.url) as reg:
        reg.delete_manifest(f"{prefix}/emptied", gone.digest)
        inv = ri.crawl(reg, f"{prefix}/*", progress=False)
        named = ri.crawl(reg, [f"{prefix}/kept", f"{prefix}/never"], progress=False)
    assert list(inv.tags["repository"].unique()) == [f"{prefix}/kept"]
    assert inv.repositories == (f"{prefix}/emptied", f"{prefix}/kept")  # the catalog lists it
    inv = ri.Inventory.load(inv.save(tmp_path / "saved"))
    assert inv.repositories == (f"{prefix}/emptied", f"{prefix}/kept")
    table = _table(report_data(inv, plots=False), "Repositories without tags")
    assert table["rows"] == [(f"{prefix}/emptied", "0")]
    # a named repository that does not exist is an error, not a repository without tags
    assert len(named.errors) == 1
    assert not any(t["title"].startswith("Repositories without tags")
                   for t in report_data(named, plots=False)["tables"])
    listed = set(ri.explore(named).browse._repository_frame["repository"])
    assert listed == {f"{prefix}/kept"}
    assert f"{prefix}/emptied" in set(ri.explore(inv).browse._repository_frame["repository"])
