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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from .._errors import InventoryError
from .._units import format_bytes
from ._dataset import (
    PARTITION_COLUMN,
    check_partitions,
    files,
    load_meta,
    utf8_path,
)
from ._frames import (
    BOOL,
    FRAME_NAMES,
    INT,
    NINT,
    SCHEMAS,
    STORAGE_COLUMNS,
    STORAGE_FRAMES,
    TIME,
)
from ._upgrade import DERIVED, RENAMED
from ._validate import Meta, check_agreement, check_columns, check_rows, engine_said

T = TypeVar("T")
_GLOB = re.compile(r"[*?\[\]{}]")
_SQL_TYPES = {INT: "BIGINT", NINT: "BIGINT", TIME: "TIMESTAMPTZ", BOOL: "BOOLEAN"}


def _literal(text: str) -> str:
    """A SQL string literal (quotes doubled): paths are the only text put into SQL;
    identifiers come from the frame schemas."""
    return "'" + text.replace("'", "''") + "'"


def _column_type(dtype: str) -> str:
    return _SQL_TYPES.get(dtype, "VARCHAR")


def _checked_footer(name: str, path: Path, *, partitioned: bool) -> tuple[int, pa.Schema]:
    """The rows and the schema of ``path``, a file of frame ``name``, from its footer;
    InventoryError when it is no Parquet file, or lacks a column of the frame
    (``partitioned``: but the repository, its folder's) or holds one of the wrong
    type."""
    try:
        footer = pq.read_metadata(path)
        schema = footer.schema.to_arrow_schema()
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        raise InventoryError(f"{path}: not a Parquet file that can be read "
                             f"({engine_said(exc)})") from None
    older = [column for column in (*DERIVED.get(name, ()), *RENAMED.get(name, {}).values())
             if column not in schema.names]
    if older:
        raise InventoryError(
            f"{path}: no column {', '.join(older)} (saved by an older version: "
            "Inventory.load it and save it again to open it out-of-core)")
    check_columns(name, schema, str(path), partitioned=partitioned)
    return footer.num_rows, schema


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

    Opening checks what :meth:`reginsight.Inventory.load` checks (inventory.json field
    by field, every file's footer: Parquet, the columns and their types, the rows),
    raising InventoryError; damage only a full read finds (a data page) is met by
    DuckDB later, and where this class runs the query (the analysis' shared tables,
    :meth:`count`, :meth:`summary`) it is an InventoryError too. Queries of your own
    (:meth:`sql`) raise DuckDB's errors.
    """

    def __init__(self, path: str | os.PathLike[str], *, memory_limit: str | None = None,
                 threads: int | None = None,
                 temp_directory: str | os.PathLike[str] | None = None) -> None:
        try:
            import duckdb
        except ImportError:
            raise ImportError("Inventory.open needs DuckDB: pip install 'reginsight[duckdb]'"
                              ) from None
        self.path = utf8_path(path)  # DuckDB takes paths as UTF-8 text
        meta = load_meta(self.path)
        self.registry = meta.registry
        self.taken_at = meta.taken_at
        self.scope: str | None = meta.scope
        self.repositories = meta.repositories
        self.version = meta.version
        #: {short form: repository} of the folders named in short form (_dataset)
        self._names = meta.partition_names
        # every file's footer, before DuckDB reads any: a file that is no Parquet, a
        # column missing or mistyped is said here, not by a query halfway through
        found = {name: self._files(name, meta) for name in FRAME_NAMES}
        self.connection = duckdb.connect(":memory:")
        self._error: type[Exception] = duckdb.Error
        self._columns: dict[str, list[str]] = {}
        self._derived: dict[str, Any] = {}
        try:
            self._configure(memory_limit=memory_limit, threads=threads,
                            temp_directory=temp_directory)
            for name in FRAME_NAMES:
                with self._engine(f"{self.path}/{name}"):
                    self._view(name, found[name])
        except BaseException:
            self.connection.close()
            raise

    def _configure(self, **options: object) -> None:
        settings = {**options, "preserve_insertion_order": False}  # big queries stream
        for key, value in settings.items():
            if value is None:
                continue
            try:
                self.connection.execute(f"SET {key} = {_literal(str(value))}")
            except self._error as exc:  # the caller's option, not the inventory
                raise ValueError(f"Inventory.open: {key}={value!r}: {engine_said(exc)}"
                                 ) from None
        if self._names:  # the views map them back, as Inventory.load does
            self.connection.execute(
                "CREATE TABLE ri_partition_names (ri_short VARCHAR, ri_name VARCHAR)")
            self.connection.executemany("INSERT INTO ri_partition_names VALUES (?, ?)",
                                        list(self._names.items()))

    @contextmanager
    def _engine(self, where: str) -> Iterator[None]:
        """DuckDB's errors over the saved files as InventoryError naming ``where``."""
        try:
            yield
        except self._error as exc:
            raise InventoryError(f"{where}: DuckDB cannot read it ({engine_said(exc)})"
                                 ) from None

    def _files(self, name: str, meta: Meta) -> list[Path]:
        """Frame ``name``'s files, their footers read and checked: Parquet, with the
        frame's columns, as many rows as inventory.json says. [] when it has none
        (no rows; a storage frame format 1 did not save)."""
        if self.version == 1:
            single = self.path / f"{name}.parquet"
            if name in STORAGE_FRAMES and not single.exists() and not single.is_symlink():
                return []
            if not single.is_file():
                raise InventoryError(f"{single}: no such file (every frame has one)")
            found = [single]
        else:
            if not (self.path / name).is_dir():
                raise InventoryError(f"{self.path}/{name}: no such folder (every frame has "
                                     "one)")
            found = files(self.path, name)
            check_partitions(self.path / name, found, self._names)
        footers = {path: _checked_footer(name, path, partitioned=self.version != 1
                                         and path.parent != self.path / name)
                   for path in found}
        check_agreement(name, ((str(path), schema) for path, (_, schema) in footers.items()))
        check_rows(name, sum(rows for rows, _ in footers.values()), meta.rows,
                   f"{self.path}/{name}")
        return found

    def _source(self, name: str, found: list[Path]) -> str | None:
        if not found:
            return None
        if self.version == 1:
            return f"read_parquet({_literal(str(found[0]))})"
        if _GLOB.search(str(self.path)):  # a glob would read the name as a pattern
            where = "[" + ", ".join(_literal(str(f)) for f in found) + "]"
        else:
            where = _literal(str(self.path / name / "**" / "*.parquet"))
        if all(f.parent == self.path / name for f in found):
            return f"read_parquet({where})"
        source = (f"read_parquet({where}, hive_partitioning = true, "
                  f"hive_types = {{{_literal(PARTITION_COLUMN)}: VARCHAR}})")
        if not self._names:
            return source
        # every query reads the repository through the view: the real name, here
        return (f"(SELECT f.* EXCLUDE ({PARTITION_COLUMN}), coalesce(n.ri_name, "
                f"f.{PARTITION_COLUMN}) AS {PARTITION_COLUMN} FROM {source} f "
                f"LEFT JOIN ri_partition_names n ON n.ri_short = f.{PARTITION_COLUMN})")

    def _view(self, name: str, found: list[Path]) -> None:
        schema = dict(SCHEMAS[name])
        source = self._source(name, found)
        if source is None:  # no rows: typed and empty
            columns = ", ".join(f"CAST(NULL AS {_column_type(t)}) AS {c}"
                                for c, t in schema.items())
            self.connection.execute(f"CREATE VIEW {name} AS SELECT {columns} WHERE false")
            self._columns[name] = list(schema)
            return
        present = [row[0] for row in
                   self.connection.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        missing = [c for c in schema if c not in present]
        if missing:  # the footers had them: a folder's name took one's place
            raise InventoryError(f"{self.path}/{name}: no column {', '.join(missing)}")
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
            with self._engine(str(self.path)):  # a file DuckDB meets first here
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
        with self._engine(f"{self.path}/{name}"):
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
        with self._engine(str(self.path)):
            row = self._summary_row()
        counts = dict(zip(["repositories", "tags", "images", "indexes", "schema1", "blobs",
                           "blob_bytes", "errors"], map(int, row), strict=True))
        if self.repositories:  # the names tags hold, asked only when there are others
            counts["repositories"] = len(self.repository_names())
        return {"registry": self.registry,
                "taken_at": self.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC"), **counts}

    def repository_names(self) -> set[str]:
        """As :meth:`reginsight.Inventory.repository_names`, the tags' names by DuckDB."""
        with self._engine(str(self.path)):
            tagged = self.connection.execute("SELECT DISTINCT repository FROM tags").fetchall()
        return {*(str(name) for (name,) in tagged), *(self.repositories or ())}

    def _summary_row(self) -> tuple[Any, ...]:
        return self.connection.execute("""
            SELECT (SELECT count(DISTINCT repository) FROM tags),
                   (SELECT count(*) FROM tags),
                   (SELECT count(*) FILTER (kind = 'image') FROM manifests),
                   (SELECT count(*) FILTER (kind = 'index') FROM manifests),
                   (SELECT count(*) FILTER (kind = 'schema1') FROM manifests),
                   (SELECT count(*) FROM blobs),
                   (SELECT coalesce(sum(size), 0) FROM blobs),
                   (SELECT count(*) FROM errors)""").fetchall()[0]

    def close(self) -> None:
        """Close the DuckDB connection (``with`` does it on leaving); the files stay."""
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
