"""An inventory on disk: a Parquet dataset per frame, partitioned by repository.

The layout (format version 2; DuckDB, Dask, Spark and pyarrow read it directly)::

    DIR/inventory.json                          registry, taken_at, scope, versions, rows
    DIR/tags/repository=team%2Fapp/part-0-0.parquet
    DIR/manifests/repository=.../part-*.parquet   (likewise layers, children, uploads,
                                                   tag_history, layer_links)
    DIR/blobs/part-0-0.parquet                  registry-wide: one row per blob
    DIR/errors/part-0-0.parquet                 a failed read may have no repository

A partitioned frame keeps its ``repository`` in the directory name (Hive style, the
name URL-encoded: ``/`` is ``%2F``), not in its files. A frame without rows is one
file without rows at its top, ``NAME/part-0-0.parquet``, holding every column.
Strings are plain Parquet strings (dictionary-encoded by Parquet itself): an Arrow
dictionary would copy every category into every partition. The columns are those of
:class:`reginsight.Inventory`; readers get the repository back from the path
(``hive_partitioning = true, hive_types = {'repository': VARCHAR}`` in DuckDB, a
string ``partitioning`` schema in pyarrow, so a repository named ``007`` stays text).

A repository whose folder name would pass :data:`FOLDER_BUDGET` bytes (Distribution
allows 255-character names; URL-encoded, with ``repository=``, they exceed the 255
bytes most filesystems allow a name) is kept in a folder of a short form instead:
``repository=~<SHA-256 of the name's UTF-8, 64 hex digits>``, and inventory.json's
``partition_names`` maps each short form to the name (``{"~9f86...": "a/a/..."}``;
absent when no folder needs one). Another engine reads the folder's value and maps
it through that object. A real name never begins with ``~`` (its components begin
with ``[a-z0-9]``, and a name that does anyway is stored in short form too), so
every ``~`` value is a short form. The budget is fixed, not taken from the
filesystem, so a name has the same folder wherever the dataset lies.

Format version 1 (one ``NAME.parquet`` file per frame) still loads.

A save (:func:`check_save_target` first, and :func:`check_replaceable` again
before the swap) writes into a missing or empty folder, or
replaces an earlier inventory there, and moves or deletes only what reginsight
writes: ``inventory.json``, the frames' folders (``part-*.parquet`` files and
``repository=`` folders of them) and format 1's ``NAME.parquet``; what an
interrupted save left (``.staging-XXXXXXXX``, ``.replaced-XXXXXXXX``) is cleared.
Anything else in the folder is the user's: left beside the inventory, or, inside
what a save would replace, a reason to refuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .._errors import InventoryError
from .._version import __version__
from ._frames import FRAME_NAMES, SCHEMAS

FORMAT = "reginsight-inventory"
FORMAT_VERSION = 2  # 1: one Parquet file per frame (still loads)

#: frames whose rows each belong to one repository: split by it on disk
PARTITIONED = tuple(name for name in SCHEMAS if name not in ("blobs", "errors"))
PARTITION_COLUMN = "repository"
_MAX_PARTITIONS = 2**31 - 1  # one per repository: no cap of ours
#: the longest partition folder name, in bytes: under the 255 of NAME_MAX with room
#: to spare, and fixed, so a name's folder does not depend on where DIR lies
FOLDER_BUDGET = 200
#: what begins a short form: no real name does (each component begins [a-z0-9]), and
#: URL-encoding (pyarrow's, DuckDB's) leaves it as it is
SHORT = "~"


def _fingerprint(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def short_form(name: str) -> str | None:
    """The value repository ``name``'s partition folder holds in its place, or None
    when the name itself fits (``repository=`` and the name URL-encoded, as pyarrow
    writes it, within :data:`FOLDER_BUDGET` bytes, and no leading ``~``)."""
    folder = f"{PARTITION_COLUMN}={quote(name, safe='')}"
    if not name.startswith(SHORT) and len(folder) <= FOLDER_BUDGET:  # quote gives ASCII
        return None
    return SHORT + _fingerprint(name)


def short_forms(names: Iterable[str]) -> dict[str, str]:
    """{short form: name} for those of the distinct ``names`` that need one.
    InventoryError when two share one: their rows would be merged into one folder."""
    found: dict[str, str] = {}
    for name in names:
        short = short_form(name)
        if short is not None and found.setdefault(short, name) != name:
            raise InventoryError(f"repositories {found[short]!r} and {name!r} have the "
                                 f"same short form {short}: the inventory cannot be saved")
    return found


def partition_names(meta: dict[str, Any]) -> dict[str, str]:
    """inventory.json's ``partition_names`` (checked by :func:`read_meta`): {short form:
    repository}."""
    return dict(meta.get("partition_names") or {})


def check_partitions(top: Path, found: Iterable[Path], names: Mapping[str, str]) -> None:
    """InventoryError when one of the files ``found`` under frame folder ``top`` lies
    in a short-form folder that ``names`` does not map: its repository is lost."""
    for folder in {f.parent for f in found} - {top}:
        value = unquote(folder.name.partition("=")[2])
        if value.startswith(SHORT) and value not in names:
            raise InventoryError(f"{folder}: a short-form partition that inventory.json "
                                 "does not name (partition_names)")


def _renamed(column: pa.ChunkedArray, renames: Mapping[str, str]) -> pa.ChunkedArray:
    """``column`` (strings) with each key of ``renames`` replaced by its value."""
    keys = pa.array(list(renames), type=column.type)
    found = pc.index_in(column, value_set=keys)
    values = pa.array(list(renames.values()), type=column.type).take(found)
    return pc.if_else(pc.is_null(found), column, values)


def _with_column(table: pa.Table, name: str, column: pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def read_meta(directory: Path) -> dict[str, Any]:
    """``inventory.json``, checked: a reginsight inventory of a version this reads."""
    try:
        meta = json.loads((directory / "inventory.json").read_text())
    except (OSError, ValueError) as exc:
        raise InventoryError(f"{directory} holds no inventory ({type(exc).__name__})"
                             ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InventoryError(f"{directory}/inventory.json is not a reginsight inventory")
    if meta.get("version") not in (1, FORMAT_VERSION):
        raise InventoryError(f"{directory}: inventory format {meta.get('version')} "
                             f"is not one this version reads (1 to {FORMAT_VERSION})")
    names = meta.get("partition_names") or {}
    if not isinstance(names, dict) or not all(
            isinstance(name, str) and short == SHORT + _fingerprint(name)
            for short, name in names.items()):
        raise InventoryError(f"{directory}/inventory.json: partition_names does not map "
                             "each short form to the repository it stands for")
    return meta


def write_meta(directory: Path, *, registry: str, taken_at: str, scope: str | None,
               repositories: list[str] | None, rows: dict[str, int],
               partitions: Mapping[str, str] | None = None) -> None:
    """``inventory.json``: what the dataset is, how many rows each frame holds, and
    ``partitions``, the short forms the frames' folders use ({short form: name}, as
    :func:`write_frame` returns them)."""
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "registry": registry,
            "taken_at": taken_at, "scope": scope, "repositories": repositories,
            "reginsight": __version__, "partitioned_by": PARTITION_COLUMN,
            "frames": {name: {"rows": count, "partitioned": name in PARTITIONED}
                       for name, count in rows.items()}}
    if partitions:
        meta["partition_names"] = dict(sorted(partitions.items()))
    (directory / "inventory.json").write_text(json.dumps(meta, indent=2))


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings (64-bit offsets: a column past 2 GiB of text
    stays one array), and no pandas metadata (the schema is ours)."""
    fields = [field.with_type(pa.large_string()) if pa.types.is_dictionary(field.type)
              else field for field in table.schema]
    return table.cast(pa.schema(fields)).replace_schema_metadata(None)


def write_frame(directory: Path, name: str, frame: pd.DataFrame | pa.Table, *,
                part: str = "0") -> dict[str, str]:
    """Write ``frame`` (the frame's columns, pandas or Arrow) into ``directory/name/``
    (created), partitioned when the frame is one of :data:`PARTITIONED`. Files are
    named ``part-{part}-{i}.parquet``: chunks written with distinct ``part`` values
    add up to one dataset (a generator larger than memory writes it this way).
    Returns the short forms its folders use ({short form: name}): ``partitions`` for
    :func:`write_meta`. ``frame`` itself is not changed."""
    target = directory / name
    target.mkdir(parents=True, exist_ok=True)
    table = _plain(frame if isinstance(frame, pa.Table)
                   else pa.Table.from_pandas(frame, preserve_index=False))
    if len(table) == 0:  # one file without rows: the columns, for every reader
        pq.write_table(table, target / f"part-{part}-0.parquet")
        return {}
    partitioned = name in PARTITIONED
    shortened: dict[str, str] = {}
    if partitioned:
        column = table[PARTITION_COLUMN]
        shortened = short_forms(pc.unique(column).drop_null().to_pylist())
        if shortened:
            table = _with_column(table, PARTITION_COLUMN, _renamed(
                column, {real: short for short, real in shortened.items()}))
    ds.write_dataset(
        table, target, format="parquet", basename_template=f"part-{part}-{{i}}.parquet",
        partitioning=[PARTITION_COLUMN] if partitioned else None,
        partitioning_flavor="hive" if partitioned else None,
        max_partitions=_MAX_PARTITIONS, existing_data_behavior="overwrite_or_ignore")
    return shortened


def files(directory: Path, name: str) -> list[Path]:
    """The Parquet files of frame ``name``, sorted."""
    return sorted((directory / name).glob("**/*.parquet"))


def partitioned_on_disk(directory: Path, name: str) -> bool:
    """Whether frame ``name`` is split into ``repository=`` directories (a frame
    without rows is one file at its top, holding every column)."""
    return any(f.parent != directory / name for f in files(directory, name))


def read_frame(directory: Path, name: str, *, names: Mapping[str, str] | None = None
               ) -> pd.DataFrame | None:
    """Frame ``name`` as pandas, columns and rows in no particular order (the caller
    conforms and sorts); None when the dataset has no files (no rows). ``names`` maps
    the short forms of folders back to repositories (:func:`partition_names`)."""
    if not (directory / name).is_dir():
        raise FileNotFoundError(f"no {name} directory")
    found = files(directory, name)
    if not found:
        return None
    names = names or {}
    check_partitions(directory / name, found, names)
    partitioned = partitioned_on_disk(directory, name)
    dataset = ds.dataset([str(f) for f in found], format="parquet",
                         partitioning=ds.partitioning(pa.schema([(PARTITION_COLUMN,
                                                                  pa.string())]),
                                                      flavor="hive")
                         if partitioned else None,
                         partition_base_dir=str(directory / name))
    table = dataset.to_table()
    if partitioned and names:
        table = _with_column(table, PARTITION_COLUMN,
                             _renamed(table[PARTITION_COLUMN], names))
    return table.to_pandas()


_STAGING, _REPLACED = ".staging-", ".replaced-"
#: what tempfile.mkdtemp names with those prefixes: 8 of [a-z0-9_]
_LEFTOVER = re.compile(r"\.(staging|replaced)-[a-z0-9_]{8}")
#: the files write_frame writes (``part`` is the caller's)
_PART = re.compile(r"part-.+\.parquet")
#: format 1's one file per frame
_FORMAT_1 = tuple(f"{name}.parquet" for name in FRAME_NAMES)
_ELSEWHERE = "save into an empty or new folder"


def check_save_target(path: str | os.PathLike[str]) -> Path:
    """The folder ``path`` names, if a save may write there: missing, empty (but for
    what an interrupted save left), or an earlier reginsight inventory holding only
    what reginsight writes (files of the user's beside it stay). InventoryError
    otherwise, before anything is created or changed: :meth:`Inventory.save` calls
    this first, a command can call it before a long crawl."""
    return save_target(path)[0]


def save_target(path: str | os.PathLike[str]) -> tuple[Path, list[str]]:
    """:func:`check_save_target`'s folder, and what a save there removes besides the
    entries it writes: format 1's ``NAME.parquet`` files, when the earlier inventory
    is of format 1."""
    if not os.fspath(path):  # Path("") would be the working directory
        raise InventoryError(f"an empty path is no folder to save into: {_ELSEWHERE}")
    directory = Path(path)
    if not directory.exists() and not directory.is_symlink():
        return directory, []
    if not directory.is_dir():
        raise InventoryError(f"{directory} is not a folder: {_ELSEWHERE}")
    everything = list(directory.iterdir())
    entries = {entry.name: entry for entry in everything if not _leftover(entry)}
    if not entries:
        return directory, []
    meta = directory / "inventory.json"
    if "inventory.json" in entries:
        if meta.is_symlink():  # a link is never reginsight's, whatever it points at
            _refuse(directory, "its inventory.json is a link")
        if not meta.is_file():
            _refuse(directory, "its inventory.json is no file")
        try:
            version = read_meta(directory)["version"]
        except InventoryError:
            _refuse(directory, "its inventory.json is not that of a reginsight inventory "
                               "this version reads")
    else:
        version = _interrupted(everything, entries)
        if version is None:
            _refuse(directory, "no inventory.json")
    stale = list(_FORMAT_1) if version == 1 else []
    check_replaceable(directory, stale)
    return directory, stale


def check_replaceable(directory: Path, stale: Iterable[str]) -> None:
    """InventoryError unless the entries a save into ``directory`` replaces (the
    frames' folders, inventory.json, ``stale``) hold only what reginsight writes."""
    for name in [*FRAME_NAMES, "inventory.json", *stale]:
        entry = directory / name
        stray = _stray(entry) if entry.exists() or entry.is_symlink() else None
        if stray is not None:
            raise InventoryError(
                f"{directory} holds a reginsight inventory, but reginsight did not write "
                f"{stray}: a save would delete it. Move it out, or {_ELSEWHERE}")


def _interrupted(everything: list[Path], entries: dict[str, Path]) -> int | None:
    """The format of the inventory a save stopped mid-swap was replacing, None when
    nothing shows one. Its inventory.json goes aside first and comes back last: it
    lies in a ``.replaced-`` leftover; a first save into an empty folder leaves only
    frames beside its leftovers."""
    for leftover in everything:
        if leftover.name.startswith(_REPLACED) and _leftover(leftover):
            try:
                return int(read_meta(leftover)["version"])
            except InventoryError:
                continue
    if len(entries) < len(everything) and set(entries) <= {*FRAME_NAMES, *_FORMAT_1}:
        return 1 if set(entries) & set(_FORMAT_1) else FORMAT_VERSION
    return None


def _refuse(directory: Path, why: str) -> NoReturn:
    raise InventoryError(f"{directory} is not empty and holds no reginsight inventory "
                         f"to replace ({why}): {_ELSEWHERE}")


def _leftover(entry: Path) -> bool:
    """A folder an interrupted save left (a staged dataset, or the entries it replaced)."""
    return bool(_LEFTOVER.fullmatch(entry.name)) and entry.is_dir() and not entry.is_symlink()


def _is_part(entry: Path) -> bool:
    return bool(_PART.fullmatch(entry.name)) and entry.is_file() and not entry.is_symlink()


def _stray(entry: Path) -> Path | None:
    """The first thing in ``entry`` (a frame's folder, inventory.json or format 1's
    file) that
    reginsight did not write; None when it holds only reginsight's files. A link is
    never reginsight's."""
    if entry.suffix in (".parquet", ".json"):  # format 1's file, inventory.json
        return None if entry.is_file() and not entry.is_symlink() else entry
    if entry.is_symlink() or not entry.is_dir():
        return entry
    for inner in sorted(entry.iterdir()):
        if _is_part(inner):
            continue
        if not (inner.name.startswith(f"{PARTITION_COLUMN}=") and inner.is_dir()
                and not inner.is_symlink()):
            return inner
        stray = next((f for f in sorted(inner.iterdir()) if not _is_part(f)), None)
        if stray is not None:
            return stray
    return None


def stage(directory: Path) -> Path:
    """A fresh directory inside ``directory`` (created) to write a new dataset into
    (what an interrupted save left there is removed first). Call
    :func:`check_save_target` before: this creates and clears without asking."""
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.iterdir():
        if _leftover(leftover):
            _remove(leftover)
    return Path(tempfile.mkdtemp(dir=directory, prefix=_STAGING))


def swap_in(directory: Path, staged: Path, names: Iterable[str], stale: Iterable[str] = ()
            ) -> None:
    """Move each of ``names`` from ``staged`` into ``directory``, replacing what is
    there, then delete ``stale`` entries and ``staged``. The first name (the file
    that says the directory holds an inventory) goes aside first and comes in last,
    so an interrupted swap leaves no inventory that looks whole; a swap that fails
    puts the earlier entries back. Whatever sits at a name (a directory, a file, a
    planted link) is moved aside, never followed: nothing outside ``directory`` is
    written or deleted."""
    names = list(names)
    trash = Path(tempfile.mkdtemp(dir=directory, prefix=_REPLACED))
    moved: list[str] = []
    try:
        for name in [*names, *stale]:
            old = directory / name
            if old.is_symlink() or old.exists():
                os.replace(old, trash / name)
                moved.append(name)
        for name in [*names[1:], *names[:1]]:
            os.replace(staged / name, directory / name)
    except BaseException:
        for name in reversed(moved):  # the earlier save, as it was
            if (directory / name).is_symlink() or (directory / name).exists():
                _remove(directory / name)
            os.replace(trash / name, directory / name)
        raise
    finally:
        _remove(trash)
        discard(staged)


def discard(staged: Path) -> None:
    """Delete a staged dataset that will not be used."""
    _remove(staged)


def _remove(path: Path) -> None:
    """Delete a file, a link (not what it points at) or a directory tree (rmtree does
    not follow the links inside)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)
