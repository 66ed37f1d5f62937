"""scan_storage, disk_usage and gc_preview against the real registry's filesystem storage,
checked against what was pushed, the bytes on disk and the real garbage collector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import reginsight as ri
from tests import storage_scenario as sc
from tests.images import Pusher
from tests.outofcore import assert_same_out_of_core
from tests.registry_server import RegistryServer
from tests.skopeo import skopeo
from tests.versions import VERSIONS

PINNED = ["repository", "digest", "media_type", "kind", "parent", "os", "architecture",
          "variant", "config_digest", "created", "size", "layers", "manifest_size"]


def _filled(workdir: Path, prefix: str, version: str) -> tuple[RegistryServer, sc.Scenario]:
    server = sc.server(version, workdir).start()
    pusher = Pusher(server.url)
    try:
        return server, sc.build(pusher, prefix)
    except BaseException:
        server.stop()
        raise
    finally:
        pusher.close()


@pytest.fixture(scope="module", params=list(VERSIONS))
def version(request: pytest.FixtureRequest) -> str:
    """Each real registry version in turn: "2.8", "3.0"."""
    return request.param


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, version: str
           ) -> Iterator[tuple[RegistryServer, sc.Scenario]]:
    """A registry of its own (its disk totals are the test's), filled once."""
    server, scenario = _filled(tmp_path_factory.mktemp("storage"), "s", version)
    try:
        yield server, scenario
    finally:
        server.stop()


@pytest.fixture(scope="module")
def scanned(filled: tuple[RegistryServer, sc.Scenario]) -> ri.Inventory:
    return ri.scan_storage(filled[0].storage, progress=False)


def test_each_category_is_what_was_pushed_and_all_sum_to_the_disk(filled, scanned):
    server, scenario = filled
    assert scanned.errors.empty, scanned.errors
    blobs = ri.disk_blobs(scanned)
    for category in ("tagged", "untagged", "unreferenced"):
        assert set(blobs.loc[blobs["category"] == category, "digest"]) == getattr(
            scenario, category), category
    usage = ri.disk_usage(scanned).set_index("category")
    on_disk = sc.blob_bytes(server.storage)
    assert usage.loc[["tagged", "untagged", "unreferenced"], "bytes"].sum() == sum(
        on_disk.values())
    assert usage.loc[["tagged", "untagged", "unreferenced"], "blobs"].sum() == len(on_disk)
    assert usage.loc["uploads", "bytes"] == scenario.upload_bytes == sc.upload_bytes(
        server.storage)
    assert list(usage.index) == ["tagged", "untagged", "unreferenced", "uploads"]
    # and every blob's size is its data on disk
    sizes = scanned.blobs.set_index("digest")["size"]
    assert {d: int(sizes[d]) for d in on_disk} == on_disk


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_gc_preview_names_exactly_what_the_real_garbage_collector_deletes(
        filled, scanned, tmp_path, delete_untagged, version):
    server, scenario = filled
    preview = ri.gc_preview(scanned, delete_untagged=delete_untagged,
                            collector=sc.collector(version))
    assert preview.attrs["collector"] == sc.collector(version)
    freed = sc.collect_copy(server, tmp_path,
                            *(["--delete-untagged"] if delete_untagged else []))
    blobs = preview[preview["kind"] != "revision"]
    assert dict(zip(blobs["digest"], blobs["size"], strict=True)) == freed
    assert preview["size"].sum() == sum(freed.values())
    hazards = preview[preview["breaks"] != ""]
    if not delete_untagged:
        assert set(preview["digest"]) == scenario.unreferenced
        assert hazards.empty
        # both collectors do the same here: no choice needed
        assert ri.gc_preview(scanned).equals(preview)
        return
    if version == "3.0":  # 3.x keeps a tagged index's children: only the untagged go
        assert set(preview["digest"]) == scenario.untagged | scenario.unreferenced
        assert hazards.empty
        return
    # 2.x --delete-untagged: the tagged index's children lose their revisions; the arm64
    # child keeps every blob (through multi:solo) and still breaks the pull
    hazard = preview.set_index("digest").loc[scenario.hazard_child.digest]
    assert (hazard["kind"], hazard["size"], hazard["breaks"]) == ("revision", 0, "s/multi:v1")
    assert set(hazards["breaks"]) == {"s/multi:v1"}
    assert set(hazards["reason"]) == {"child of a tagged index"}
    amd = scenario.children[0]
    assert {amd.config, *amd.layers} <= set(hazards["digest"])


def test_without_a_collector_the_preview_says_where_they_differ(scanned):
    with pytest.raises(ri.CollectorsDiffer) as raised:
        ri.gc_preview(scanned, delete_untagged=True)
    message = str(raised.value)
    assert "Distribution 2.x: deletes 13 blobs" in message and "s/multi:v1" in message
    assert "breaks 1 image (" in message
    assert "Distribution 3.x: deletes 10 blobs" in message and "breaks nothing" in message
    assert 'collector="distribution-2"' in message and "registry --version" in message
    each = raised.value.outcomes
    assert set(each) == {"distribution-2", "distribution-3"}
    for name, preview in each.items():
        assert preview.equals(ri.gc_preview(scanned, delete_untagged=True, collector=name))
    with pytest.raises(ValueError, match="distribution-2"):
        ri.gc_preview(scanned, collector="2")


def test_the_scan_agrees_with_a_crawl_on_everything_tagged(filled, scanned):
    server, _ = filled
    with ri.Registry(server.url) as reg:
        crawled = ri.crawl(reg, progress=False)
    pd.testing.assert_frame_equal(scanned.tags, crawled.tags)
    tagged = scanned.manifests[scanned.manifests["tagged"]][PINNED].reset_index(drop=True)
    pd.testing.assert_frame_equal(tagged, crawled.manifests[PINNED], check_categorical=False)
    assert len(scanned.manifests) == len(crawled.manifests) + 2  # the two moved-off images
    # the tag-based byte figures are the same; "manifests" counts every revision
    figures = ri.storage_summary(scanned).drop("manifests")
    assert figures.equals(ri.storage_summary(crawled).drop("manifests"))


def test_tag_history_and_uploads(filled, scanned):
    history = scanned.tag_history
    latest = history[(history["repository"] == "s/app") & (history["tag"] == "latest")]
    assert len(latest) == 3 and latest["current"].tolist() == [False, False, True]
    assert latest["linked"].is_monotonic_increasing and latest["linked"].notna().all()
    untagged = scanned.manifests[~scanned.manifests["tagged"]]
    assert set(untagged["digest"]) == set(latest["digest"][:2])
    uploads = scanned.uploads
    assert len(uploads) == 1 and uploads["size"].iloc[0] == 3000
    assert uploads["started"].notna().all() and str(uploads["repository"].iloc[0]) == "s/app"


def test_a_scanned_inventory_round_trips_with_its_storage_frames(scanned, tmp_path):
    back = ri.Inventory.load(scanned.save(tmp_path / "inv"))
    assert back.from_storage
    for name, frame in scanned.frames():
        pd.testing.assert_frame_equal(getattr(back, name), frame, obj=name)
    for collector in ("distribution-2", "distribution-3"):  # folders round-trip too
        pd.testing.assert_frame_equal(
            ri.gc_preview(back, delete_untagged=True, collector=collector),
            ri.gc_preview(scanned, delete_untagged=True, collector=collector))


def test_gc_preview_refuses_a_crawled_inventory(filled):
    with ri.Registry(filled[0].url) as reg:
        crawled = ri.crawl(reg, progress=False)
    with pytest.raises(ri.InventoryError, match="scan_storage"):
        ri.gc_preview(crawled)
    with pytest.raises(ri.PlanError, match="scan_storage"):
        ri.plan_cleanup(crawled, untagged=True)


def test_untagged_cleanup_through_the_api_then_plain_gc_frees_exactly_and_breaks_nothing(
        tmp_path, version):
    server, scenario = _filled(tmp_path / "reg", "u", version)
    try:
        inv = ri.scan_storage(server.storage, progress=False)
        usage = ri.disk_usage(inv).set_index("category")["bytes"]
        plan = ri.plan_cleanup(inv, untagged=True)
        doomed = plan[plan["action"] == "delete"]
        assert doomed["tag"].isna().all() and set(doomed["reason"]) == {"untagged"}
        assert set(doomed["digest"]) == set(
            inv.manifests.loc[~inv.manifests["tagged"], "digest"])
        # the children of the tagged index are not in it
        assert not {c.digest for c in scenario.children} & set(doomed["digest"])
        assert plan.attrs["reclaimable_bytes"] == usage["untagged"]
        with ri.Registry(server.url) as reg:
            dry = ri.apply_cleanup(reg, plan)
            assert set(dry["status"]) == {"would delete"}
            done = ri.apply_cleanup(reg, plan, dry_run=False)
        assert set(done["status"]) == {"deleted"} and len(done) == len(doomed)
        before = sc.blob_bytes(server.storage)
        server.stop()
        server.garbage_collect()
        after = sc.blob_bytes(server.storage)
        freed = sum(before.values()) - sum(after.values())
        assert freed == usage["untagged"] + usage["unreferenced"]
        server.start()
        host = server.url.split("://", 1)[1]
        for reference in ("u/multi:v1", "u/multi:solo", "u/app:latest"):
            skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{host}/{reference}",
                   f"dir:{tmp_path / reference.replace('/', '_')}")
        rescanned = ri.scan_storage(server.storage, progress=False)
        assert rescanned.manifests["tagged"].all()
        assert ri.gc_preview(rescanned, collector=sc.collector(version)).empty
        # 2.x: the hazard of --delete-untagged is still there (only the children are
        # untagged); 3.x would delete nothing now
        hazard = ri.gc_preview(rescanned, delete_untagged=True, collector=sc.collector(version))
        assert set(hazard["breaks"]) == ({"u/multi:v1"} if version == "2.8" else set())
        assert hazard.empty == (version == "3.0")
    finally:
        server.stop()


def test_cli_gc_preview_exits_3_only_when_the_collector_would_break_images(filled, capsys,
                                                                         version):
    from reginsight._cli import main

    root = str(filled[0].storage)
    assert main(["gc-preview", root, "--no-progress"]) == 0
    plain = capsys.readouterr().out
    assert "garbage-collect would delete 4 blobs" in plain and "BREAK" not in plain
    assert "the same on Distribution 2.x and 3.x" in plain
    # not told which collector: both, where they differ, and how to choose
    assert main(["gc-preview", root, "--delete-untagged", "--no-progress"]) == 3
    both = capsys.readouterr().out
    assert "Distribution 2.x garbage-collect --delete-untagged would delete 13 blobs" in both
    assert "Distribution 3.x garbage-collect --delete-untagged would delete 10 blobs" in both
    assert "it would BREAK 1 image " in both and "--collector 2 or --collector 3" in both
    number = version[0]
    told = main(["gc-preview", root, "--delete-untagged", "--collector", number,
                 "--no-progress"])
    out = capsys.readouterr().out
    assert "--collector 2 or" not in out and f"Distribution {number}.x" in out
    if version == "2.8":
        assert told == 3 and "s/multi:v1" in out
        assert f"reginsight cleanup URL --untagged --storage {root} --collector 2" in out
    else:
        assert told == 0 and "BREAK" not in out
    assert main(["gc-preview", str(filled[0].workdir), "--no-progress"]) == 1
    assert "not a registry storage" in capsys.readouterr().err
    assert main(["gc-preview", root, "--storage-option", "novalue"]) == 2
    with pytest.raises(SystemExit) as refused:
        main(["gc-preview", root, "--collector", "4"])
    assert refused.value.code == 2


def test_report_and_explorer_on_a_storage_root_show_the_disk(filled, scanned, tmp_path,
                                                             version):
    from reginsight._cli import main
    from reginsight.present._report import render_report

    page = render_report(scanned, plots=False)
    usage = ri.disk_usage(scanned).set_index("category")["bytes"]
    assert "Where the disk goes" in page and "storage read" in page
    for category in ("tagged", "untagged", "unreferenced", "uploads"):
        assert ri.format_bytes(int(usage[category])) in page
    # not told which version: each collector, named, where they differ
    assert "Images Distribution 2.x --delete-untagged would break (1)" in page
    assert "s/multi:v1" in page and "Distribution 3.x" in page
    assert "does not say which version runs" in page
    output = tmp_path / "r.html"
    number = version[0]
    assert main(["report", str(filled[0].storage), "-o", str(output), "--no-progress",
                 "--collector", number]) == 0
    told = output.read_text()
    assert "Where the disk goes" in told and f"modelled on Distribution {number}.x" in told
    assert ("would break (1)" in told) == (version == "2.8")

    explorer = ri.explore(scanned)
    explorer.select("s/app")
    untagged = [value for value in explorer.browse.tag_choices if value.startswith("@")]
    assert len(untagged) == 2
    explorer.select("s/app", untagged[0])
    pane = explorer.browse.manifest.value
    assert "(untagged)" in pane and untagged[0][1:] in pane
    disk = explorer.disk.value
    assert "where the disk goes" in disk and "s/multi:v1" in disk
    assert "Distribution 2.x: garbage-collect" in disk and "Distribution 3.x: " in disk


def test_plan_frees_from_a_scan_is_the_collector_model_per_part(scanned):
    plan = ri.plan_cleanup(scanned, keep_last=0, untagged=True, now=scanned.taken_at)
    doomed = plan[plan["action"] == "delete"]
    assert len(doomed) and doomed["tag"].isna().any()  # tags and untagged manifests
    by_digest, by_repository = ri.plan_frees(scanned, plan, most=2)
    computed = by_digest[by_digest["frees"].notna()]
    assert len(computed) == 2 and by_digest["frees"].isna().sum() == len(by_digest) - 2
    for row in computed.itertuples():
        part = doomed[(doomed["repository"] == row.repository)
                      & (doomed["digest"] == row.digest)]
        assert row.frees == ri.reclaimable(scanned, part)
    assert by_repository["frees"].notna().sum() == min(2, len(by_repository))
    for row in by_repository.dropna().itertuples():
        assert row.frees == ri.reclaimable(scanned, doomed[doomed["repository"]
                                                           == row.repository])


def test_out_of_core_figures_equal_pandas_on_a_storage_scan(scanned, tmp_path):
    """Untagged revisions, unreferenced blobs, uploads: DuckDB's disk_usage and what
    a cleanup frees (the collector model) equal pandas'."""
    lazy = assert_same_out_of_core(scanned, tmp_path / "saved")
    assert lazy.from_storage and ri.disk_usage(lazy)["bytes"].sum() > 0
