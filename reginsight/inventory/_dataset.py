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

Format version 1 (one ``NAME.parquet`` file per frame) still loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .._errors import InventoryError
from .._version import __version__
from ._frames import SCHEMAS

FORMAT = "reginsight-inventory"
FORMAT_VERSION = 2  # 1: one Parquet file per frame (still loads)

#: frames whose rows each belong to one repository: split by it on disk
PARTITIONED = tuple(name for name in SCHEMAS if name not in ("blobs", "errors"))
PARTITION_COLUMN = "repository"
_MAX_PARTITIONS = 2**31 - 1  # one per repository: no cap of ours


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
    return meta


def write_meta(directory: Path, *, registry: str, taken_at: str, scope: str | None,
               repositories: list[str] | None, rows: dict[str, int]) -> None:
    """``inventory.json``: what the dataset is, and how many rows each frame holds."""
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "registry": registry,
            "taken_at": taken_at, "scope": scope, "repositories": repositories,
            "reginsight": __version__, "partitioned_by": PARTITION_COLUMN,
            "frames": {name: {"rows": count, "partitioned": name in PARTITIONED}
                       for name, count in rows.items()}}
    (directory / "inventory.json").write_text(json.dumps(meta, indent=2))


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings (64-bit offsets: a column past 2 GiB of text
    stays one array), and no pandas metadata (the schema is ours)."""
    fields = [field.with_type(pa.large_string()) if pa.types.is_dictionary(field.type)
              else field for field in table.schema]
    return table.cast(pa.schema(fields)).replace_schema_metadata(None)


def write_frame(directory: Path, name: str, frame: pd.DataFrame | pa.Table, *,
                part: str = "0") -> None:
    """Write ``frame`` (the frame's columns, pandas or Arrow) into ``directory/name/``
    (created), partitioned when the frame is one of :data:`PARTITIONED`. Files are
    named ``part-{part}-{i}.parquet``: chunks written with distinct ``part`` values
    add up to one dataset (a generator larger than memory writes it this way)."""
    target = directory / name
    target.mkdir(parents=True, exist_ok=True)
    table = _plain(frame if isinstance(frame, pa.Table)
                   else pa.Table.from_pandas(frame, preserve_index=False))
    if len(table) == 0:  # one file without rows: the columns, for every reader
        pq.write_table(table, target / f"part-{part}-0.parquet")
        return
    partitioned = name in PARTITIONED
    ds.write_dataset(
        table, target, format="parquet", basename_template=f"part-{part}-{{i}}.parquet",
        partitioning=[PARTITION_COLUMN] if partitioned else None,
        partitioning_flavor="hive" if partitioned else None,
        max_partitions=_MAX_PARTITIONS, existing_data_behavior="overwrite_or_ignore")


def files(directory: Path, name: str) -> list[Path]:
    """The Parquet files of frame ``name``, sorted."""
    return sorted((directory / name).glob("**/*.parquet"))


def partitioned_on_disk(directory: Path, name: str) -> bool:
    """Whether frame ``name`` is split into ``repository=`` directories (a frame
    without rows is one file at its top, holding every column)."""
    return any(f.parent != directory / name for f in files(directory, name))


def read_frame(directory: Path, name: str) -> pd.DataFrame | None:
    """Frame ``name`` as pandas, columns and rows in no particular order (the caller
    conforms and sorts); None when the dataset has no files (no rows)."""
    if not (directory / name).is_dir():
        raise FileNotFoundError(f"no {name} directory")
    found = files(directory, name)
    if not found:
        return None
    partitioned = partitioned_on_disk(directory, name)
    dataset = ds.dataset([str(f) for f in found], format="parquet",
                         partitioning=ds.partitioning(pa.schema([(PARTITION_COLUMN,
                                                                  pa.string())]),
                                                      flavor="hive")
                         if partitioned else None,
                         partition_base_dir=str(directory / name))
    return dataset.to_table().to_pandas()


_STAGING, _REPLACED = ".staging-", ".replaced-"


def stage(directory: Path) -> Path:
    """A fresh directory inside ``directory`` to write a new dataset into (what an
    interrupted save left there is removed first)."""
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.iterdir():
        if leftover.name.startswith((_STAGING, _REPLACED)) and not leftover.is_symlink():
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
