"""A saved inventory read where it lies, through DuckDB: analysis past memory.

:meth:`reginsight.Inventory.open` returns a :class:`LazyInventory`. It holds no
frame: each frame is a DuckDB view over the Parquet dataset (:mod:`._dataset`),
and the analysis functions that accept it (:mod:`reginsight.analysis._outofcore`)
run SQL that DuckDB streams and, past its memory limit, spills to disk. A view
gives each repository's real name back, also where its folder holds a short form.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from .._errors import InventoryError
from .._units import format_bytes
from ._dataset import (
    PARTITION_COLUMN,
    check_partitions,
    files,
    partition_names,
    partitioned_on_disk,
    read_meta,
)
from ._frames import BOOL, FRAME_NAMES, INT, NINT, SCHEMAS, STORAGE_COLUMNS, TIME

T = TypeVar("T")
_GLOB = re.compile(r"[*?\[\]{}]")
_SQL_TYPES = {INT: "BIGINT", NINT: "BIGINT", TIME: "TIMESTAMPTZ", BOOL: "BOOLEAN"}


def _literal(text: str) -> str:
    """A SQL string literal (quotes doubled): paths are the only text put into SQL;
    identifiers come from the frame schemas."""
    return "'" + text.replace("'", "''") + "'"


def _column_type(dtype: str) -> str:
    return _SQL_TYPES.get(dtype, "VARCHAR")


class LazyInventory:
    """An inventory saved by :meth:`reginsight.Inventory.save`, opened out-of-core.

    Each frame is a DuckDB view of the same name and columns as the Inventory's
    (``tags``, ``manifests``, ``layers``, ``blobs``, ``children``, ``errors``,
    ``uploads``, ``tag_history``, ``layer_links``): query them with :meth:`sql`.
    :func:`reginsight.storage_summary`, :func:`~reginsight.storage_by_repository`,
    :func:`~reginsight.layer_sharing`, :func:`~reginsight.reclaimable`,
    :func:`~reginsight.reclaimable_blobs` and :func:`~reginsight.disk_usage` accept it
    and return what they return for the loaded Inventory, to the byte. Everything
    else wants the frames in memory: ``reginsight.Inventory.load(lazy.path)``.

    Options: ``memory_limit`` (DuckDB's, e.g. "3GB"; its default is 80% of RAM),
    ``threads``, ``temp_directory`` (where DuckDB spills; default: DuckDB's own).
    """

    def __init__(self, path: str | os.PathLike[str], *, memory_limit: str | None = None,
                 threads: int | None = None,
                 temp_directory: str | os.PathLike[str] | None = None) -> None:
        try:
            import duckdb
        except ImportError:
            raise ImportError("Inventory.open needs DuckDB: pip install 'reginsight[duckdb]'"
                              ) from None
        self.path = Path(path)
        meta = read_meta(self.path)
        self.registry = str(meta.get("registry", ""))
        self.taken_at = pd.Timestamp(meta["taken_at"])
        self.scope: str | None = meta.get("scope")
        names = meta.get("repositories")
        self.repositories = None if names is None else tuple(sorted(map(str, names)))
        self.version = int(meta["version"])
        self.connection = duckdb.connect(":memory:")
        settings = {"memory_limit": memory_limit, "threads": threads,
                    "temp_directory": None if temp_directory is None else str(temp_directory),
                    "preserve_insertion_order": False}  # lets big queries stream
        for key, value in settings.items():
            if value is not None:
                self.connection.execute(f"SET {key} = {_literal(str(value))}")
        #: {short form: repository} of the folders named in short form (_dataset)
        self._names = partition_names(meta)
        if self._names:  # the views map them back, as Inventory.load does
            self.connection.execute(
                "CREATE TABLE ri_partition_names (ri_short VARCHAR, ri_name VARCHAR)")
            self.connection.executemany("INSERT INTO ri_partition_names VALUES (?, ?)",
                                        list(self._names.items()))
        self._columns: dict[str, list[str]] = {}
        self._derived: dict[str, Any] = {}
        for name in FRAME_NAMES:
            self._view(name)

    def _source(self, name: str) -> str | None:
        if self.version == 1:
            single = self.path / f"{name}.parquet"
            return f"read_parquet({_literal(str(single))})" if single.exists() else None
        found = files(self.path, name)
        if not found:
            return None
        if _GLOB.search(str(self.path)):  # a glob would read the name as a pattern
            where = "[" + ", ".join(_literal(str(f)) for f in found) + "]"
        else:
            where = _literal(str(self.path / name / "**" / "*.parquet"))
        if not partitioned_on_disk(self.path, name):
            return f"read_parquet({where})"
        check_partitions(self.path / name, found, self._names)
        source = (f"read_parquet({where}, hive_partitioning = true, "
                  f"hive_types = {{{_literal(PARTITION_COLUMN)}: VARCHAR}})")
        if not self._names:
            return source
        # every query reads the repository through the view: the real name, here
        return (f"(SELECT f.* EXCLUDE ({PARTITION_COLUMN}), coalesce(n.ri_name, "
                f"f.{PARTITION_COLUMN}) AS {PARTITION_COLUMN} FROM {source} f "
                f"LEFT JOIN ri_partition_names n ON n.ri_short = f.{PARTITION_COLUMN})")

    def _view(self, name: str) -> None:
        schema = dict(SCHEMAS[name])
        source = self._source(name)
        if source is None:  # no rows: typed and empty
            columns = ", ".join(f"CAST(NULL AS {_column_type(t)}) AS {c}"
                                for c, t in schema.items())
            self.connection.execute(f"CREATE VIEW {name} AS SELECT {columns} WHERE false")
            self._columns[name] = list(schema)
            return
        present = [row[0] for row in
                   self.connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        missing = [c for c in schema if c not in present]
        if missing:
            raise InventoryError(
                f"{self.path}/{name}: no column {', '.join(missing)} (saved by an older "
                "version: Inventory.load it and save it again to open it out-of-core)")
        extra = [c for c in STORAGE_COLUMNS.get(name, {}) if c in present]
        columns = [*schema, *extra]
        self.connection.execute(
            f"CREATE VIEW {name} AS SELECT {', '.join(columns)} FROM {source}")
        self._columns[name] = columns

    def __getattr__(self, name: str) -> Any:
        if name in FRAME_NAMES:  # only reached when no attribute has the name
            raise InventoryError(
                f"a LazyInventory keeps {name} on disk: query it with .sql('SELECT ... "
                f"FROM {name}'), or load the frames with reginsight.Inventory.load(path)")
        raise AttributeError(name)

    # ----------------------------------------------------------------- queries

    def derived(self, key: str, build: Callable[[LazyInventory], T]) -> T:
        """What the analysis builds in the connection (ids, shared tables), once: the
        files do not change under an open inventory."""
        if key not in self._derived:
            self._derived[key] = build(self)
        return self._derived[key]

    def sql(self, query: str, params: Any = None) -> Any:
        """Run ``query`` over the frames' views; a DuckDB relation (``.df()``: pandas)."""
        return self.connection.sql(query, params=params)

    def columns(self, name: str) -> list[str]:
        """The columns of frame ``name``, as the loaded Inventory has them."""
        return list(self._columns[name])

    def count(self, name: str) -> int:
        """Rows of frame ``name`` (one of the view names above)."""
        if name not in self._columns:
            raise KeyError(name)
        query = f"SELECT count(*) FROM {name}"
        return int(self.connection.execute(query).fetchall()[0][0])

    @property
    def from_storage(self) -> bool:
        """As :attr:`reginsight.Inventory.from_storage`: read from the registry's storage."""
        return "tagged" in self._columns["manifests"] and "on_disk" in self._columns["blobs"]

    @property
    def complete(self) -> bool:
        """As :attr:`reginsight.Inventory.complete`: the whole catalog, every read done."""
        return self.scope is None and self.count("errors") == 0

    def summary(self) -> dict[str, Any]:
        """The counts :meth:`reginsight.Inventory.summary` gives, computed by DuckDB."""
        row = self.connection.execute("""
            SELECT (SELECT count(DISTINCT repository) FROM tags),
                   (SELECT count(*) FROM tags),
                   (SELECT count(*) FILTER (kind = 'image') FROM manifests),
                   (SELECT count(*) FILTER (kind = 'index') FROM manifests),
                   (SELECT count(*) FILTER (kind = 'schema1') FROM manifests),
                   (SELECT count(*) FROM blobs),
                   (SELECT coalesce(sum(size), 0) FROM blobs),
                   (SELECT count(*) FROM errors)""").fetchall()[0]
        return {"registry": self.registry,
                "taken_at": self.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                **dict(zip(["repositories", "tags", "images", "indexes", "schema1", "blobs",
                            "blob_bytes", "errors"], map(int, row), strict=True))}

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> LazyInventory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<LazyInventory {s['registry']} at {s['taken_at']} ({self.path}): "
                f"{s['repositories']} repositories, {s['tags']} tags, {s['blobs']} blobs, "
                f"{format_bytes(s['blob_bytes'])} in blobs, {s['errors']} errors>")
