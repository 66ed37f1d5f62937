"""A saved inventory someone edited, truncated or planted: ``Inventory.load`` and
``Inventory.open`` either read it or raise InventoryError saying what is wrong —
never a TypeError, KeyError or DuckDB error from inside — and change nothing on disk.

The properties run over inventory.json (any JSON value in place of each field, whole
documents of any shape, any bytes) and over the Parquet files (a column of any type);
the examples below them pin the messages."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reginsight as ri
from reginsight.inventory import _dataset
from reginsight.inventory._frames import FRAME_NAMES
from tests.deep import nest, unnest
from tests.test_analysis import inventory

SAMPLE = Path(ri.__file__).resolve().parent / "sample"  # format 1, as shipped
FEW = settings(max_examples=100, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                               inner, max_size=4),
    max_leaves=12)
DELETE = object()
#: values near the valid ones, so that more examples go all the way through
PLAUSIBLE = st.sampled_from([None, "", "x", "repository", "reginsight-inventory", 0, 1, 2, 5,
                             -1, 2.0, True, [], ["a"], {}, {"rows": 0}, {"rows": 5},
                             "2026-01-01T00:00:00Z", "2026-01-01", DELETE])


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One inventory of each format, saved once for the module."""
    root = tmp_path_factory.mktemp("bases")
    inventory().save(root / "v2")
    shutil.copytree(SAMPLE, root / "v1")
    return {"v2": root / "v2", "v1": root / "v1"}


@pytest.fixture
def work(bases: dict[str, Path], tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A copy of each base for one test to damage."""
    yield {version: Path(shutil.copytree(base, tmp_path / version))
           for version, base in bases.items()}


def _snapshot(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry below ``directory``: size, mtime, and the bytes of inventory.json."""
    return {str(p.relative_to(directory)): (
        p.lstat().st_size, p.lstat().st_mtime_ns,
        p.read_bytes() if p.name == "inventory.json" and p.is_file() else b"")  # no FIFO
        for p in sorted(directory.rglob("*"))}


def _outcomes(directory: Path) -> tuple[str, str]:
    """What load and open do with ``directory``: "ok", or InventoryError's message.
    Anything else fails the test; and neither may change a file."""
    before = _snapshot(directory)
    outcomes = []
    for read in (ri.Inventory.load, _opened):
        try:
            read(directory)
        except ri.InventoryError as exc:
            assert str(exc)
            outcomes.append(str(exc))
        else:
            outcomes.append("ok")
    assert _snapshot(directory) == before, "a load or an open changed the saved inventory"
    return outcomes[0], outcomes[1]


def _opened(directory: Path) -> None:
    """Open, then query every frame (DuckDB meets some damage only then)."""
    with ri.Inventory.open(directory) as lazy:
        repr(lazy)
        ri.storage_summary(lazy)


def _edited(meta: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    meta = json.loads(json.dumps(meta))
    *parents, key = path
    inner = meta
    for part in parents:
        inner = inner[part]
    if value is DELETE:
        inner.pop(key, None)
    else:
        inner[key] = value
    return meta


FIELDS = [("format",), ("version",), ("registry",), ("taken_at",), ("scope",),
          ("repositories",), ("reginsight",), ("partitioned_by",), ("frames",),
          ("partition_names",), ("frames", "tags"), ("frames", "layers", "rows"),
          ("frames", "blobs", "partitioned"), ("frames", "errors", "rows")]


@pytest.mark.parametrize("version", ["v2", "v1"])
@FEW
@given(field=st.sampled_from(FIELDS), value=JSON | PLAUSIBLE)
def test_any_value_in_any_field_loads_or_is_an_inventory_error(bases, work, version, field,
                                                               value):
    directory = work[version]  # each example edits the base's inventory.json afresh
    meta = json.loads((bases[version] / "inventory.json").read_text())
    if version == "v1" and field[0] == "frames" and len(field) > 1:
        meta["frames"] = {name: {"rows": None} for name in FRAME_NAMES}  # one to damage
    (directory / "inventory.json").write_text(json.dumps(_edited(meta, field, value)))
    loaded, opened = _outcomes(directory)
    assert loaded == opened  # one check, the same verdict


@FEW
@given(document=JSON | st.dictionaries(
    st.sampled_from([f[0] for f in FIELDS] + ["other"]), JSON | PLAUSIBLE.filter(
        lambda v: v is not DELETE), max_size=10).map(
        lambda d: {"format": "reginsight-inventory", "version": 2, **d}))
def test_any_document_loads_or_is_an_inventory_error(work, document):
    (work["v2"] / "inventory.json").write_text(json.dumps(document))
    loaded, opened = _outcomes(work["v2"])
    assert loaded == opened


@FEW
@given(content=st.binary(max_size=200))
def test_any_bytes_are_an_inventory_error(work, content):
    (work["v2"] / "inventory.json").write_bytes(content)
    loaded, opened = _outcomes(work["v2"])
    assert loaded != "ok" and opened != "ok"


@FEW
@given(text=st.text(max_size=40) | st.datetimes().map(lambda t: t.isoformat())
       | st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()))
def test_taken_at_is_an_iso_time_in_utc_or_refused(bases, work, text):
    directory = work["v2"]
    meta = json.loads((bases["v2"] / "inventory.json").read_text())
    (directory / "inventory.json").write_text(json.dumps({**meta, "taken_at": text}))
    loaded, opened = _outcomes(directory)
    assert loaded == opened
    if loaded == "ok":
        taken = ri.Inventory.load(directory).taken_at
        assert str(taken.tz) == "UTC" and taken.unit == "ns"
    else:
        assert '"taken_at" must be an ISO timestamp string' in loaded


_UTC, _EARLY = UTC, datetime(1, 1, 1)
#: a column's replacement: a type, and values it may hold (None too)
ARROW_VALUES: dict[pa.DataType, list[Any]] = {
    pa.int8(): [0, -3, 127], pa.int64(): [0, 7, -1, 2**40], pa.uint64(): [0, 2**63],
    pa.float64(): [0.5, -1.0, 1e300, float("nan")], pa.bool_(): [True, False],
    pa.string(): ["", "x", "\x1b[2J", "sha256:" + "0" * 64], pa.large_string(): ["a"],
    pa.binary(): [b"\xff", b""], pa.null(): [], pa.date32(): [date(2020, 1, 1)],
    pa.timestamp("ns"): [datetime(2020, 1, 1)],
    pa.timestamp("us", tz="UTC"): [_EARLY.replace(tzinfo=_UTC), datetime(2020, 1, 1, tzinfo=_UTC)],
    pa.timestamp("s", tz="+05:00"): [datetime(2020, 1, 1, tzinfo=_UTC)],
    pa.list_(pa.int64()): [[1], []], pa.struct([("a", pa.int64())]): [{"a": 1}],
    pa.dictionary(pa.int32(), pa.string()): ["x", "y"],
}


@FEW
@given(data=st.data())
def test_a_column_of_any_type_loads_or_is_an_inventory_error(work, data):
    directory = work["v2"]
    files = sorted(p for p in directory.glob("*/**/*.parquet"))
    target = data.draw(st.sampled_from(files))
    original = target.read_bytes()
    table = pq.read_table(target, partitioning=None)
    column = data.draw(st.sampled_from(table.column_names))
    kind = data.draw(st.sampled_from(list(ARROW_VALUES)))
    values = data.draw(st.lists(st.sampled_from([*ARROW_VALUES[kind], None]),
                                min_size=len(table), max_size=len(table)))
    replaced = table.set_column(table.schema.get_field_index(column), column,
                                pa.array(values, type=kind))
    try:
        pq.write_table(replaced, target)
        _outcomes(directory)
    finally:
        target.write_bytes(original)


# ------------------------------------------------------------------ the messages


def _meta(directory: Path, **changes: Any) -> None:
    meta = json.loads((directory / "inventory.json").read_text())
    for key, value in changes.items():
        if value is DELETE:
            meta.pop(key)
        else:
            meta[key] = value
    (directory / "inventory.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("changes", "said"), [
    ({"taken_at": [1]}, '"taken_at" must be an ISO timestamp string, got a JSON array'),
    ({"taken_at": "now"}, '"taken_at" must be an ISO timestamp string, got the string "now"'),
    ({"taken_at": "0001-01-01"}, "outside 1678 to 2261"),
    ({"taken_at": DELETE}, '"taken_at" is missing'),
    ({"frames": "x"}, '"frames" must be an object with an entry per frame, got the string'),
    ({"repositories": 5}, '"repositories" must be an array of repository names or null, '
                          "got the number 5"),
    ({"repositories": ["a", None]}, "got null among them"),
    ({"version": "2"}, '"version" must be a whole number, got the string "2"'),
    ({"version": True}, '"version" must be a whole number, got true'),
    ({"version": 7}, "inventory format 7 is not one this version reads"),
    ({"registry": None}, '"registry" must be a string, got null'),
    ({"scope": {}}, '"scope" must be a string or null, got a JSON object'),
    ({"partition_names": []}, '"partition_names" must be an object'),
    ({"partition_names": {"~x": 1}}, "got the number 1 for '~x'"),
    ({"partition_names": {"~x": "a"}}, "partition_names does not map each short form"),
    ({"partition_names": {"~x": "\udcff"}}, "partition_names does not map each short form"),
    ({"partitioned_by": "tag"}, '"partitioned_by" must be "repository"'),
    ({"format": DELETE}, 'is not a reginsight inventory: it has no "format"'),
])
def test_each_malformed_field_is_named(work, changes, said):
    _meta(work["v2"], **changes)
    loaded, opened = _outcomes(work["v2"])
    assert said in loaded and loaded == opened


@pytest.mark.parametrize(("frames", "said"), [
    ({"tags": {"rows": "6"}}, '"frames"."tags"."rows" must be a whole number of 0 or more, '
                              'got the string "6"'),
    ({"tags": {"rows": -1}}, "got the number -1"),
    ({"tags": {"rows": 5.0}}, "got the number 5.0"),
    ({"tags": {}}, '"frames"."tags" has no "rows"'),
    ({"tags": []}, '"frames"."tags" must be an object'),
    ({"tags": {"rows": 5, "partitioned": "yes"}}, '"partitioned" must be true or false'),
    ({"tagz": {"rows": 5}}, '"frames" names "tagz", which is no frame'),
    ({"layers": DELETE}, '"frames" has no entry for layers'),
    ({"tags": {"rows": 6}}, "5 rows where inventory.json says 6"),
])
def test_each_malformed_frames_entry_is_named(work, frames, said):
    meta = json.loads((work["v2"] / "inventory.json").read_text())
    for name, entry in frames.items():
        if entry is DELETE:
            del meta["frames"][name]
        else:
            meta["frames"][name] = entry
    (work["v2"] / "inventory.json").write_text(json.dumps(meta))
    loaded, opened = _outcomes(work["v2"])
    assert said in loaded and said in opened


def test_an_inventory_json_that_is_deep_huge_or_a_fifo_is_refused(work, monkeypatch):
    path = work["v2"] / "inventory.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "holds no inventory (RecursionError)" in _outcomes(work["v2"])[0]
    path.write_text("{}")
    monkeypatch.setattr(_dataset, "META_LIMIT", 1)
    assert "at most 1 are read" in _outcomes(work["v2"])[0]
    monkeypatch.undo()
    path.unlink()
    os.mkfifo(path)  # a read would block forever
    assert all("inventory.json is not a file" in said for said in _outcomes(work["v2"]))


# ------------------------------------------------------------------ the files


def _first(directory: Path, frame: str) -> Path:
    return sorted((directory / frame).glob("**/*.parquet"))[0]


def _rewrite(path: Path, change) -> None:
    pq.write_table(change(pq.read_table(path, partitioning=None)), path)


def _retyped(column: str, values: Any):
    def change(table: pa.Table) -> pa.Table:
        return table.set_column(table.schema.get_field_index(column), column,
                                pa.array(values(table[column])))
    return change


DAMAGE = {
    "garbage": (lambda d: _first(d, "tags").write_bytes(b"PAR1 not really PAR1"),
                ("the files cannot be read", "not a Parquet file that can be read")),
    "truncated": (lambda d: _first(d, "layers").write_bytes(_first(d, "layers").read_bytes()
                                                            [:-9]),
                  ("the files cannot be read", "not a Parquet file that can be read")),
    "size as text": (lambda d: _rewrite(_first(d, "tags"), _retyped(
        "size", lambda c: [str(v) for v in c.to_pylist()])),
        ("the column size holds string, not whole numbers",) * 2),
    "naive time": (lambda d: _rewrite(_first(d, "tags"), lambda t: t.set_column(
        t.schema.get_field_index("created"), "created", t["created"].cast(pa.timestamp("ns")))),
        ("the column created holds timestamp[ns], not times with a time zone",) * 2),
    "no position": (lambda d: _rewrite(_first(d, "layers"),
                                       lambda t: t.drop_columns(["position"])),
                    ("no column position",) * 2),
    "twice": (lambda d: _rewrite(_first(d, "layers"), lambda t: t.append_column(
        "position", t["position"])), ("duplicate field names", "position appears 2 times")),
    "stray folder": (lambda d: shutil.copytree(_first(d, "tags").parent, d / "tags" / "x"),
                     ("a folder that is no partition",) * 2),
    "no folder": (lambda d: shutil.rmtree(d / "children"), ("no such folder",) * 2),
    "a fifo": (lambda d: os.mkfifo(d / "blobs" / "part-9-0.parquet"), ("is not a file",) * 2),
    "a folder": (lambda d: (d / "blobs" / "x.parquet").mkdir(), ("is not a file",) * 2),
    "a file gone": (lambda d: _first(d, "layers").unlink(),
                    ("rows where inventory.json says",) * 2),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_files_are_named(work, damage):
    change, (by_load, by_open) = DAMAGE[damage]
    change(work["v2"])
    loaded, opened = _outcomes(work["v2"])
    assert by_load in loaded and by_open in opened


def test_a_format_1_file_mistyped_or_missing_is_named(work):
    _rewrite(work["v1"] / "blobs.parquet", _retyped("repositories",
                                                    lambda c: [str(v) for v in c.to_pylist()]))
    loaded, opened = _outcomes(work["v1"])
    assert "blobs.parquet: the column repositories holds string" in loaded
    assert loaded.endswith(opened.rpartition(": ")[2])
    (work["v1"] / "blobs.parquet").unlink()
    assert all("blobs.parquet: no such file" in said for said in _outcomes(work["v1"]))


@pytest.mark.parametrize("analysis", ["storage_summary", "storage_by_repository",
                                      "layer_sharing", "reclaimable_blobs"])
def test_data_pages_damaged_past_the_footer_are_an_inventory_error_at_query_time(
        work, analysis):
    """The footers read at open are sound; DuckDB meets the damage in a query, and
    every analysis says it as an InventoryError naming the inventory."""
    for path in (work["v2"] / "layers").glob("**/*.parquet"):  # read by each of them
        data = bytearray(path.read_bytes())
        data[4:60] = b"\xab" * 56
        path.write_bytes(bytes(data))
    assert "the files cannot be read" in _outcomes(work["v2"])[0]
    tags = pd.DataFrame({"repository": ["a"], "tag": ["latest"]})
    run = {"reclaimable_blobs": lambda lazy: ri.reclaimable_blobs(lazy, tags)
           }.get(analysis, getattr(ri, analysis))
    with ri.Inventory.open(work["v2"]) as lazy:
        with pytest.raises(ri.InventoryError, match="DuckDB cannot read it"):
            run(lazy)


def test_a_path_that_is_not_utf8_is_refused_and_nothing_is_written(tmp_path):
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/inv\xff"))
    with pytest.raises(ri.InventoryError, match="not UTF-8"):
        inventory().save(bad)
    assert not os.path.lexists(bad)
    inventory().save(tmp_path / "good")
    os.rename(tmp_path / "good", bad)
    for read in (ri.Inventory.load, ri.Inventory.open):
        with pytest.raises(ri.InventoryError, match="not UTF-8"):
            read(bad)


@pytest.mark.parametrize("value", ["__HIVE_DEFAULT_PARTITION__", "", "%2E%2E%2Fx", "A",
                                   "a=b", "a%0Ab"])
def test_a_partition_folder_no_save_writes_is_refused(work, value):
    """pyarrow's folder for a null, an empty name, a decoded '../x', upper case: each
    became rows of no repository, or of one no registry has (NaN crashed the analysis)."""
    partition = _first(work["v2"], "tags").parent
    partition.rename(partition.parent / f"repository={value}")
    loaded, opened = _outcomes(work["v2"])
    assert "a partition folder no save writes" in loaded
    assert "a partition folder no save writes" in opened


def _read_both(directory: Path) -> list[str]:
    said = []
    for read in (ri.Inventory.load, _opened):
        with pytest.raises(ri.InventoryError) as caught:
            read(directory)
        said.append(str(caught.value))
    return said


def test_deep_folders_in_a_frame_are_refused_not_walked(work):
    """A walk of 1,300 nested folders recursed past Python's limit (RecursionError)."""
    nest(work["v2"] / "blobs", "d", 1300)
    try:
        assert all("a folder that is no partition" in s for s in _read_both(work["v2"]))
    finally:
        unnest(work["v2"] / "blobs", "d")


@pytest.mark.parametrize("target", ["/", "other inventory"])
def test_a_frame_folder_that_is_a_link_is_refused(work, target):
    """A link to / was walked over the whole filesystem; one to another inventory's
    folder read its files as this one's."""
    where = "/" if target == "/" else str(work["v1"])
    shutil.rmtree(work["v2"] / "errors")
    os.symlink(where, work["v2"] / "errors")
    assert all("is a symbolic link" in s for s in _read_both(work["v2"]))
