"""An inventory on disk as a Parquet dataset: what other engines read, what survives a
save that fails, and the shapes that have no rows."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pandas.testing as pdt
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

import reginsight as ri
from reginsight.inventory import _replace
from reginsight.inventory._frames import build
from tests.outofcore import assert_same_out_of_core
from tests.test_analysis import inventory


def _renamed(inv: ri.Inventory, old: str, new: str) -> ri.Inventory:
    frames = {}
    for name, frame in inv.frames():
        frame = frame.copy()
        if "repository" in frame and len(frame):
            frame["repository"] = frame["repository"].cat.rename_categories(
                lambda c: new if c == old else c)
        frames[name] = frame
    return ri.Inventory(registry=inv.registry, taken_at=inv.taken_at, **frames)


def test_other_engines_read_the_saved_dataset(tmp_path):
    """A repository named like a number stays text; names with a slash are decoded."""
    inv = _renamed(_renamed(inventory(), "a", "007"), "b", "team/app")
    inv.save(tmp_path)
    assert (tmp_path / "tags" / "repository=team%2Fapp").is_dir()
    text = ds.partitioning(pa.schema([("repository", pa.string())]), flavor="hive")
    layers = ds.dataset(tmp_path / "layers", partitioning=text).to_table().to_pandas()
    assert sorted(layers["repository"].unique()) == ["007", "team/app"]
    tags = duckdb.sql(
        "SELECT repository, tag FROM read_parquet($path, hive_partitioning = true, "
        "hive_types = {'repository': VARCHAR}) ORDER BY ALL",
        params={"path": f"{tmp_path}/tags/**/*.parquet"}).fetchall()
    assert tags == sorted(zip(inv.tags["repository"].astype(str), inv.tags["tag"].astype(str),
                              strict=True))
    # a frame without rows is one file with every column, for every reader
    errors = duckdb.sql("SELECT * FROM read_parquet($path)",
                        params={"path": f"{tmp_path}/errors/**/*.parquet"})
    assert errors.columns == list(inv.errors.columns) and len(errors.fetchall()) == 0
    meta = json.loads((tmp_path / "inventory.json").read_text())
    assert meta["version"] == 2 and meta["frames"]["layers"]["rows"] == len(inv.layers)
    loaded = ri.Inventory.load(tmp_path)
    for (name, a), (_, b) in zip(inv.frames(), loaded.frames(), strict=True):
        pdt.assert_frame_equal(a, b, obj=name)


def test_a_storage_scan_without_manifests_keeps_its_storage_columns(tmp_path):
    """Only unreferenced blobs and an upload: no manifest row, yet the scan's columns
    (manifests.tagged, blobs.on_disk) come back, so the disk figures still work."""
    digests = [f"sha256:{c * 64}" for c in "12"]
    blobs = build("blobs", [(d, 100 * (i + 1), None, 0, 0, None)
                            for i, d in enumerate(digests)])
    blobs["on_disk"] = True
    manifests = build("manifests", [])
    manifests["tagged"] = pd.Series(dtype=bool)
    frames = {name: build(name, []) for name in ("tags", "layers", "children", "errors",
                                                  "tag_history", "layer_links")}
    scan = ri.Inventory(registry="/srv/registry", taken_at=pd.Timestamp("2026-11-27", tz="UTC"),
                        manifests=manifests, blobs=blobs,
                        uploads=build("uploads", [("app", "u1", "2026-11-01T00:00:00Z", 7)]),
                        **frames)
    lazy = assert_same_out_of_core(scan, tmp_path / "scan")
    assert ri.Inventory.load(tmp_path / "scan").from_storage and lazy.from_storage
    usage = ri.disk_usage(lazy).set_index("category")
    assert usage.loc["unreferenced", "bytes"] == 300 and usage.loc["uploads", "bytes"] == 7


def test_a_save_that_fails_midway_leaves_the_earlier_one(tmp_path, monkeypatch):
    first = inventory()
    first.save(tmp_path)
    second = _renamed(first, "a", "other")
    calls = {"n": 0}
    real_replace = _replace.os.replace

    def failing(src, dst):
        calls["n"] += 1
        if calls["n"] == 14:  # the old entries moved aside, half the new ones in
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(_replace.os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        second.save(tmp_path)
    monkeypatch.undo()
    assert calls["n"] > 14  # after the failure, the earlier entries went back
    loaded = ri.Inventory.load(tmp_path)
    pdt.assert_frame_equal(loaded.tags, first.tags)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    second.save(tmp_path)  # and the next save goes through
    assert set(ri.Inventory.load(tmp_path).tags["repository"]) == {"other", "b"}


def test_files_that_differ_from_inventory_json_are_refused(tmp_path):
    inventory().save(tmp_path)
    next((tmp_path / "layers").glob("repository=a/*.parquet")).unlink()
    with pytest.raises(ri.InventoryError, match=r"rows where inventory\.json says"):
        ri.Inventory.load(tmp_path)


def test_a_path_with_glob_characters_opens(tmp_path):
    assert_same_out_of_core(inventory(), tmp_path / "inventories[1]*")


@pytest.mark.parametrize("blobs", ["one missing", "one repeated"])
def test_layer_names_come_from_the_layers_when_blobs_lacks_or_repeats_one(blobs, tmp_path):
    inv = inventory()
    frames = dict(inv.frames())
    rows = frames["blobs"]
    frames["blobs"] = (rows.iloc[1:] if blobs == "one missing"
                       else pd.concat([rows, rows.iloc[:1]], ignore_index=True))
    assert_same_out_of_core(ri.Inventory(registry=inv.registry, taken_at=inv.taken_at,
                                         **frames), tmp_path / "saved")
