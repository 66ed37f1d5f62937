"""The Inventory: a registry's contents as tidy DataFrames, kept as Parquet.

Built by :func:`reginsight.crawl`; this module turns what a crawl learnt into the
frames pinned in DESIGN.md, saves and loads them, and summarises them in notebooks.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import __version__
from ._errors import RegistryError
from ._frames import FRAME_NAMES, build, check, conform
from ._units import format_bytes

if TYPE_CHECKING:
    from ._crawl import Crawler, ManifestInfo, Platform

FORMAT = "reginsight-inventory"
FORMAT_VERSION = 1


class InventoryError(RegistryError):
    """A saved inventory is missing, incomplete or not an inventory."""


class Inventory:
    """What a registry holds, as DataFrames (columns and dtypes per DESIGN.md).

    ``tags``: repository, tag, digest, media_type — one row per tag.
    ``manifests``: repository, digest, media_type, kind (image/index/schema1), parent
    (index digest or NA), os, architecture, variant, config_digest, created (UTC),
    size (image: config + distinct layer bytes; index: distinct blobs of all its
    children), layers (count; NA when a child could not be read), manifest_size —
    one row per (repository, digest).
    ``layers``: repository, manifest, position, digest, size, media_type.
    ``blobs``: digest, size, kind (layer/config/manifest), repositories and
    manifests (how many reference it), media_type — one row per distinct blob.
    ``children``: repository, index, position, digest, media_type, os,
    architecture, variant — the entries of every index.
    ``errors``: repository, reference, stage, error — what could not be read.

    ``registry`` is the registry's URL (never credentials), ``taken_at`` when the
    crawl finished (UTC).
    """

    def __init__(self, *, registry: str, taken_at: pd.Timestamp, scope: str | None = None,
                 **frames: pd.DataFrame) -> None:
        if set(frames) != set(FRAME_NAMES):
            raise TypeError(f"Inventory needs exactly the frames {FRAME_NAMES}")
        for name, frame in frames.items():
            check(name, frame)
        self.registry = registry
        self.taken_at = taken_at
        #: which repositories were asked for: None for the whole catalog
        self.scope = scope
        #: derived structures (analysis), keyed by the frames they were built from
        self._cache: dict[str, Any] = {}
        self.tags: pd.DataFrame = frames["tags"]
        self.manifests: pd.DataFrame = frames["manifests"]
        self.layers: pd.DataFrame = frames["layers"]
        self.blobs: pd.DataFrame = frames["blobs"]
        self.children: pd.DataFrame = frames["children"]
        self.errors: pd.DataFrame = frames["errors"]

    @property
    def complete(self) -> bool:
        """True for a crawl of the whole catalog that read everything. Figures that
        need the whole registry (what garbage collection frees) are upper bounds
        otherwise: blobs shared with repositories outside the inventory look free."""
        return self.scope is None and self.errors.empty

    def frames(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """(name, frame) for every frame, in DESIGN order."""
        for name in FRAME_NAMES:
            yield name, getattr(self, name)

    # ----------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the inventory into directory ``path`` (created if needed): one Parquet
        file per frame and ``inventory.json`` (registry URL, time, versions). Each file
        is written beside its final name and moved in place, so a link planted in
        the directory is replaced, never followed: nothing lands outside ``path``."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for name, frame in self.frames():
            _replace(directory, f"{name}.parquet", lambda f, fr=frame: fr.to_parquet(f))
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "registry": self.registry,
                "taken_at": self.taken_at.isoformat(), "scope": self.scope,
                "reginsight": __version__}
        _replace(directory, "inventory.json",
                 lambda f: f.write(json.dumps(meta, indent=2).encode()))
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Inventory:
        """Read an inventory written by :meth:`save`; dtypes come back exactly."""
        directory = Path(path)
        try:
            meta = json.loads((directory / "inventory.json").read_text())
        except (OSError, ValueError) as exc:
            raise InventoryError(f"{directory} holds no inventory ({type(exc).__name__})"
                                 ) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise InventoryError(f"{directory}/inventory.json is not a reginsight inventory")
        if meta.get("version") != FORMAT_VERSION:
            raise InventoryError(f"{directory}: inventory format {meta.get('version')} "
                                 f"is not {FORMAT_VERSION}")
        frames = {}
        for name in FRAME_NAMES:
            try:
                frames[name] = conform(name, pd.read_parquet(directory / f"{name}.parquet"))
            except (OSError, ValueError, TypeError) as exc:
                raise InventoryError(f"{directory}/{name}.parquet: {type(exc).__name__}"
                                     ) from None
        try:
            scope = meta.get("scope")
            return cls(registry=str(meta.get("registry", "")),
                       taken_at=pd.Timestamp(meta["taken_at"]),
                       scope=None if scope is None else str(scope), **frames)
        except (KeyError, ValueError) as exc:
            raise InventoryError(f"{directory}: {exc}") from None

    # ------------------------------------------------------------- notebooks

    def summary(self) -> dict[str, Any]:
        """Counts and totals shown by ``repr`` and ``_repr_html_``."""
        kinds = self.manifests["kind"].value_counts()
        return {
            "registry": self.registry,
            "taken_at": self.taken_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "repositories": int(self.tags["repository"].nunique()),
            "tags": len(self.tags),
            "images": int(kinds.get("image", 0)),
            "indexes": int(kinds.get("index", 0)),
            "schema1": int(kinds.get("schema1", 0)),
            "blobs": len(self.blobs),
            "blob_bytes": int(self.blobs["size"].sum()),  # every blob, manifests too
            "errors": len(self.errors),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Inventory {s['registry']} at {s['taken_at']}: {s['repositories']} "
                f"repositories, {s['tags']} tags, {s['blobs']} blobs, "
                f"{format_bytes(s['blob_bytes'])} in blobs, {s['errors']} errors>")

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k.replace('_', ' '))}</th>"
            f"<td style='text-align:right'>"
            f"{html.escape(format_bytes(v) if k == 'blob_bytes' else str(v))}</td></tr>"
            for k, v in s.items())
        top = (self.tags.groupby("repository", observed=True).size()
               .sort_values(ascending=False).head(5))
        top_rows = "".join(f"<tr><td>{html.escape(str(r))}</td><td>{n}</td></tr>"
                           for r, n in top.items())
        errors = ""
        if len(self.errors):
            errors = (f"<p><b>{len(self.errors)} errors</b>, e.g. "
                      f"{html.escape(str(self.errors['error'].iloc[0])[:200])}</p>")
        return (f"<div><b>reginsight Inventory</b><table>{rows}</table>"
                f"<p>Most tags:</p><table>{top_rows}</table>{errors}</div>")


def _replace(directory: Path, name: str, write: Any) -> None:
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(temporary, directory / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------- assembling


def assemble(crawler: Crawler) -> Inventory:
    """Turn what a crawl learnt into the inventory frames."""
    infos, platforms, sizes = crawler.manifests, crawler.platforms, crawler.blob_sizes
    reach: dict[str, set[str]] = defaultdict(set)
    parents: dict[tuple[str, str], set[str]] = defaultdict(set)
    descriptor_platform: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
    stack = [(repo, digest, None) for repo, _, digest, _ in crawler.tags]
    while stack:
        repo, digest, parent = stack.pop()
        if parent is not None:
            parents[(repo, digest)].add(parent)
        if digest in reach[repo]:
            continue
        reach[repo].add(digest)
        info = infos.get(digest)
        for child in info.children if info else ():
            descriptor_platform.setdefault((repo, child.digest),
                                           (child.os, child.architecture, child.variant))
            stack.append((repo, child.digest, digest))

    def blob_size(blob: Any) -> int | None:
        return blob.size if blob.size is not None else sizes.get(blob.digest)

    def parts(info: ManifestInfo) -> dict[str, int | None]:
        """Distinct config and layer blobs an image (or every child of an index) uses."""
        found: dict[str, int | None] = {}
        if info.children:
            for child in info.children:
                child_info = infos.get(child.digest)
                if child_info is None:
                    found[child.digest] = None  # unknown child: size unknown
                else:
                    found.update(parts(child_info))
            return found
        for blob in ([info.config] if info.config else []) + list(info.layers):
            found[blob.digest] = blob_size(blob)
        return found

    tags = [(repo, tag, digest, infos[digest].media_type if digest in infos else media_type)
            for repo, tag, digest, media_type in crawler.tags]
    manifests, layers, children = [], [], []
    blob_facts: dict[str, list[Any]] = {}  # digest -> [size, kind, media_type]
    blob_repos: dict[str, set[str]] = defaultdict(set)
    blob_users: dict[str, set[str]] = defaultdict(set)  # the manifests referencing a blob

    def note(digest: str, size: int | None, kind: str, media_type: str | None, repo: str,
             users: Iterable[str]) -> None:
        """Record a blob once; a size learnt later fills one that was unknown."""
        known = blob_facts.setdefault(digest, [size, kind, media_type])
        if known[0] is None and size is not None:
            known[0] = size
        blob_repos[digest].add(repo)
        blob_users[digest].update(users)

    for repo in sorted(reach):
        for digest in sorted(reach[repo]):
            info = infos.get(digest)
            if info is None:
                continue  # its fetch failed: an errors row says so
            platform = _platform_of(info, platforms)
            fallback = descriptor_platform.get((repo, digest), (None, None, None))
            used = parts(info)
            size = None if any(v is None for v in used.values()) else sum(used.values())
            if not info.children:
                layer_count = len(info.layers)
            elif all(child.digest in infos for child in info.children):
                layer_count = len({layer.digest for child in info.children
                                   for layer in infos[child.digest].layers})
            else:
                layer_count = None  # a child could not be read: unknown, not short
            parent = min(parents[(repo, digest)]) if parents.get((repo, digest)) else None
            manifests.append((
                repo, digest, info.media_type, info.kind, parent,
                (platform.os if platform else None) or fallback[0],
                (platform.architecture if platform else None) or fallback[1],
                (platform.variant if platform else None) or fallback[2],
                info.config.digest if info.config else None,
                platform.created if platform else None,
                size, layer_count, info.manifest_size))
            note(digest, info.manifest_size, "manifest", info.media_type, repo,
                 parents.get((repo, digest), ()))
            for position, layer in enumerate(info.layers):
                layers.append((repo, digest, position, layer.digest, blob_size(layer),
                               layer.media_type))
                note(layer.digest, blob_size(layer), "layer", layer.media_type, repo, (digest,))
            if info.config:
                note(info.config.digest, info.config.size, "config", info.config.media_type,
                     repo, (digest,))
            for position, child in enumerate(info.children):
                children.append((repo, digest, position, child.digest, child.media_type,
                                 child.os, child.architecture, child.variant))
    blobs = [(digest, size, kind, len(blob_repos[digest]), len(blob_users[digest]), media)
             for digest, (size, kind, media) in blob_facts.items()]
    return Inventory(
        registry=crawler.reg.url,
        taken_at=pd.Timestamp.now(tz="UTC"),
        scope=crawler.scope,
        tags=build("tags", tags),
        manifests=build("manifests", manifests),
        layers=build("layers", layers),
        blobs=build("blobs", blobs),
        children=build("children", children),
        errors=build("errors", crawler.errors),
    )


def _platform_of(info: ManifestInfo, platforms: dict[str, Platform]) -> Platform | None:
    if info.platform is not None:
        return info.platform
    if info.config is not None:
        return platforms.get(info.config.digest)
    return None


def known_facts(inv: Inventory) -> tuple[dict[str, ManifestInfo], dict[str, Platform],
                                         dict[str, int]]:
    """What a previous inventory knows by digest, for a recrawl that skips it."""
    from ._crawl import Blob, Child, ManifestInfo, Platform

    def text(value: Any) -> str | None:
        return None if pd.isna(value) else str(value)

    def created(value: Any) -> str | None:
        return None if pd.isna(value) else value.isoformat()

    layer_lists: dict[str, list[Blob]] = {}
    for row in inv.layers.drop_duplicates(["manifest", "position"]).itertuples(index=False):
        layer_lists.setdefault(str(row.manifest), []).append(
            Blob(str(row.digest), None if pd.isna(row.size) else int(row.size),
                 text(row.media_type)))
    child_lists: dict[str, list[Child]] = {}
    for row in inv.children.drop_duplicates(["index", "position"]).itertuples(index=False):
        child_lists.setdefault(str(row.index), []).append(Child(
            str(row.digest), text(row.media_type), text(row.os), text(row.architecture),
            text(row.variant)))
    blob_rows = inv.blobs.drop_duplicates("digest").set_index("digest")
    infos: dict[str, ManifestInfo] = {}
    platforms: dict[str, Platform] = {}
    for row in inv.manifests.drop_duplicates("digest").itertuples(index=False):
        platform = Platform(created(row.created), text(row.os), text(row.architecture),
                            text(row.variant))
        learnt = any(v is not None for v in (platform.created, platform.os,
                                             platform.architecture))
        config = None
        if not pd.isna(row.config_digest):
            found = blob_rows.loc[row.config_digest] if row.config_digest in blob_rows.index \
                else None
            config = Blob(str(row.config_digest),
                          None if found is None or pd.isna(found["size"]) else int(found["size"]),
                          None if found is None else text(found["media_type"]))
            if learnt:  # a config that failed last time is fetched again
                platforms[str(row.config_digest)] = platform
        infos[str(row.digest)] = ManifestInfo(
            digest=str(row.digest), media_type=text(row.media_type), kind=str(row.kind),
            manifest_size=int(row.manifest_size), config=config,
            layers=tuple(layer_lists.get(str(row.digest), ())),
            children=tuple(child_lists.get(str(row.digest), ())),
            platform=platform if row.kind == "schema1" else None)
    sizes = {str(d): int(s) for d, s in zip(inv.layers["digest"], inv.layers["size"],
                                            strict=True) if not pd.isna(s)}
    return infos, platforms, sizes
