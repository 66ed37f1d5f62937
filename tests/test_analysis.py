"""Analysis on a hand-built inventory whose every figure is worked out below."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

import reginsight as ri
from reginsight.inventory._frames import build, with_tag_images
from tests.outofcore import assert_same_out_of_core

L1, L2, L3, L4, L5 = (f"sha256:{c * 64}" for c in "12345")
C1, C2, C3, C4 = (f"sha256:{c * 64}" for c in "6789")
MX, MY, MZ, MW, IX = (f"sha256:{c * 64}" for c in "abcde")
SIZES = {L1: 100, L2: 10, L3: 20, L4: 30, L5: 40, C1: 1, C2: 2, C3: 3, C4: 4,
         MX: 500, MY: 501, MZ: 502, MW: 503, IX: 600}
IMG = "application/vnd.oci.image.manifest.v1+json"


def inventory() -> ri.Inventory:
    """a: x and x2 -> MX (L1 L2 C1), y -> MY (L1 L3 C2).
    b: z -> MZ (L1 L4 C3), multi -> IX = [MZ, MW (L1 L5 C4)]."""
    images = {MX: ("a", [L1, L2], C1, "2026-01-01"), MY: ("a", [L1, L3], C2, "2026-06-01"),
              MZ: ("b", [L1, L4], C3, "2025-01-01"), MW: ("b", [L1, L5], C4, "2025-02-01")}
    manifests = [(repo, d, IMG, "image", IX if d in (MZ, MW) else None, "linux", "amd64", None,
                  config, f"{day}T00:00:00Z", SIZES[config] + sum(SIZES[x] for x in layers),
                  len(layers), SIZES[d], "image", None, None, None)
                 for d, (repo, layers, config, day) in images.items()]
    manifests.append(("b", IX, "application/vnd.oci.image.index.v1+json", "index", None, None,
                      None, None, None, None, 177, 2, SIZES[IX], "index", None, None, None))
    layers = [(repo, d, i, layer, SIZES[layer], "application/vnd.oci.image.layer.v1.tar+gzip")
              for d, (repo, ls, _, _) in images.items() for i, layer in enumerate(ls)]
    kinds = {**dict.fromkeys([L1, L2, L3, L4, L5], "layer"),
             **dict.fromkeys([C1, C2, C3, C4], "config"),
             **dict.fromkeys([MX, MY, MZ, MW, IX], "manifest")}
    tags = [("a", "x", MX, IMG), ("a", "x2", MX, IMG), ("a", "y", MY, IMG), ("b", "z", MZ, IMG),
            ("b", "multi", IX, "application/vnd.oci.image.index.v1+json")]
    manifests = build("manifests", manifests)
    children = build("children", [("b", IX, 0, MZ, IMG, "linux", "amd64", None, None),
                                  ("b", IX, 1, MW, IMG, "linux", "arm64", None, None)])
    return ri.Inventory(
        registry="http://example.test", taken_at=pd.Timestamp("2026-11-27", tz="UTC"),
        tags=with_tag_images(build("tags", [(*t, None, None) for t in tags]), manifests,
                             children),
        manifests=manifests,
        layers=build("layers", layers),
        blobs=build("blobs", [(d, SIZES[d], kinds[d], 1, 1, None) for d in SIZES]),
        children=children,
        errors=build("errors", []),
    )


def test_summary():
    inv = inventory()
    s = ri.storage_summary(inv)
    # image bytes: x 111, x2 111, y 122, z 133, multi (L1 L4 C3 L5 C4) 177
    assert s["logical_bytes"] == 654
    assert s["stored_bytes"] == 210  # every layer and config once
    assert s.attrs["dedup_ratio"] == pytest.approx(654 / 210)
    assert (s["repositories"], s["tags"], s["manifests"], s["stored_blobs"]) == (2, 5, 5, 9)
    assert s.dtype == "int64"  # numbers, exact, not objects
    assert list(s.index) == ["repositories", "tags", "manifests", "stored_blobs",
                             "logical_bytes", "stored_bytes"]
    # one name, one number: what Inventory.summary shares with it is the same figure
    counts = inv.summary()
    shared = set(counts) & set(s.index)
    assert shared == {"repositories", "tags"}
    assert all(counts[name] == s[name] for name in shared)
    assert (counts["blobs"], counts["blob_bytes"]) == (14, sum(SIZES.values()))


def test_a_repository_the_crawl_read_without_tags_counts_in_both_summaries():
    base = inventory()
    names = [*base.tags["repository"].astype(str).unique(), "emptied/app"]
    inv = ri.Inventory(registry=base.registry, taken_at=base.taken_at, repositories=names,
                       **dict(base.frames()))
    assert inv.repository_names() == set(names)
    assert ri.storage_summary(inv)["repositories"] == inv.summary()["repositories"] == 3


def test_tags_carry_their_image_time_and_bytes():
    tags = inventory().tags.set_index("tag")
    assert list(tags.columns[-2:]) == ["created", "size"]
    assert tags.loc["x", "created"] == pd.Timestamp("2026-01-01", tz="UTC")
    assert tags.loc["x2", "size"] == tags.loc["x", "size"] == 111
    # the index: its newest image's time (MW, 2025-02-01) and its own size
    assert tags.loc["multi", "created"] == pd.Timestamp("2025-02-01", tz="UTC")
    assert tags.loc["multi", "size"] == 177
    assert (ri.image_ages(inventory())["tag"].tolist()
            == ["x", "x2", "y", "multi", "z"])
    # an Inventory made from tags with only the four pinned columns derives the two
    inv = inventory()
    frames = {name: frame for name, frame in inv.frames()}
    frames["tags"] = frames["tags"][["repository", "tag", "digest", "media_type"]]
    made = ri.Inventory(registry=inv.registry, taken_at=inv.taken_at, **frames)
    pd.testing.assert_frame_equal(made.tags, inv.tags)


def test_tag_times_follow_nested_indexes_and_end_on_loops():
    """An index of an index takes the newest image below it at any depth; indexes
    listing each other end; a tag whose manifest is no row gets NaT/NA."""
    inv = inventory()
    top, loop_a, loop_b = (f"sha256:{c * 64}" for c in "fgh")
    index = "application/vnd.oci.image.index.v1+json"
    manifests = pd.concat([inv.manifests, build("manifests", [
        ("b", d, index, "index", None, None, None, None, None, None, 300, None, 100,
         "index", None, None, None) for d in (top, loop_a, loop_b)])], ignore_index=True)
    children = build("children", [
        *[tuple(row) for row in inv.children.itertuples(index=False)],
        ("b", top, 0, IX, index, None, None, None, None),
        ("b", loop_a, 0, loop_b, index, None, None, None, None),
        ("b", loop_b, 0, loop_a, index, None, None, None, None),
        ("b", loop_b, 1, MY, IMG, None, None, None, None)])  # MY is in "a": not reached
    tags = build("tags", [("b", "top", top, index, None, None),
                          ("b", "loop", loop_a, index, None, None),
                          ("b", "gone", f"sha256:{'0' * 64}", IMG, None, None)])
    tags = with_tag_images(tags, manifests, children).set_index("tag")
    assert tags.loc["top", "created"] == pd.Timestamp("2025-02-01", tz="UTC")
    assert pd.isna(tags.loc["loop", "created"]) and pd.isna(tags.loc["gone", "created"])
    assert pd.isna(tags.loc["gone", "size"]) and tags.loc["top", "size"] == 300


def test_by_repository():
    frame = ri.storage_by_repository(inventory()).set_index("repository")
    a, b = frame.loc["a"], frame.loc["b"]
    assert (a["tags"], a["manifests"], a["logical_bytes"]) == (3, 2, 344)
    assert (a["stored_bytes"], a["exclusive_bytes"], a["shared_bytes"]) == (133, 33, 100)
    assert (b["stored_bytes"], b["exclusive_bytes"], b["shared_bytes"]) == (177, 77, 100)
    assert list(frame.index) == ["b", "a"]  # largest stored first
    assert str(frame.index.dtype) == "string" and str(frame["stored_bytes"].dtype) == "int64"


def test_layer_sharing():
    frame = ri.layer_sharing(inventory()).set_index("digest")
    base = frame.loc[L1]
    assert (base["repositories"], base["manifests"], base["tags"]) == (2, 4, 5)
    assert base["bytes_saved"] == 300 and base["kind"] == "layer"
    assert frame.loc[C4, "kind"] == "config" and frame.loc[C4, "bytes_saved"] == 0
    assert frame.index[0] == L1  # most saved first


def test_sharing_matrix():
    matrix = ri.sharing_matrix(inventory())
    assert matrix.loc["a", "b"] == matrix.loc["b", "a"] == 100
    assert matrix.loc["a", "a"] == 133 and matrix.loc["b", "b"] == 177
    assert list(ri.sharing_matrix(inventory(), top=1).index) == ["b"]


def test_tag_blobs():
    frame = ri.tag_blobs(inventory())
    multi = frame[frame["tag"] == "multi"]
    assert set(multi["digest"]) == {L1, L4, C3, L5, C4} and multi["size"].sum() == 177


def test_reclaimable_of_a_shared_digest_counts_both_tags_gone():
    blobs = ri.reclaimable_blobs(inventory(), [("a", "x")])
    assert set(blobs["digest"]) == {MX, L2, C1}  # L1 is still reached by y and b
    assert ri.reclaimable(inventory(), [("a", "x")]) == 500 + 10 + 1


def test_reclaimable_of_an_index_takes_unreached_children():
    # z still tags MZ: only the index and MW (with L5, C4) go
    freed = ri.reclaimable_blobs(inventory(), pd.DataFrame({"repository": ["b"],
                                                            "tag": ["multi"]}))
    assert set(freed["digest"]) == {IX, MW, L5, C4}
    assert ri.reclaimable(inventory(), [("b", "multi"), ("b", "z")]) == (
        600 + 503 + 502 + 40 + 4 + 30 + 3)
    assert ri.reclaimable(inventory(), []) == 0


def test_plan_keeps_shared_digests_indexes_and_protected_tags():
    plan = ri.plan_cleanup(inventory(), keep_last=1).set_index(["repository", "tag"])
    assert plan.loc[("a", "y"), "action"] == "keep"  # the newest image of a
    assert plan.loc[("a", "x"), "action"] == plan.loc[("a", "x2"), "action"] == "delete"
    assert plan.loc[("b", "multi"), "action"] == "keep"  # index: its newest child, 2025-02
    z = plan.loc[("b", "z")]
    assert z["action"] == "keep" and z["reason"] == "referenced by kept index multi"
    assert plan.attrs["reclaimable_bytes"] == ri.reclaimable(inventory(), [("a", "x")])

    protected = ri.plan_cleanup(inventory(), keep_last=1, protect=["a:x2"]).set_index(
        ["repository", "tag"])
    assert protected.loc[("a", "x2"), "reason"] == "protected"
    assert protected.loc[("a", "x"), "action"] == "keep"
    assert protected.loc[("a", "x"), "reason"] == "shares its digest with kept tag x2"
    assert protected.attrs["reclaimable_bytes"] == 0


def test_plan_age_rule_scope_and_errors():
    now = pd.Timestamp("2026-07-01", tz="UTC")
    plan = ri.plan_cleanup(inventory(), older_than="90d", now=now, repositories="a")
    as_timedelta = ri.plan_cleanup(inventory(), older_than=pd.Timedelta(days=90), now=now,
                                   repositories="a")
    assert as_timedelta["action"].equals(plan["action"])
    assert set(plan["repository"]) == {"a"}
    by_tag = plan.set_index("tag")
    assert by_tag.loc["x", "action"] == "delete" and by_tag.loc["y", "action"] == "keep"
    assert by_tag.loc["y", "reason"] == "newer than 90d"
    nothing = ri.plan_cleanup(inventory())
    assert set(nothing["action"]) == {"keep"} and set(nothing["reason"]) == {"no rule given"}
    assert list(plan.columns) == ["repository", "tag", "digest", "created", "action", "reason"]
    for unclear in ("soon", "90", 90, "99999999999d", "-3d", "0d"):
        with pytest.raises(ri.PlanError):  # "90" would be 90 ns to pandas
            ri.plan_cleanup(inventory(), older_than=unclear)
    naive = ri.plan_cleanup(inventory(), older_than="90d", now=pd.Timestamp("2026-07-01"))
    assert naive.equals(ri.plan_cleanup(inventory(), older_than="90d", now=now))
    with pytest.raises(ri.PlanError):
        ri.plan_cleanup(inventory(), keep_last=-1)
    with pytest.raises(ri.PlanError):
        ri.plan_cleanup(inventory(), keep_last=1, protect="(")


def test_a_partial_inventory_warns_that_reclaimable_is_an_upper_bound():
    inv = inventory()
    assert inv.complete
    inv.scope = "a"
    with pytest.warns(ri.PartialInventoryWarning, match="covers a"):
        ri.reclaimable(inv, [("a", "x")])


def test_analysis_cache_follows_frame_reassignment():
    inv = inventory()
    assert ri.storage_summary(inv)["tags"] == 5
    inv.tags = inv.tags[inv.tags["repository"] == "a"].reset_index(drop=True)
    assert ri.storage_summary(inv)["logical_bytes"] == 344


def test_a_size_known_anywhere_is_used_everywhere():
    """The same layer in three manifests, its size unknown in two (a schema1 HEAD
    that failed): the known size counts, not the last one written."""
    inv = inventory()
    layers = inv.layers.copy()
    layers["size"] = layers["size"].astype("Int64")
    first_base = layers.index[layers["digest"] == L1]
    layers.loc[first_base[[0, 1, 3]], "size"] = pd.NA  # known only in the third
    blobs = inv.blobs.copy()
    blobs.loc[blobs["digest"] == L1, "size"] = pd.NA  # as an older crawl recorded it
    inv.layers, inv.blobs = layers, blobs
    assert ri.storage_summary(inv)["stored_bytes"] == 210


def test_bad_tag_selections_and_plans_are_plan_errors():
    with pytest.raises(ri.PlanError):
        ri.reclaimable(inventory(), pd.DataFrame({"repo": ["a"]}))
    with pytest.raises(ri.PlanError):
        ri.reclaimable(inventory(), [("a", "x", "extra")])
    with pytest.raises(ri.PlanError):
        ri.apply_cleanup(None, pd.DataFrame({"tag": ["x"]}))


def _partial(inv: ri.Inventory) -> ri.Inventory:
    frames = dict(inv.frames())
    frames["errors"] = build("errors", [("b", "multi", "manifest", "NotFound: gone")])
    return ri.Inventory(registry=inv.registry, taken_at=inv.taken_at, scope="b", **frames)


@pytest.mark.parametrize("shape", ["hand-made", "partial", "sample", "synthetic"])
def test_out_of_core_figures_equal_pandas(shape, tmp_path):
    from benchmarks.synthetic import synthetic_inventory

    inv = {"hand-made": inventory, "partial": lambda: _partial(inventory()),
           "sample": lambda: ri.Inventory.load(ri.__path__[0] + "/sample"),
           "synthetic": lambda: synthetic_inventory(repositories=40, manifests=400,
                                                    layer_rows=4000)}[shape]()
    assert_same_out_of_core(inv, tmp_path / "saved")


def test_a_lazy_inventory_names_what_it_cannot_do(tmp_path):
    inventory().save(tmp_path)
    lazy = ri.Inventory.open(tmp_path, memory_limit="1GB", threads=1)
    with pytest.raises(ri.InventoryError, match="on disk"):
        _ = lazy.tags
    with pytest.raises(ri.InventoryError, match="storage"):
        ri.disk_usage(lazy)
    assert lazy.sql("SELECT count(*) AS n FROM layers").df()["n"].iloc[0] == len(
        inventory().layers)
    assert "5 tags" in repr(lazy)


def test_an_inventory_saved_in_format_1_opens_out_of_core():
    """The bundled sample is format 1 (one file per frame): DuckDB reads it as it is."""
    path = ri.__path__[0] + "/sample"
    assert json.loads((Path(path) / "inventory.json").read_text())["version"] == 1
    inv, lazy = ri.Inventory.load(path), ri.Inventory.open(path)
    pdt.assert_series_equal(ri.storage_summary(inv), ri.storage_summary(lazy))
    pdt.assert_frame_equal(ri.layer_sharing(inv), ri.layer_sharing(lazy))
    pdt.assert_frame_equal(ri.reclaimable_blobs(inv, inv.tags.head(3)),
                           ri.reclaimable_blobs(lazy, inv.tags.head(3)))


def test_a_collision_of_digest_ids_is_found_and_salted_away(tmp_path, monkeypatch):
    """Unsalted, every name gets id 0; the check sees it and the salted ids give
    pandas' figures."""
    from reginsight.analysis import _outofcore

    monkeypatch.setattr(_outofcore, "_ID", "hash(x{suffix}) * ({salt} > 0)::UBIGINT")
    assert_same_out_of_core(inventory(), tmp_path / "saved")
