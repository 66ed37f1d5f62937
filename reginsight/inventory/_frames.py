"""The inventory frames: their columns, dtypes and order, in one place.

Strings that repeat (repository, media type, kind, platform, the manifest and blob
digests of the long ``layers`` frame) are categoricals with sorted categories, so
memory stays low and two crawls of one registry compare equal; other strings use
pandas' ``string`` dtype; counts are int64; byte sizes are nullable Int64, NA only
where the registry would not say (an ``errors`` row then says why); ``created`` is
datetime64[ns, UTC].

Two ``tags`` columns are derived from the other frames (:func:`with_tag_images`):
``created`` and ``size``, the image each tag names, so a tag's age and bytes need no
merge with ``manifests``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

CAT = "category"
STR = "string"
INT = "int64"
NINT = "Int64"
TIME = "datetime64[ns, UTC]"
BOOL = "bool"

SCHEMAS: dict[str, dict[str, str]] = {
    "tags": {"repository": CAT, "tag": STR, "digest": STR, "media_type": CAT,
             "created": TIME, "size": NINT},
    "manifests": {
        "repository": CAT, "digest": STR, "media_type": CAT, "kind": CAT, "parent": STR,
        "os": CAT, "architecture": CAT, "variant": CAT, "config_digest": STR,
        "created": TIME, "size": NINT, "layers": NINT, "manifest_size": INT,
        "role": CAT, "artifact_type": STR, "subject": STR, "subject_source": CAT,
    },
    "layers": {"repository": CAT, "manifest": CAT, "position": INT, "digest": CAT,
               "size": NINT, "media_type": CAT},
    "blobs": {"digest": STR, "size": NINT, "kind": CAT, "repositories": INT, "manifests": INT,
              "media_type": CAT},
    "children": {"repository": CAT, "parent": STR, "position": INT, "digest": STR,
                 "media_type": CAT, "os": CAT, "architecture": CAT, "variant": CAT,
                 "subject": STR},
    "errors": {"repository": CAT, "reference": STR, "stage": CAT, "error": STR},
    # what only a registry's storage shows (scan_storage); empty after a crawl
    "uploads": {"repository": CAT, "uuid": STR, "started": TIME, "size": NINT},
    "tag_history": {"repository": CAT, "tag": STR, "digest": STR, "current": BOOL,
                    "linked": TIME},
    "layer_links": {"repository": CAT, "digest": STR},
    "folders": {"repository": CAT, "folder": CAT},
}

SORT_KEYS: dict[str, list[str]] = {
    "tags": ["repository", "tag"],
    "manifests": ["repository", "digest"],
    "layers": ["repository", "manifest", "position"],
    "blobs": ["digest"],
    "children": ["repository", "parent", "position"],
    "errors": ["repository", "reference", "stage", "error"],
    "uploads": ["repository", "uuid"],
    "tag_history": ["repository", "tag", "linked", "digest"],
    "layer_links": ["repository", "digest"],
    "folders": ["repository", "folder"],
}

FRAME_NAMES = tuple(SCHEMAS)
#: ``errors`` stages of a storage scan past which garbage-collect cannot be predicted:
#: the registry's collector stops while marking (a revision link or a manifest it
#: cannot read, a repository name it cannot parse), deleting nothing, or it goes where
#: the scan refused to (a link it follows, a FIFO it blocks on)
GC_FATAL_STAGES = frozenset({"revision link", "manifest", "path"})
#: frames only a storage scan fills: absent from older saved inventories, empty then
STORAGE_FRAMES = ("uploads", "tag_history", "layer_links", "folders")
#: columns only a storage scan adds, after the pinned ones
STORAGE_COLUMNS = {"manifests": {"tagged": BOOL}, "blobs": {"on_disk": BOOL}}


_EARLIEST = pd.Timestamp.min.tz_localize("UTC")
_LATEST = pd.Timestamp.max.tz_localize("UTC")


def empty(name: str) -> pd.DataFrame:
    """A frame with no rows, typed."""
    return _empty(name).copy()


@functools.cache
def _empty(name: str) -> pd.DataFrame:
    return build(name, [])


def _column(values: Sequence[Any], dtype: str) -> pd.Series:
    if dtype == CAT:
        fast = pd.Categorical(values)  # sorts its categories; 2.5x quicker than below
        if len(fast.categories) and pd.api.types.is_string_dtype(fast.categories.dtype):
            return pd.Series(fast)
        series = pd.Series(values, dtype=STR)
        categories = sorted(series.dropna().unique())
        return series.astype(pd.CategoricalDtype(categories=categories))
    if dtype == TIME:
        parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce",
                                format="ISO8601")
        if parsed.dtype != TIME:  # a time nanoseconds cannot hold (cosign writes year 1)
            parsed = parsed.where((parsed >= _EARLIEST) & (parsed <= _LATEST))
        return pd.Series(parsed, dtype=TIME)
    return pd.Series(values, dtype=dtype)


def build(name: str, rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    """A frame from row tuples in schema order: typed, sorted, fresh RangeIndex."""
    schema = SCHEMAS[name]
    columns = list(zip(*rows, strict=True)) or [()] * len(schema)
    frame = pd.DataFrame({col: _column(list(values), dtype)
                          for (col, dtype), values in zip(schema.items(), columns, strict=True)})
    return tidy(name, frame)


def tidy(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Sort a frame by its keys and give it a fresh RangeIndex."""
    keys = SORT_KEYS[name]
    # categoricals sort by category order, which is sorted: the same as by value
    return frame.sort_values(keys, kind="stable", na_position="first").reset_index(drop=True)


def conform(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Cast a frame read back from Parquet to its schema's dtypes (Parquet keeps them,
    except for columns with no values at all, which come back as object)."""
    out = frame.copy()
    for col, dtype in SCHEMAS[name].items():
        if col not in out:
            raise ValueError(f"{name}: column {col!r} is missing")
        current = out[col].dtype
        if dtype == CAT and not isinstance(current, pd.CategoricalDtype):
            # an object array hashes at C speed; a list of Arrow scalars does not
            out[col] = _column(out[col].to_numpy(dtype=object, na_value=None), CAT)
        elif dtype != CAT and str(current) != dtype:
            out[col] = out[col].astype(dtype)
    return out


def check(name: str, frame: pd.DataFrame) -> None:
    """Raise ValueError unless ``frame`` has this frame's columns, in order, with dtypes."""
    schema = SCHEMAS[name]
    if list(frame.columns[: len(schema)]) != list(schema):
        raise ValueError(f"{name}: columns {list(frame.columns)} != {list(schema)}")
    for col, dtype in schema.items():
        actual = frame[col].dtype
        ok = isinstance(actual, pd.CategoricalDtype) if dtype == CAT else str(actual) == dtype
        if not ok:
            raise ValueError(f"{name}.{col}: dtype {actual} != {dtype}")


def image_times(manifests: pd.DataFrame, children: pd.DataFrame) -> pd.Series:
    """The creation time of each ``manifests`` row (same order, datetime64[ns, UTC]):
    its own ``created`` (an image's config); where that is NaT (an index has no
    config), the newest among the manifests it reaches through ``children``, at any
    depth, in its repository. NaT where nothing says."""
    own = pd.Series(manifests["created"], copy=False).astype(TIME).reset_index(drop=True)
    keys = _keys(manifests["repository"], manifests["digest"])
    parent = keys.get_indexer(_keys(children["repository"], children["parent"]))
    child = keys.get_indexer(_keys(children["repository"], children["digest"]))
    edge = (parent >= 0) & (child >= 0)
    parent, child = parent[edge], child[edge]
    known = own.array.asi8  # NaT is the smallest int64: max() passes over it
    newest = known.copy()
    while True:  # each pass reaches one level deeper; values only grow, so loops end
        below = np.full(len(newest), _NAT, dtype=np.int64)
        np.maximum.at(below, parent, newest[child])
        grown = np.maximum(newest, below)
        if np.array_equal(grown, newest):
            break
        newest = grown
    times = np.where(known != _NAT, known, newest).view("M8[ns]")
    return pd.Series(times, name="created").dt.tz_localize("UTC").astype(TIME)


def with_tag_images(tags: pd.DataFrame, manifests: pd.DataFrame, children: pd.DataFrame
                    ) -> pd.DataFrame:
    """``tags`` with its derived columns set (appended when absent): ``created``, the
    creation time of the image the tag names (an index: its newest image, see
    :func:`image_times`), and ``size``, that digest's ``manifests.size``. NaT/NA
    where the tag's manifest is not a row (its fetch failed: an ``errors`` row)."""
    rows = _keys(manifests["repository"], manifests["digest"]).get_indexer(
        _keys(tags["repository"], tags["digest"]))
    out = tags.copy()
    out["created"] = pd.Series(image_times(manifests, children).array.take(
        rows, allow_fill=True), index=out.index)
    out["size"] = pd.Series(pd.array(manifests["size"], dtype=NINT).take(
        rows, allow_fill=True), index=out.index)
    return out


_NAT = np.iinfo(np.int64).min


def _keys(repository: pd.Series, digest: pd.Series) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([pd.Series(repository).astype(str).to_numpy(dtype=object),
                                      pd.Series(digest).astype(str).to_numpy(dtype=object)])
