"""Saving never deletes what reginsight did not write, and no repository name the
registry accepts is unsavable (a name too long for a folder gets a short form)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

import reginsight as ri
from reginsight.inventory import _dataset, _inventory, _replace
from reginsight.inventory._frames import build, tidy
from tests.outofcore import assert_same_out_of_core
from tests.saved import save_version_1
from tests.test_analysis import inventory

#: 128 components, 255 characters: the longest name Distribution accepts
DEEP = "/".join(["a"] * 128)
#: two long components, 255 characters with the slash
WIDE = "x" * 200 + "/" + "y" * 54


def _snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``, hidden ones too: a file's bytes, a link's target, a
    folder as None. Links are not followed."""
    seen: dict[str, object] = {}
    for top, folders, names in os.walk(root):
        for name in folders + names:
            path = Path(top) / name
            key = str(path.relative_to(root))
            seen[key] = (os.readlink(path) if path.is_symlink()
                         else None if path.is_dir() else path.read_bytes())
    return seen


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def _renamed(inv: ri.Inventory, old: str, new: str) -> ri.Inventory:
    """``inv`` with repository ``old`` named ``new``, categories sorted and rows in
    order as a crawl makes them (so a loaded copy compares equal)."""
    frames = {}
    for name, frame in inv.frames():
        frame = frame.copy()
        if "repository" in frame:
            names = frame["repository"].cat.rename_categories(
                lambda c: new if c == old else c)
            frame["repository"] = names.cat.reorder_categories(sorted(names.cat.categories))
        frames[name] = tidy(name, frame)
    return ri.Inventory(registry=inv.registry, taken_at=inv.taken_at, **frames)


def _long_named(first: str = DEEP, second: str = WIDE) -> ri.Inventory:
    """inventory() with repositories a and b renamed, and a storage scan's frames (one
    row each, in the first repository), so every partitioned frame holds the names."""
    inv = _renamed(_renamed(inventory(), "a", first), "b", second)
    frames = dict(inv.frames())
    digest = inv.tags["digest"].iloc[0]
    frames["uploads"] = build("uploads", [(first, "u1", "2026-11-01T00:00:00Z", 7)])
    frames["tag_history"] = build("tag_history", [(first, "x", digest, True,
                                                   "2026-11-01T00:00:00Z")])
    frames["layer_links"] = build("layer_links", [(first, digest)])
    return ri.Inventory(registry=inv.registry, taken_at=inv.taken_at,
                        repositories=[first, second], **frames)


def _assert_same(a: ri.Inventory, b: ri.Inventory) -> None:
    for (name, x), (_, y) in zip(a.frames(), b.frames(), strict=True):
        pdt.assert_frame_equal(x, y, obj=name)
    assert a.repositories == b.repositories


# ------------------------------------------------------------- what save may replace


@pytest.mark.parametrize("files", [
    {"tags/release-notes.txt": "notes", "inventory.json": '{"mine": 1}'},
    {"inventory.json": '{"mine": 1}'},
    {"inventory.json": '{"format": "reginsight-inventory", "version": 3}'},
    {"notes.txt": "mine"},
    {"tags/part-0-0.parquet": "not ours: no inventory.json says so"},
], ids=["notes-in-tags", "foreign-inventory-json", "unknown-version", "a-file",
        "frame-like-folder"])
def test_a_folder_that_holds_no_inventory_is_refused_and_left_as_it_was(tmp_path, files):
    target = tmp_path / "proj"
    _write(target, files)
    before = _snapshot(target)
    with pytest.raises(ri.InventoryError, match="empty or new folder") as refused:
        inventory().save(target)
    assert str(target) in str(refused.value)
    assert _snapshot(target) == before  # nothing removed, nothing created (no staging)
    with pytest.raises(ri.InventoryError):  # the check the CLI runs before a crawl
        _replace.check_save_target(target)


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / "proj").write_text("mine")
    with pytest.raises(ri.InventoryError, match="not a folder"):
        inventory().save(tmp_path / "proj")
    assert (tmp_path / "proj").read_text() == "mine"


def test_an_empty_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Path("") is the working directory
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ri.InventoryError, match="empty path"):
        inventory().save("")
    with pytest.raises(ri.InventoryError, match="empty path"):
        _replace.check_save_target("")
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("planted", [
    "tags/notes.txt", "tags/repository=a/notes.txt", "blobs/sub/part-0-0.parquet",
    "manifests/repository=a/part-0-0.csv", "tags.parquet (format 1)", "link"])
def test_a_users_file_inside_an_earlier_inventory_is_refused(tmp_path, planted):
    if planted == "tags.parquet (format 1)":  # a folder where format 1 had a file
        save_version_1(inventory(), tmp_path)
        (tmp_path / "tags.parquet").unlink()
        _write(tmp_path, {"tags.parquet/notes.txt": "mine"})
    else:
        inventory().save(tmp_path)
        if planted == "link":  # a frame's folder replaced by a link to the user's files
            (tmp_path / "elsewhere").mkdir()
            (tmp_path / "elsewhere" / "keep.txt").write_text("mine")
            (tmp_path / "children").rename(tmp_path / "old-children")
            (tmp_path / "children").symlink_to(tmp_path / "elsewhere")
        else:
            _write(tmp_path, {planted: "mine"})
    before = _snapshot(tmp_path)
    with pytest.raises(ri.InventoryError, match="did not write"):
        _renamed(inventory(), "a", "other").save(tmp_path)
    assert _snapshot(tmp_path) == before


def test_a_file_put_among_the_earlier_inventorys_while_saving_is_refused(tmp_path,
                                                                         monkeypatch):
    """The folder is checked again before the swap: writing a big inventory takes a
    while, and the user may have put a file into the earlier one meanwhile."""
    inventory().save(tmp_path)
    real = _inventory.write_frame

    def writing(directory, name, frame, **options):
        if name == "blobs":
            (tmp_path / "tags" / "notes.txt").write_text("mine")
        return real(directory, name, frame, **options)

    monkeypatch.setattr(_inventory, "write_frame", writing)
    with pytest.raises(ri.InventoryError, match="did not write"):
        _renamed(inventory(), "a", "other").save(tmp_path)
    assert (tmp_path / "tags" / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging gone
    _assert_same(ri.Inventory.load(tmp_path), inventory())


def test_an_earlier_inventory_is_replaced_and_the_files_beside_it_kept(tmp_path):
    inventory().save(tmp_path)
    beside = {"notes.ipynb": "{}", "mine/x.txt": "mine",
              "tags.parquet": "the user's export: format 2 writes no such file",
              ".staging-x": "not a name mkdtemp makes"}
    _write(tmp_path, beside)
    (tmp_path / ".replaced-abcd1234").mkdir()  # an interrupted save's: ours
    second = _renamed(inventory(), "a", "other")
    second.save(tmp_path)
    _assert_same(ri.Inventory.load(tmp_path), second)
    for relative, text in beside.items():
        assert (tmp_path / relative).read_text() == text
    assert not (tmp_path / ".replaced-abcd1234").exists()


def test_a_format_1_inventory_is_replaced_whole(tmp_path):
    save_version_1(inventory(), tmp_path)
    (tmp_path / "notes.ipynb").write_text("{}")
    inventory().save(tmp_path)
    assert not list(tmp_path.glob("*.parquet"))  # format 1's files: ours, gone
    assert (tmp_path / "notes.ipynb").read_text() == "{}"
    assert json.loads((tmp_path / "inventory.json").read_text())["version"] == 2


@pytest.mark.parametrize("earlier", [2, 1, None])
def test_what_an_interrupted_save_left_is_saved_over(tmp_path, earlier):
    """A save stopped mid-swap (the process killed) leaves the frames without an
    inventory.json, the earlier entries in a .replaced- folder: ours, replaced; the
    user's files beside them stay."""
    beside = {"notes.ipynb": "{}"} if earlier else {}
    if earlier == 1:
        save_version_1(inventory(), tmp_path)
    else:
        inventory().save(tmp_path)
    aside = tmp_path / ".replaced-abcd1234"
    aside.mkdir()
    (tmp_path / "inventory.json").rename(aside / "inventory.json")
    if earlier == 2:
        (tmp_path / "tags").rename(aside / "tags")
    if earlier is None:  # a first save into an empty folder: nothing was replaced
        _replace._remove(aside)
    (tmp_path / ".staging-abcd1234").mkdir()
    _write(tmp_path, beside)
    inventory().save(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(["inventory.json", *beside,
                                                   *dict(inventory().frames())])
    _assert_same(ri.Inventory.load(tmp_path), inventory())


def test_a_folder_holding_only_leftovers_counts_as_empty(tmp_path):
    (tmp_path / ".staging-abcd1234" / "tags").mkdir(parents=True)
    (tmp_path / ".replaced-abcd1234").mkdir()
    assert _replace.check_save_target(tmp_path) == tmp_path
    assert _replace.check_save_target(tmp_path / "new" / "folder") == tmp_path / "new" / "folder"
    assert not (tmp_path / "new").exists()  # the check creates nothing
    inventory().save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------- long names


@pytest.mark.parametrize(("first", "second"), [
    (DEEP, WIDE), ("b" * 255, "~not-a-registry-name")], ids=["deep-and-wide", "long-and-tilde"])
def test_a_name_too_long_for_a_folder_round_trips(tmp_path, first, second):
    inv = _long_named(first, second)
    assert len(first) == 255
    lazy = assert_same_out_of_core(inv, tmp_path / "saved")
    _assert_same(ri.Inventory.load(tmp_path / "saved"), inv)
    assert sorted(ri.storage_by_repository(lazy)["repository"]) == sorted([first, second])
    assert set(lazy.sql("SELECT DISTINCT repository FROM uploads").df()["repository"]) == {
        first}
    folders = {p.name for p in (tmp_path / "saved").glob("*/repository=*")}
    assert max(len(os.fsencode(name)) for name in folders) <= 200
    meta = json.loads((tmp_path / "saved" / "inventory.json").read_text())
    assert sorted(meta["partition_names"].values()) == sorted([first, second])
    for short in meta["partition_names"]:  # the short form: ~ and the name's sha256
        assert short.startswith("~") and len(short) == 65
        assert f"repository={short}" in folders


def test_an_ordinary_name_is_saved_as_before(tmp_path):
    _renamed(inventory(), "b", "team/app").save(tmp_path)
    assert (tmp_path / "tags" / "repository=team%2Fapp").is_dir()
    assert (tmp_path / "tags" / "repository=a").is_dir()
    assert "partition_names" not in json.loads((tmp_path / "inventory.json").read_text())


def test_a_short_form_shared_by_two_names_is_refused_before_anything_is_touched(
        tmp_path, monkeypatch):
    inventory().save(tmp_path)
    before = _snapshot(tmp_path)
    monkeypatch.setattr(_dataset, "_fingerprint", lambda name: "0" * 64)
    with pytest.raises(ri.InventoryError, match="same short form"):
        _long_named().save(tmp_path)
    assert _snapshot(tmp_path) == before


def test_a_save_that_fails_while_writing_leaves_the_earlier_save_and_the_inventory(
        tmp_path, monkeypatch):
    inventory().save(tmp_path)
    before = _snapshot(tmp_path)
    inv = _long_named()
    frames = {name: frame.copy() for name, frame in inv.frames()}
    real = _inventory.write_frame

    def failing(directory, name, frame, **options):
        if name == "layers":
            raise OSError("disk full")
        return real(directory, name, frame, **options)

    monkeypatch.setattr(_inventory, "write_frame", failing)
    with pytest.raises(OSError, match="disk full"):
        inv.save(tmp_path)
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before
    for name, frame in inv.frames():
        pdt.assert_frame_equal(frame, frames[name], obj=name)
    inv.save(tmp_path)  # and the same inventory saves over the earlier one
    _assert_same(ri.Inventory.load(tmp_path), _long_named())


@pytest.mark.parametrize("damage", ["unnamed folder", "wrong name"])
def test_a_short_form_inventory_json_does_not_name_is_refused(tmp_path, damage):
    _long_named().save(tmp_path)
    meta = json.loads((tmp_path / "inventory.json").read_text())
    short = next(s for s, name in meta["partition_names"].items() if name == DEEP)
    if damage == "unnamed folder":
        del meta["partition_names"][short]
    else:
        meta["partition_names"][short] = "someone/else"
    (tmp_path / "inventory.json").write_text(json.dumps(meta))
    with pytest.raises(ri.InventoryError, match="partition"):
        ri.Inventory.load(tmp_path)
    with pytest.raises(ri.InventoryError, match="partition"):
        ri.Inventory.open(tmp_path)


def test_pandas_reads_a_short_form_back_with_the_mapping(tmp_path):
    """What the module docstring tells other engines: map the folder's value back
    through inventory.json's partition_names."""
    _long_named().save(tmp_path)
    names = json.loads((tmp_path / "inventory.json").read_text())["partition_names"]
    tags = pd.read_parquet(tmp_path / "tags")
    assert set(tags["repository"].astype(str).replace(names)) == {DEEP, WIDE}
