"""The Inventory: a registry's contents as tidy DataFrames, kept as Parquet.

Built by :func:`reginsight.crawl` and :func:`reginsight.scan_storage` (through
:mod:`._assemble`); this module holds the frames, saves and loads them, and summarises
them in notebooks. The columns are documented on :class:`Inventory`.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._errors import InventoryError
from .._text import inert, printable
from .._units import format_bytes
from ._dataset import (
    PARTITIONED,
    load_meta,
    read_frame,
    short_forms,
    utf8_path,
    write_frame,
    write_meta,
)
from ._frames import (
    FRAME_NAMES,
    SCHEMAS,
    STORAGE_FRAMES,
    check,
    conform,
    empty,
    tidy,
    with_tag_images,
)
from ._lazy import LazyInventory
from ._replace import check_replaceable, discard, save_target, stage, swap_in
from ._upgrade import DERIVED, RENAMED, upgrade
from ._validate import Meta, check_columns, check_rows, engine_said

T = TypeVar("T")


class Inventory:
    """What a registry holds, as tidy pandas DataFrames: one attribute per frame.

    Made by :func:`reginsight.crawl` (the registry's API) or
    :func:`reginsight.scan_storage` (its storage); kept with :meth:`save` and
    :meth:`load`. Every frame has at least the columns below, in this order (a later
    version may append columns), is sorted by its leading key columns and has a fresh
    RangeIndex, so two crawls of an unchanged registry compare equal with
    ``pandas.testing.assert_frame_equal``. Dtypes: category (strings that repeat;
    sorted categories), string (pandas' ``string``), int64, Int64 (nullable: NA where
    the registry would not say, and an ``errors`` row says why), bool and
    datetime64[ns, UTC].

    ``tags``, one row per tag:
        repository (category), tag (string), digest (string), media_type (category),
        created (datetime64[ns, UTC]: when the image the tag names was built, from
        its config; for an index, its newest image's time, as
        :func:`reginsight.image_created`), size (Int64: that digest's
        ``manifests.size``). Both NaT/NA when the tag's manifest could not be read;
        derived from ``manifests`` when an Inventory is made from tags without them.

    ``manifests``, one row per (repository, digest); the manifests the tags reach,
    through indexes at any depth, plus the untagged referrers the referrers API lists
    and the untagged subjects referrers name (a storage scan: every revision):
        repository (category), digest (string), media_type (category), kind
        (category: image, index, schema1), parent (string: the index listing it, or
        NA), os, architecture, variant (category), config_digest (string), created
        (datetime64[ns, UTC]: the config's ``created``; NaT for an index), size (Int64:
        an image's config + distinct layer bytes; an index's distinct blobs of all its
        children), layers (Int64: how many; NA when a child could not be read),
        manifest_size (int64: the manifest's own bytes), role (category: image, index,
        signature, attestation, sbom, artifact), artifact_type (string: its
        ``artifactType``, else the media type that told its role; NA for images and
        indexes), subject (string: the digest it is about, or NA), subject_source
        (category: subject, referrers API, fallback tag, cosign tag, buildx
        annotation).

    ``layers``, one row per layer of each image:
        repository (category), manifest (category: the image's digest), position
        (int64), digest (category), size (Int64), media_type (category).

    ``blobs``, one row per distinct blob (layers, configs and manifests):
        digest (string), size (Int64), kind (category: layer, config, manifest),
        repositories (int64: how many hold it), manifests (int64: how many reference
        it), media_type (category).

    ``children``, one row per entry of every index:
        repository (category), parent (string: the index's digest, as
        ``manifests.parent``; saved inventories named this column ``index`` and are
        renamed on load), position (int64), digest (string), media_type (category),
        os, architecture, variant (category), subject (string: the entry a buildx
        attestation entry attests, or NA).

    ``errors``, what could not be read; the crawl went on:
        repository (category), reference (string), stage (category), error (string).

    Only a storage scan fills these four; after a crawl they are empty:

    ``uploads``, unfinished uploads:
        repository (category), uuid (string), started (datetime64[ns, UTC]), size
        (Int64: NA where the storage does not keep the data as a file).

    ``tag_history``, every digest each tag has pointed at:
        repository (category), tag (string), digest (string), current (bool: where
        it points now), linked (datetime64[ns, UTC]: when the storage wrote that
        link; NaT if it does not say).

    ``layer_links``, the blobs each repository links (pushed or mounted into it):
        repository (category), digest (string).

    ``folders``, the folders each repository has, which decide what a registry's
    garbage collector visits (2.x finds a repository by its ``_layers``, 3.x by its
    ``_manifests``; ``--delete-untagged`` reads ``_manifests/tags``):
        repository (category), folder (category: ``_layers``, ``_manifests``,
        ``_manifests/tags``, ``_uploads``).

    A scan also appends ``manifests.tagged`` (bool: a tag reaches it, directly or
    through indexes) and ``blobs.on_disk`` (bool: its data is in the storage), and
    ``blobs`` then lists every blob in the storage, referenced or not (kind NA when
    nothing references it).

    ``registry`` is the registry's URL (never credentials) or the storage root;
    ``taken_at`` when the crawl or scan finished (UTC); ``scope`` which repositories
    were asked for (None: the whole catalog); ``repositories`` the names a crawl
    read, tags or not (a repository without tags has no row in any frame; None when
    not known: a storage scan, an inventory saved by an earlier version).
    :meth:`summary` gives the counts shown by ``repr``;
    :func:`reginsight.storage_summary` the byte figures.
    """

    def __init__(self, *, registry: str, taken_at: pd.Timestamp, scope: str | None = None,
                 repositories: Iterable[str] | None = None, **frames: pd.DataFrame) -> None:
        for name in STORAGE_FRAMES:
            frames.setdefault(name, empty(name))
        if set(frames) != set(FRAME_NAMES):
            raise TypeError(f"Inventory needs exactly the frames {FRAME_NAMES}")
        if not {"created", "size"} <= set(frames["tags"].columns):  # derived: derive them
            frames["tags"] = with_tag_images(frames["tags"], frames["manifests"],
                                             frames["children"])
        for name, frame in frames.items():
            check(name, frame)
        self.registry = registry
        self.taken_at = taken_at
        #: which repositories were asked for: None for the whole catalog
        self.scope = scope
        #: the repositories a crawl read, tags or not; None: not known
        self.repositories: tuple[str, ...] | None = (
            None if repositories is None else tuple(sorted(map(str, repositories))))
        #: what titles and messages call it instead of ``registry`` (the bundled
        #: sample: "the bundled sample"); None: its registry. Not saved.
        self.label: str | None = None
        #: derived structures (analysis), keyed by the frames they were built from
        self._cache: dict[str, Any] = {}
        self.tags: pd.DataFrame = frames["tags"]
        self.manifests: pd.DataFrame = frames["manifests"]
        self.layers: pd.DataFrame = frames["layers"]
        self.blobs: pd.DataFrame = frames["blobs"]
        self.children: pd.DataFrame = frames["children"]
        self.errors: pd.DataFrame = frames["errors"]
        self.uploads: pd.DataFrame = frames["uploads"]
        self.tag_history: pd.DataFrame = frames["tag_history"]
        self.layer_links: pd.DataFrame = frames["layer_links"]
        self.folders: pd.DataFrame = frames["folders"]

    @property
    def from_storage(self) -> bool:
        """True when the inventory was read from the registry's storage: it then holds
        every manifest revision and every blob, not only what tags reach."""
        return "tagged" in self.manifests.columns and "on_disk" in self.blobs.columns

    @property
    def complete(self) -> bool:
        """True for a crawl of the whole catalog that read everything. Figures that
        need the whole registry (what garbage collection frees) are upper bounds
        otherwise: blobs shared with repositories outside the inventory look free."""
        return self.scope is None and self.errors.empty

    def derived(self, key: str, build: Callable[[Inventory], T]) -> T:
        """A structure built from the frames (by the analysis), built once and kept
        while the frames stay the same objects: reassigning a frame rebuilds it."""
        frames = tuple(frame for _, frame in self.frames())
        cached = self._cache.get(key)
        if cached is not None and all(a is b for a, b in zip(cached[0], frames, strict=True)):
            return cached[1]
        value = build(self)
        self._cache[key] = (frames, value)  # the frames themselves: ids get reused
        return value

    def frames(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """(name, frame) for every frame, in DESIGN order."""
        for name in FRAME_NAMES:
            yield name, getattr(self, name)

    # ----------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the inventory into directory ``path`` (created if needed) as a Parquet
        dataset partitioned by repository, readable by DuckDB, Dask, Spark and pyarrow
        (the layout: :mod:`reginsight.inventory._dataset`, docs/guide.md "Saved inventories"),
        and ``inventory.json`` (registry URL, time, scope, versions, rows per frame,
        the repositories whose names are too long for a folder).

        ``path`` must be a missing or empty folder, or hold an earlier inventory: that
        one is replaced whole, and files of the user's beside it stay. A folder holding
        anything else, or a file reginsight did not write among the earlier
        inventory's, raises InventoryError and is left as it was
        (:func:`~reginsight.inventory._replace.check_save_target`). The new dataset is
        written beside the old one and moved in place: a save that fails leaves the
        earlier one (and this inventory) as they were, and nothing lands outside
        ``path``."""
        utf8_path(path)  # checked first: pyarrow would fail midway on a non-UTF-8 name
        directory, stale = save_target(path)  # format 1's files are stale
        # a short form two names share would merge their rows: refused before writing
        partitions = short_forms(_repositories(self))
        staged = stage(directory)
        try:
            for name, frame in self.frames():
                write_frame(staged, name, frame)
            write_meta(staged, registry=self.registry, taken_at=self.taken_at.isoformat(),
                       scope=self.scope, repositories=(None if self.repositories is None
                                                       else list(self.repositories)),
                       rows={name: len(frame) for name, frame in self.frames()},
                       partitions=partitions)
            # checked again: the user had the time of the writing to add files
            check_replaceable(directory, stale)
        except BaseException:
            discard(staged)  # the earlier save stays as it was
            raise
        # inventory.json out first and in last; format 1's files go
        swap_in(directory, staged, ["inventory.json", *FRAME_NAMES], stale=stale)
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Inventory:
        """Read an inventory written by :meth:`save` (any format version) into pandas;
        dtypes come back exactly. For one larger than memory, :meth:`open`.

        InventoryError, naming what is wrong, when ``path`` holds no inventory, when a
        field of its inventory.json is missing or of the wrong type (the checks:
        :mod:`reginsight.inventory._validate`), or when its files are not Parquet, lack
        a column, hold one of the wrong type, or hold other rows than it says. Nothing
        on disk changes, whatever the outcome."""
        directory = utf8_path(path)
        meta = load_meta(directory)
        frames = {}
        for name in FRAME_NAMES:
            frame = _read(directory, name, meta)
            if frame is not None:
                frames[name] = frame
        try:
            frames = {name: tidy(name, _ordered(name, conform(name, frame)))
                      for name, frame in upgrade(frames).items()}
            return cls(registry=meta.registry, taken_at=meta.taken_at, scope=meta.scope,
                       repositories=meta.repositories, **frames)
        except (KeyError, ValueError, TypeError, AttributeError, IndexError,
                pa.ArrowException) as exc:  # values the column types let through
            raise InventoryError(f"{directory}: the frames cannot be read back "
                                 f"({engine_said(exc)})") from None

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> LazyInventory:
        """A saved inventory, read where it lies: out-of-core, through DuckDB (the
        ``duckdb`` extra). :func:`reginsight.storage_summary`,
        :func:`~reginsight.storage_by_repository`, :func:`~reginsight.layer_sharing`,
        :func:`~reginsight.reclaimable` (and ``reclaimable_blobs``) and
        :func:`~reginsight.disk_usage` accept it and give the numbers they give for
        :meth:`load`'s Inventory. Options: ``memory_limit`` ("3GB"), ``threads``,
        ``temp_directory`` (where DuckDB spills). See :class:`LazyInventory`."""
        return LazyInventory(path, **options)

    # ------------------------------------------------------------- notebooks

    def failed_reads(self) -> tuple[str, str, pd.Series] | None:
        """What messages say of ``errors``: ("2 reads failed", "REPOSITORY REFERENCE"
        of the first, its row); None when every read succeeded."""
        if self.errors.empty:
            return None
        first = self.errors.iloc[0]
        where = " ".join(str(part) for part in (first["repository"], first["reference"])
                         if part)
        count = len(self.errors)
        return f"{count:,} read{'s' if count > 1 else ''} failed", where, first

    def repository_names(self) -> set[str]:
        """The repositories the inventory knows: those its tags hold, and those a crawl
        recorded as read (``repositories``: one whose tags were all deleted still
        counts while the registry lists it)."""
        return {*self.tags["repository"].astype(str), *(self.repositories or ())}

    def summary(self) -> dict[str, Any]:
        """Counts and totals shown by ``repr`` and ``_repr_html_`` (ints): registry,
        taken_at, repositories (:meth:`repository_names`) and tags (as
        :func:`reginsight.storage_summary` counts them), images, indexes, schema1
        (``manifests`` rows of each kind), blobs
        and blob_bytes (every row of ``blobs`` — layers, configs and the manifests
        themselves; after a storage scan every blob on disk — and their bytes), errors.
        The byte figures (``logical_bytes``; ``stored_bytes``, the distinct layer and
        config blobs tags reach, and their count ``stored_blobs``) are
        :func:`reginsight.storage_summary`'s."""
        kinds = self.manifests["kind"].value_counts()
        return {
            "registry": self.registry,
            "taken_at": self.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "repositories": len(self.repository_names()),
            "tags": len(self.tags),
            "images": int(kinds.get("image", 0)),
            "indexes": int(kinds.get("index", 0)),
            "schema1": int(kinds.get("schema1", 0)),
            "blobs": len(self.blobs),
            "blob_bytes": int(self.blobs["size"].sum()),  # every blob, manifests too
            "errors": len(self.errors),
        }

    def _shown_as(self) -> str:
        """The label, with the registry it came from (the sample's is a loopback URL, so
        it must not pass for the user's registry)."""
        return f"{self.label} ({self.registry})" if self.label else self.registry

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Inventory {printable(self._shown_as(), limit=200)} at {s['taken_at']}: "
                f"{s['repositories']} repositories, {s['tags']} tags, {s['blobs']} blobs, "
                f"{format_bytes(s['blob_bytes'])} in blobs, {s['errors']} errors>")

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k.replace('_', ' '))}</th>"
            f"<td style='text-align:right'>"
            f"{inert(format_bytes(v) if k == 'blob_bytes' else v)}</td></tr>"
            for k, v in s.items())
        top = (self.tags.groupby("repository", observed=True).size()
               .sort_values(ascending=False).head(5))
        top_rows = "".join(f"<tr><td>{inert(r)}</td><td>{n}</td></tr>"
                           for r, n in top.items())
        errors = ""
        if len(self.errors):
            errors = (f"<p><b>{len(self.errors)} errors</b>, e.g. "
                      f"{inert(printable(self.errors['error'].iloc[0], limit=200))}</p>")
        label = f" of {inert(self.label)}" if self.label else ""
        return (f"<div><b>reginsight Inventory{label}</b><table>{rows}</table>"
                f"<p>Most tags:</p><table>{top_rows}</table>{errors}</div>")


def _read(directory: Path, name: str, meta: Meta) -> pd.DataFrame | None:
    """Frame ``name`` as saved, its columns checked (those older versions lacked may
    lack: :data:`._upgrade.DERIVED`), and its rows counted against inventory.json;
    None for a storage frame format 1 did not save."""
    where = f"{directory}/{name}"
    checks = {"optional": DERIVED.get(name, ()), "renamed": RENAMED.get(name)}
    if meta.version == 1:  # one file per frame; the storage frames came later
        single = directory / f"{name}.parquet"
        if name in STORAGE_FRAMES and not single.exists() and not single.is_symlink():
            return None
        if not single.is_file():
            raise InventoryError(f"{single}: no such file (every frame has one)")
        try:
            check_columns(name, pq.read_schema(single), str(single), **checks)
            frame = pd.read_parquet(single)
        except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as exc:
            raise InventoryError(f"{single}: cannot be read ({engine_said(exc)})") from None
        check_rows(name, len(frame), meta.rows, str(single))
        return frame
    table = read_frame(directory, name, names=meta.partition_names, **checks)
    if table is None:
        check_rows(name, 0, meta.rows, where)
        return empty(name)
    check_rows(name, table.num_rows, meta.rows, where)
    try:
        return table.to_pandas()
    except (ValueError, TypeError, KeyError, pa.ArrowException) as exc:  # a time zone
        raise InventoryError(f"{where}: cannot be read ({engine_said(exc)})") from None


def _repositories(inv: Inventory) -> set[str]:
    """The repositories the partitioned frames hold: their folders' names."""
    return {str(name) for frame in PARTITIONED
            for name in getattr(inv, frame)["repository"].dropna().unique()}


def _ordered(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The schema's columns first, in order (a partition column is read back last)."""
    pinned = list(SCHEMAS[name])
    return frame[pinned + [c for c in frame.columns if c not in pinned]]
