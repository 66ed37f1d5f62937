"""What a saved inventory must hold, checked before it is read: ``inventory.json``
field by field, and the columns of its Parquet files by their Arrow types.

A saved inventory is a storage tree anyone may have edited, truncated or planted:
every field is checked for its JSON type and meaning here, once, so that what
:meth:`reginsight.Inventory.load` and :meth:`~reginsight.Inventory.open` go on to do
meets only well-typed values, and a bad one is an :class:`~reginsight.InventoryError`
that says which field holds what (never a ``TypeError`` from deep inside pandas or
DuckDB). Pure: no I/O; the callers read the files.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from .._errors import InventoryError
from .._text import printable
from ._frames import BOOL, CAT, FRAME_NAMES, INT, NINT, SCHEMAS, STORAGE_COLUMNS, STR, TIME

FORMAT = "reginsight-inventory"
FORMAT_VERSION = 2  # 1: one Parquet file per frame (still loads)
#: the one column a format 2 frame is partitioned by (its folders' names)
PARTITION_COLUMN = "repository"


@dataclass(frozen=True)
class Meta:
    """``inventory.json``, checked: what load and open use of it."""

    version: int
    registry: str
    taken_at: pd.Timestamp  # UTC, nanoseconds
    scope: str | None
    repositories: tuple[str, ...] | None
    #: rows per frame as inventory.json states them (format 1 states none)
    rows: dict[str, int]
    #: {short form: repository}: the folders named in short form (checked by the caller,
    #: which knows how a short form is made)
    partition_names: dict[str, str]


def check_meta(meta: Any, where: str = "inventory.json") -> Meta:
    """``meta`` (parsed JSON, any value) as a :class:`Meta`; InventoryError naming the
    first field that is missing or holds a value of the wrong JSON type or meaning.
    Keys it does not know are left alone: a later version may add some."""
    version = check_format(meta, where)
    registry = _field(meta, "registry", str, "a string", where)
    taken_at = _timestamp(_field(meta, "taken_at", str, "an ISO timestamp string", where),
                          where)
    scope = _field(meta, "scope", str, "a string or null", where, optional=True)
    repositories = _names(meta, where)
    _field(meta, "reginsight", str, "a string (the version that saved it)", where,
           optional=True)
    partitioned_by = _field(meta, "partitioned_by", str, f'"{PARTITION_COLUMN}"', where,
                            optional=True)
    if partitioned_by not in (None, PARTITION_COLUMN):
        raise InventoryError(f'{where}: "partitioned_by" must be "{PARTITION_COLUMN}", got '
                             f"{_shown(partitioned_by)}")
    return Meta(version=version, registry=registry, taken_at=taken_at, scope=scope,
                repositories=repositories, rows=_rows(meta, version, where),
                partition_names=_partition_names(meta, where))


def check_format(meta: Any, where: str = "inventory.json") -> int:
    """The format version of ``meta`` (parsed JSON, any value): InventoryError unless it
    is a reginsight inventory of a version this reads. All a save needs to know before
    it replaces one (:mod:`._replace`); :func:`check_meta` checks the rest."""
    if not isinstance(meta, dict):
        raise InventoryError(f"{where} is not a reginsight inventory: it must be a JSON "
                             f"object, got {_shown(meta)}")
    if meta.get("format") != FORMAT:
        said = ("has no" if "format" not in meta
                else f"has {_shown(meta['format'])} as its")
        raise InventoryError(f'{where} is not a reginsight inventory: it {said} "format" '
                             f'(a reginsight inventory says "{FORMAT}")')
    version = _field(meta, "version", int, "a whole number", where)
    if version not in (1, FORMAT_VERSION):
        raise InventoryError(f"{where}: inventory format {version} is not one this "
                             f"version reads (1 to {FORMAT_VERSION})")
    return version


def _field(meta: dict[str, Any], key: str, kind: type, wanted: str, where: str, *,
           optional: bool = False) -> Any:
    """``meta[key]`` when it is a ``kind`` (None when ``optional`` and absent or null)."""
    value = meta.get(key, _ABSENT)
    if optional and value in (_ABSENT, None):
        return None
    if value is _ABSENT:
        raise InventoryError(f'{where}: "{key}" is missing (it must be {wanted})')
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InventoryError(f'{where}: "{key}" must be {wanted}, got {_shown(value)}')
    return value


def _timestamp(text: str, where: str) -> pd.Timestamp:
    """An ISO 8601 time, strictly (``pd.Timestamp`` alone would take "now"), in UTC
    (a time without an offset is UTC, as every time reginsight writes), within what
    the frames' nanosecond times hold."""
    wanted = f'{where}: "taken_at" must be an ISO timestamp string, got {_shown(text)}'
    try:
        moment = pd.Timestamp(datetime.fromisoformat(text))
        moment = (moment.tz_localize("UTC") if moment.tz is None
                  else moment.tz_convert("UTC"))
        return moment.as_unit("ns")
    except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        if _parses(text):
            raise InventoryError(f"{wanted} (outside {pd.Timestamp.min.year + 1} to "
                                 f"{pd.Timestamp.max.year - 1})") from None
        raise InventoryError(wanted) from None


def _parses(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _names(meta: dict[str, Any], where: str) -> tuple[str, ...] | None:
    names = _field(meta, "repositories", list, "an array of repository names or null",
                   where, optional=True)
    if names is None:
        return None
    for name in names:
        if not isinstance(name, str):
            raise InventoryError(f'{where}: "repositories" must hold repository names '
                                 f"(strings), got {_shown(name)} among them")
    return tuple(sorted(names))


def _rows(meta: dict[str, Any], version: int, where: str) -> dict[str, int]:
    """``frames``: {name: {"rows": N, "partitioned": bool}} for every frame (format 2
    always wrote all of them; format 1 wrote none)."""
    frames = _field(meta, "frames", dict, "an object with an entry per frame", where,
                    optional=version == 1)
    if frames is None:
        return {}
    unknown = sorted(set(frames) - set(FRAME_NAMES))
    if unknown:
        raise InventoryError(f'{where}: "frames" names "{printable(unknown[0], limit=60)}", '
                             f"which is no frame (the frames: {', '.join(FRAME_NAMES)})")
    missing = [name for name in FRAME_NAMES if name not in frames]
    if missing and version != 1:
        raise InventoryError(f'{where}: "frames" has no entry for {", ".join(missing)}')
    rows = {}
    for name, entry in frames.items():
        at = f'"frames"."{name}"'
        if not isinstance(entry, dict):
            raise InventoryError(f"{where}: {at} must be an object "
                                 f'({{"rows": N, "partitioned": true|false}}), got '
                                 f"{_shown(entry)}")
        count = entry.get("rows", _ABSENT)
        if count is _ABSENT:
            raise InventoryError(f'{where}: {at} has no "rows"')
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InventoryError(f'{where}: {at}."rows" must be a whole number of 0 or more, '
                                 f"got {_shown(count)}")
        partitioned = entry.get("partitioned", False)
        if not isinstance(partitioned, bool):
            raise InventoryError(f'{where}: {at}."partitioned" must be true or false, got '
                                 f"{_shown(partitioned)}")
        rows[name] = count
    return rows


def _partition_names(meta: dict[str, Any], where: str) -> dict[str, str]:
    names = _field(meta, "partition_names", dict,
                   "an object mapping each short form to its repository", where,
                   optional=True)
    for short, name in (names or {}).items():
        if not isinstance(name, str):
            raise InventoryError(f'{where}: "partition_names" must map each short form to '
                                 f"a repository name (a string), got {_shown(name)} for "
                                 f"{printable(short, limit=80)!r}")
    return dict(names or {})


#: a key that is absent (None is JSON's null)
_ABSENT: Any = object()


def _shown(value: Any) -> str:
    """A JSON value as a message names it: its type, and a short, inert form of it."""
    if value is _ABSENT:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return f'the string "{printable(value, limit=60)}"'
    return f"the number {printable(value, limit=60)}"


# ------------------------------------------------------------------ the files


#: pyarrow 16 added string views
_is_view = getattr(pa.types, "is_string_view", lambda _: False)


def _strings(kind: pa.DataType) -> bool:
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or _is_view(kind)
            or (pa.types.is_dictionary(kind) and _strings(kind.value_type)))


def _text(kind: pa.DataType) -> bool:
    return _strings(kind) or pa.types.is_null(kind)


def _zoned_time(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) and kind.tz is not None


#: what Arrow type holds each dtype of the schemas; null: a column without a value
_HOLDS = {
    CAT: ("text", _text), STR: ("text", _text),
    INT: ("whole numbers", pa.types.is_integer),
    NINT: ("whole numbers", lambda k: pa.types.is_integer(k) or pa.types.is_null(k)),
    TIME: ("times with a time zone", lambda k: _zoned_time(k) or pa.types.is_null(k)),
    BOOL: ("true/false", pa.types.is_boolean),
}


def check_columns(name: str, schema: pa.Schema, where: str, *,
                  optional: Collection[str] = (), renamed: Mapping[str, str] | None = None,
                  partitioned: bool = False) -> None:
    """InventoryError unless ``schema`` (a file's or a frame's, as Arrow reads it) has
    every column of frame ``name`` (but those in ``optional``: an older version did not
    save them; a column may go by an older name, ``renamed``: {old: new}; a
    ``partitioned`` file keeps its repository in its folder's name), each once and of
    a type that holds the column's values. Columns the schema does not know pass."""
    old = {new: previous for previous, new in (renamed or {}).items()}
    wanted = {**SCHEMAS[name], **STORAGE_COLUMNS.get(name, {})}
    for column, dtype in wanted.items():
        found = [field for field in schema if field.name in (column, old.get(column))]
        if len(found) > 1:
            raise InventoryError(f"{where}: the column {column} appears {len(found)} times")
        if not found:
            if (column in optional or column in STORAGE_COLUMNS.get(name, {})
                    or (partitioned and column == PARTITION_COLUMN)):
                continue
            raise InventoryError(f"{where}: no column {column}")
        words, holds = _HOLDS[dtype]
        if not holds(found[0].type):
            raise InventoryError(f"{where}: the column {found[0].name} holds "
                                 f"{found[0].type}, not {words}")


def check_agreement(name: str, schemas: Iterable[tuple[str, pa.Schema]]) -> None:
    """InventoryError when two files of frame ``name`` (``schemas``: (where, schema) of
    each) give one column different types: a reader takes the first file's types
    for all (DuckDB, pyarrow), and another file's values would not fit them."""
    seen: dict[str, tuple[str, pa.DataType]] = {}
    for where, schema in schemas:
        for field in schema:
            first, kind = seen.setdefault(field.name, (where, field.type))
            if kind != field.type:
                raise InventoryError(f"{where}: the column {field.name} holds {field.type} "
                                     f"where {first} holds {kind}: the files of {name} "
                                     "must agree")


def check_rows(name: str, found: int, stated: Mapping[str, int], where: str) -> None:
    """InventoryError when frame ``name`` has ``found`` rows where inventory.json
    states another count (``stated``: :attr:`Meta.rows`)."""
    rows = stated.get(name)
    if rows is not None and rows != found:
        raise InventoryError(f"{where}: {found} rows where inventory.json says {rows} (a "
                             "save was interrupted, or files were changed since)")


def engine_said(exc: BaseException) -> str:
    """What pyarrow, pandas or DuckDB said, for a message: the error's type and the
    first line of its text, short."""
    text = str(exc).strip().splitlines()
    return type(exc).__name__ + (f": {printable(text[0], limit=300)}" if text else "")
