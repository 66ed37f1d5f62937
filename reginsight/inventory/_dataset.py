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

How a save replaces an earlier one without losing a file: :mod:`._replace`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .._errors import InventoryError
from .._version import __version__
from ._frames import SCHEMAS
from ._validate import (
    FORMAT,
    FORMAT_VERSION,
    PARTITION_COLUMN,
    Meta,
    check_agreement,
    check_columns,
    check_format,
    check_meta,
    engine_said,
)

#: frames whose rows each belong to one repository: split by it on disk
PARTITIONED = tuple(name for name in SCHEMAS if name not in ("blobs", "errors"))
#: the largest inventory.json read: one lists every repository (a million names are
#: some tens of MB); past this, a planted file would only fill memory
META_LIMIT = 256 * 2**20
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


#: lower-case letters and digits, runs of them joined by ``.``, ``_``, ``-`` or ``/``
_NAME_SHAPE = re.compile(r"[a-z0-9]+(?:[._/-]+[a-z0-9]+)*")


def check_partitions(top: Path, found: Iterable[Path], names: Mapping[str, str]) -> None:
    """InventoryError when one of the files ``found`` under frame folder ``top`` lies
    anywhere but at the top or in a ``repository=`` folder right below it (a reader
    would take another folder's name for a column, or none), or in a short-form folder
    that ``names`` does not map: its repository is lost."""
    for folder in {f.parent for f in found} - {top}:
        key, equals, value = folder.name.partition("=")
        if folder.parent != top or key != PARTITION_COLUMN or not equals:
            raise InventoryError(f"{folder}: a folder that is no partition (the files of "
                                 f"{top.name} lie at its top or in {PARTITION_COLUMN}=NAME "
                                 "folders right below it)")
        value = unquote(value)
        if value.startswith(SHORT):
            if value not in names:
                raise InventoryError(f"{folder}: a short-form partition that inventory."
                                     "json does not name (partition_names)")
            continue
        # what a save writes, and nothing else: a name, URL-encoded as pyarrow does
        # (pyarrow's null folder, an empty or a decoded '../x' would become rows of no
        # repository, or of one no registry has). The shape the reference grammar
        # gives a name, looser: analysis reads saved inventories without the registry
        # layer, where the grammar lives
        if not (_NAME_SHAPE.fullmatch(value)
                and folder.name == f"{PARTITION_COLUMN}={quote(value, safe='')}"):
            raise InventoryError(f"{folder}: a partition folder no save writes (its "
                                 "value is not a repository name)")


def _renamed(column: pa.ChunkedArray, renames: Mapping[str, str]) -> pa.ChunkedArray:
    """``column`` (strings) with each key of ``renames`` replaced by its value."""
    keys = pa.array(list(renames), type=column.type)
    found = pc.index_in(column, value_set=keys)
    values = pa.array(list(renames.values()), type=column.type).take(found)
    return pc.if_else(pc.is_null(found), column, values)


def _with_column(table: pa.Table, name: str, column: pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def _parsed(directory: Path) -> Any:
    """``inventory.json`` parsed (any JSON value): InventoryError when there is none, it
    is no regular file (a FIFO would block the read), too large, or not JSON."""
    path = directory / "inventory.json"
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise InventoryError(f"{path} is not a file")
        if status.st_size > META_LIMIT:
            raise InventoryError(f"{path} is {status.st_size:,} bytes: not an inventory's "
                                 f"(at most {META_LIMIT:,} are read)")
        with path.open("rb") as file:
            text = file.read(META_LIMIT + 1)
        return json.loads(text)  # UTF-8 (or the UTF-16/32 JSON allows)
    except (OSError, ValueError, RecursionError) as exc:  # too deep a nesting: Recursion
        raise InventoryError(f"{directory} holds no inventory ({type(exc).__name__})"
                             ) from None


def read_meta(directory: Path) -> dict[str, Any]:
    """``inventory.json`` as parsed: a reginsight inventory of a version this reads
    (:func:`._validate.check_format`); what a save checks before replacing one. What
    a load or an open reads: :func:`load_meta`."""
    meta = _parsed(directory)
    check_format(meta, f"{directory}/inventory.json")
    return meta


def load_meta(directory: Path) -> Meta:
    """``inventory.json``, every field checked (:func:`._validate.check_meta`), and its
    ``partition_names`` mapping each short form to the name it stands for."""
    where = f"{directory}/inventory.json"
    meta = check_meta(_parsed(directory), where)
    for short, name in meta.partition_names.items():
        if short != short_form_of(name):
            raise InventoryError(f"{where}: partition_names does not map each short form "
                                 "to the repository it stands for")
    return meta


def short_form_of(name: str) -> str | None:
    """The short form of ``name`` (whether or not it needs one); None for a string no
    name can be (lone surrogates, as a JSON escape may hold: no UTF-8)."""
    try:
        return SHORT + _fingerprint(name)
    except UnicodeEncodeError:
        return None


def utf8_path(path: str | os.PathLike[str]) -> Path:
    """``path``, when pyarrow and DuckDB can name it: they take paths as UTF-8, and a
    name of bytes in another encoding (on Linux: surrogate escapes) has none."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise InventoryError(f"{os.fspath(path)!r}: a path that is not UTF-8 (bytes of "
                             "another encoding in a name), which pyarrow and DuckDB cannot "
                             "read or write: rename it, or choose another folder") from None
    return Path(path)


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
    """The Parquet files of frame ``name``, sorted: at the top of its folder and in the
    ``repository=`` folders right below, all the layout has (listed two levels deep,
    never walked: a deep tree is no inventory, and a walk of one recursed without end).
    InventoryError for a symbolic link (the frame's folder, a partition, a file: it
    could lead out of the inventory), a folder anywhere else (pyarrow and DuckDB
    would read the files below it, taking its name for a column), a ``.parquet``
    that is no regular file (a FIFO would block the reader)."""
    top = directory / name
    found: list[Path] = []
    for entry in _listed(top):
        path = Path(entry.path)
        if entry.is_symlink():
            raise InventoryError(f"{path} is a symbolic link: an inventory holds none")
        if entry.name.endswith(".parquet"):
            found.extend([path] if _parquet(entry) else [])
        elif entry.is_dir(follow_symlinks=False):
            if not entry.name.startswith(f"{PARTITION_COLUMN}="):
                raise InventoryError(f"{path}: a folder that is no partition (the files "
                                     f"of {name} lie at its top or in {PARTITION_COLUMN}"
                                     "=NAME folders right below it)")
            found.extend(Path(inner.path) for inner in _listed(path) if _parquet(inner))
    return sorted(found)


def _listed(folder: Path) -> list[os.DirEntry[str]]:
    if folder.is_symlink():
        raise InventoryError(f"{folder} is a symbolic link: an inventory holds none")
    try:
        with os.scandir(folder) as listing:
            return list(listing)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InventoryError(f"{folder}: cannot be listed ({exc.strerror or exc})") from None


def _parquet(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a data file of the frame. InventoryError for a link, for a
    ``.parquet`` that is no regular file, and for a folder inside a partition."""
    if entry.is_symlink():
        raise InventoryError(f"{entry.path} is a symbolic link: an inventory holds none")
    if entry.name.endswith(".parquet"):
        if not entry.is_file(follow_symlinks=False):
            raise InventoryError(f"{entry.path} is not a file")
        return True
    if entry.is_dir(follow_symlinks=False):
        raise InventoryError(f"{entry.path}: a folder inside a partition: no save "
                             "writes one")
    return False


def _partitioned(top: Path, found: Iterable[Path]) -> bool:
    """Whether a frame's files lie in ``repository=`` folders (a frame without rows is
    one file at its top, holding every column)."""
    return any(f.parent != top for f in found)


def read_frame(directory: Path, name: str, *, names: Mapping[str, str] | None = None,
               optional: Collection[str] = (), renamed: Mapping[str, str] | None = None
               ) -> pa.Table | None:
    """Frame ``name`` as Arrow, columns and rows in no particular order (the caller
    conforms and sorts); None when the dataset has no files (no rows). ``names`` maps
    the short forms of folders back to repositories
    (:attr:`._validate.Meta.partition_names`). InventoryError when the files cannot
    be read (not Parquet), lack a column (but those ``optional``, or under an older
    name, ``renamed``: :func:`._validate.check_columns`), hold one of the wrong type,
    or disagree on one's type."""
    if not (directory / name).is_dir():
        raise InventoryError(f"{directory}/{name}: no such folder (every frame has one)")
    found = files(directory, name)
    if not found:
        return None
    names = names or {}
    check_partitions(directory / name, found, names)
    partitioned = _partitioned(directory / name, found)
    try:
        dataset = ds.dataset([str(f) for f in found], format="parquet",
                             partitioning=ds.partitioning(
                                 pa.schema([(PARTITION_COLUMN, pa.string())]), flavor="hive")
                             if partitioned else None,
                             partition_base_dir=str(directory / name))
        schemas = [(part.path, part.physical_schema) for part in dataset.get_fragments()]
        for path, schema in schemas:
            check_columns(name, schema, path, optional=optional, renamed=renamed,
                          partitioned=Path(path).parent != directory / name)
        check_agreement(name, schemas)
        table = dataset.to_table()
        if partitioned and names:
            table = _with_column(table, PARTITION_COLUMN,
                                 _renamed(table[PARTITION_COLUMN], names))
    except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as exc:
        raise InventoryError(f"{directory}/{name}: the files cannot be read "
                             f"({engine_said(exc)})") from None
    return table
