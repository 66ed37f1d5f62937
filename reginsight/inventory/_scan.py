"""Read a Distribution registry's own storage into an :class:`Inventory`, read-only.

The tag API shows what tags reach; the storage holds everything: manifests a moved
tag left behind, blobs of deleted manifests, unfinished uploads. This module lists
the tree once (:mod:`._stores`: os.scandir locally, concurrent listings split by
prefix on S3), reads the small link files and the manifest and config blobs, and
hands the facts to the same assembly as a crawl. Any fsspec filesystem works (local,
s3, gcs, az ...); nothing is ever written.
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from .. import _mediatypes as mt
from .._errors import InvalidReference, InventoryError, ReginsightError
from .._text import printable
from ..registry._manifest import parse_manifest
from ..registry._reference import validate_repository, validate_tag
from ..registry.protocol import MANIFEST_LIMIT
from ._assemble import assemble
from ._facts import (
    CONFIG_LIMIT,
    Blob,
    CrawlResult,
    Facts,
    ManifestInfo,
    manifest_info,
    parse_config,
)
from ._frames import build, conform, tidy
from ._inventory import Inventory
from ._layout import V2, Entry, blob_path, classify, link_target, too_large
from ._localstore import LocalStore
from ._progress import progress_bar
from ._s3http import is_s3
from ._s3store import CONCURRENCY, S3Store
from ._stores import FsspecStore, backend_error, shown

#: a link holds one digest (``sha512:`` and 128 hex digits at most); ``startedat`` a
#: timestamp. Anything past this is no such file, and is never read whole.
SMALL_FILE_LIMIT = 512


@dataclass
class _Tree:
    """What the listing says, before any file is read."""

    blobs: dict[str, int] = field(default_factory=dict)  # digest -> bytes of data
    # repo, digest (from the path), link path, the link's MD5 when the listing gave it, size
    revisions: list[tuple[str, str, str, str | None, int]] = field(default_factory=list)
    # repo, tag, link path, MD5, size
    tags: list[tuple[str, str, str, str | None, int]] = field(default_factory=list)
    history: list[tuple[str, str, str, Any]] = field(default_factory=list)  # + digest, time
    layer_links: list[tuple[str, str]] = field(default_factory=list)  # repo, digest
    folders: set[tuple[str, str]] = field(default_factory=set)  # repo, folder
    uploads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    refused: list[tuple[str, str]] = field(default_factory=list)  # path, why


def scan_storage(root: str | Any, *, storage_options: Mapping[str, Any] | None = None,
                 progress: bool = True) -> Inventory:
    """Read the registry storage at ``root`` into an :class:`Inventory`, read-only.

    ``root`` is the folder holding ``docker/registry/v2`` (the registry's
    ``rootdirectory``), or an fsspec URL such as ``s3://bucket/rootdirectory``;
    ``storage_options`` go to fsspec (credentials, ``endpoint_url`` ...) and are
    never kept. The frames are those of a crawl (see :class:`Inventory`), with
    every manifest revision of every repository, tagged or not
    (``manifests.tagged``), every blob in the storage (``blobs.on_disk``), and the
    frames ``uploads``, ``tag_history``, ``layer_links`` and ``folders``. Sizes are the bytes of
    the blob data. What cannot be read (a garbled link, a link to a missing blob,
    a corrupt manifest) becomes an ``errors`` row; the scan goes on.

    On S3 (``s3://``) the listing is split by prefix and run concurrently, and
    manifests and configs are read concurrently, at most 128 requests in flight;
    ``progress`` shows a bar per phase (list, read links, read manifests, read
    configs).

    Raises InventoryError when ``root`` holds no registry storage.
    """
    url = str(root)
    store = open_store(url, storage_options, V2)
    try:
        if not store.exists():
            unreached = ("" if isinstance(store, LocalStore) else
                         " (or the store could not be read there: check the URL, the "
                         "endpoint and the credentials)")
            raise InventoryError(f"{shown(url)} is not a registry storage: it has no {V2}"
                                 f"{unreached}")
        with _collector_paused():
            return _Scan(store, shown(url), progress=progress).run()
    finally:
        store.close()


def open_store(root: str, storage_options: Mapping[str, Any] | None, top: str
               ) -> LocalStore | FsspecStore:  # S3Store is an FsspecStore
    """The store for ``root`` (a local folder or an fsspec URL), at ``root``/``top``."""
    if "://" not in root or root.startswith("file://"):
        return LocalStore(os.path.abspath(root.removeprefix("file://")), top)
    import fsspec

    # a filesystem of its own: fsspec's shared instances keep listings cached, and a
    # second scan in the same process would see the first one's tree
    options = {"skip_instance_cache": True, **(storage_options or {})}
    if root.startswith(("s3://", "s3a://")):
        # as many pooled connections as requests in flight (botocore's default is 10)
        options["config_kwargs"] = {"max_pool_connections": CONCURRENCY,
                                    **(options.get("config_kwargs") or {})}
    try:
        fs, base = fsspec.core.url_to_fs(root, **options)
    except Exception as exc:  # noqa: BLE001 -- an unknown protocol, option or backend
        raise backend_error("open", shown(root), exc) from None
    top = f"{base.rstrip('/')}/{top}"
    return S3Store(fs, top, shown(root)) if is_s3(fs) else FsspecStore(fs, top, shown(root))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A scan makes millions of small objects that all live until it ends; Python's
    cycle collector would re-traverse them again and again (a fifth of the time at
    30,000 manifests). Paused for the scan, restored after, whatever happens."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Scan:
    def __init__(self, store: LocalStore | FsspecStore, shown: str, *, progress: bool
                 ) -> None:
        self.store, self.top, self.shown, self.progress = store, store.top, shown, progress
        self.errors: list[tuple[str, str, str, str]] = []
        self.facts = Facts()

    def run(self) -> Inventory:
        with self._phase("list", "file") as bar:
            tree = self._list(bar)
        for path, why in tree.refused:
            self.errors.append(("", printable(path, limit=_SHOWN), "path", why))
        revisions = self._revisions(tree)
        tags = self._tags(tree)
        self._manifests(tree, revisions)
        held = frozenset((repo, d) for repo, d in revisions if d in self.facts.manifests)
        self._missing(tree, held)
        result = CrawlResult(registry=self.shown, scope=None, tags=tuple(tags),
                             errors=tuple(self.errors), facts=self.facts, revisions=held)
        inv = assemble(result)
        return Inventory(
            registry=inv.registry, taken_at=pd.Timestamp.now(tz="UTC"), scope=None,
            tags=inv.tags, manifests=inv.manifests, layers=inv.layers,
            blobs=_every_blob(inv.blobs, tree.blobs), children=inv.children,
            errors=inv.errors, uploads=self._uploads(tree),
            tag_history=build("tag_history", self._history(tree, tags)),
            layer_links=build("layer_links", tree.layer_links),
            folders=build("folders", tree.folders))

    # ------------------------------------------------------------------ list

    def _list(self, bar: Any) -> _Tree:
        tree = _Tree()
        details, md5, size = self.store.details, self.store.md5, self.store.size
        names = _Names()
        count = 0
        for count, (entry, path, handle) in enumerate(self.store.entries(), start=1):
            if count % 1024 == 0:
                bar.update(1024)
            kind = entry.kind
            if kind == "refused":
                tree.refused.append((self._relative(path), handle))
                continue
            if entry.repository is not None and (why := names.problem(entry)):
                if why[0] not in names.reported:
                    names.reported.add(why[0])
                    tree.refused.append(why)
                continue
            if kind == "blob":
                tree.blobs[entry.digest] = size(handle)  # no time: a blob's is not kept
            elif kind == "layer":
                tree.layer_links.append((entry.repository, entry.digest))
            elif kind == "folder":
                tree.folders.add((entry.repository, entry.folder))
            elif kind == "revision":
                tree.revisions.append((entry.repository, entry.digest, path, md5(handle),
                                       size(handle)))
            elif kind == "tag":
                tree.tags.append((entry.repository, entry.tag, path, md5(handle),
                                  size(handle)))
            elif kind == "tag_index":
                tree.history.append((entry.repository, entry.tag, entry.digest,
                                     details(handle)[1]))
            else:
                upload = tree.uploads.setdefault((entry.repository, entry.upload), {})
                if kind == "upload_data":
                    upload["size"] = size(handle)
                else:
                    upload["started"] = (path, size(handle))
        bar.update(count % 1024)
        for path, size in self.store.multipart_sizes().items():
            entry = classify(self._relative(path))
            if entry is not None and entry.kind == "upload_data":
                tree.uploads.setdefault((entry.repository, entry.upload), {})["size"] = size
        return tree

    # ------------------------------------------------------------------ read

    def _links(self, links: list[tuple[str, str | None, int, Iterable[str]]], what: str
               ) -> dict[str, str | Exception]:
        """The digest each link holds, by path, from (path, its MD5 if listed, its
        size, the digests it likely holds). A link whose MD5 is one of those digests'
        holds that digest, and is not read: the listing said what it holds."""
        out: dict[str, str | Exception] = {}
        unread, sizes = [], []
        for path, md5, size, likely in links:
            if md5 is not None:
                for digest in likely:
                    if hashlib.md5(digest.encode(), usedforsecurity=False).hexdigest() == md5:
                        out[path] = _target(digest.encode())
                        break
            if path not in out:
                unread.append(path)
                sizes.append(size)
        with self._phase(f"read {what} links", "link", total=len(unread)) as bar:
            for path, content in self.store.read(unread, limit=SMALL_FILE_LIMIT,
                                                 sizes=sizes):
                bar.update()
                out[path] = content if isinstance(content, Exception) else _target(content)
        return out

    def _documents(self, digests: list[str], sizes: Mapping[str, int], *, limit: int
                   ) -> Iterable[tuple[str, bytes | Exception]]:
        """(digest, bytes or the exception) of small JSON blobs; a larger one than
        ``limit`` is not read."""
        paths = {}
        for digest in digests:
            if sizes[digest] > limit:
                yield digest, too_large(sizes[digest], limit)
            else:
                paths[f"{self.top}/{blob_path(digest)}"] = digest
        for path, raw in self.store.read(list(paths), limit=limit,
                                         sizes=[sizes[d] for d in paths.values()]):
            yield paths[path], raw

    @contextmanager
    def _phase(self, name: str, unit: str, *, total: int = 0) -> Iterator[Any]:
        """A progress bar naming the phase (``scan s3://b/r: read manifests``)."""
        bar = progress_bar(f"scan {self.shown}: {name}", unit=unit, total=total,
                           enabled=self.progress)
        try:
            yield bar
        finally:
            bar.close()

    def _relative(self, path: str) -> str:
        return path[len(self.top.rstrip("/")) + 1:]

    def _revisions(self, tree: _Tree) -> list[tuple[str, str]]:
        """(repository, digest) of each revision link, as the registry reads it."""
        found = []
        links = self._links([(path, md5, size, (digest,))
                             for _, digest, path, md5, size in tree.revisions], "revision")
        for repo, _, path, _, _ in tree.revisions:
            target = links[path]
            if isinstance(target, Exception):
                self.errors.append((repo, self._relative(path), "revision link",
                                    f"{type(target).__name__}: {target}"))
            elif target not in tree.blobs:  # the registry skips such a revision too
                self.errors.append((repo, target, "revision",
                                    "its manifest blob is not in the storage"))
            else:
                found.append((repo, target))
        return found

    def _tags(self, tree: _Tree) -> list[tuple[str, str, str, str | None]]:
        rows = []
        # a tag's current link names one of the digests its index lists, nearly always;
        # looked for only when the store listed the links' MD5s (S3)
        history = defaultdict(list)
        if any(md5 is not None for _, _, _, md5, _ in tree.tags):
            for repo, tag, digest, _ in tree.history:
                history[repo, tag].append(digest)
        links = self._links([(path, md5, size, history.get((repo, tag), ()))
                             for repo, tag, path, md5, size in tree.tags], "tag")
        for repo, tag, path, _, _ in tree.tags:
            target = links[path]
            if isinstance(target, Exception):
                self.errors.append((repo, tag, "tag link", f"{type(target).__name__}: {target}"))
            else:
                rows.append((repo, tag, target, None))
        return rows

    def _manifests(self, tree: _Tree, revisions: list[tuple[str, str]]) -> None:
        """Parse every revision's manifest blob once, then the image configs."""
        where = defaultdict(set)
        for repo, digest in revisions:
            where[digest].add(repo)
        configs: dict[str, str] = {}  # config digest -> a manifest using it
        with self._phase("read manifests", "manifest", total=len(where)) as bar:
            for digest, raw in self._documents(sorted(where), tree.blobs,
                                               limit=MANIFEST_LIMIT):
                bar.update()
                try:
                    if isinstance(raw, Exception):
                        raise raw
                    info = manifest_info(parse_manifest(raw, digest=digest))
                except (ReginsightError, OSError, ValueError) as exc:
                    for repo in sorted(where[digest]):
                        self.errors.append((repo, digest, "manifest",
                                            f"{type(exc).__name__}: {exc}"))
                    continue
                self.facts.manifests[digest] = _sized(info, tree.blobs)
                if info.config is not None and info.config.media_type in mt.IMAGE_CONFIGS:
                    configs.setdefault(info.config.digest, digest)
        on_disk = {d: m for d, m in configs.items() if d in tree.blobs}
        with self._phase("read configs", "config", total=len(on_disk)) as bar:
            self._configs(on_disk, tree.blobs, where, bar)

    def _configs(self, on_disk: Mapping[str, str], sizes: Mapping[str, int],
                 where: Mapping[str, set[str]], bar: Any) -> None:
        for digest, raw in self._documents(sorted(on_disk), sizes, limit=CONFIG_LIMIT):
            bar.update()
            try:
                if isinstance(raw, Exception):
                    raise raw
                self.facts.configs[digest] = parse_config(raw)
            except (ReginsightError, OSError, ValueError) as exc:
                for repo in sorted(where[on_disk[digest]]):
                    self.errors.append((repo, digest, "config", f"{type(exc).__name__}: {exc}"))

    def _missing(self, tree: _Tree, held: frozenset[tuple[str, str]]) -> None:
        """An errors row for each blob or child a held manifest names that the storage
        lacks: that image cannot be pulled whole."""
        for repo, digest in sorted(held):
            info = self.facts.manifests[digest]
            for blob in info.blobs():
                if blob.digest not in tree.blobs and not _foreign(blob.media_type):
                    self.errors.append((repo, blob.digest, "blob",
                                        f"referenced by {digest}, not in the storage"))
            for child in info.children:
                if (repo, child.digest) not in held:
                    self.errors.append((repo, child.digest, "child",
                                        f"listed by index {digest}, not held by {repo}"))

    # ---------------------------------------------------- storage-only frames

    def _uploads(self, tree: _Tree) -> pd.DataFrame:
        begun = [upload["started"] for upload in tree.uploads.values() if "started" in upload]
        started = dict(self.store.read([path for path, _ in begun], limit=SMALL_FILE_LIMIT,
                                       sizes=[size for _, size in begun]))
        rows = []
        for (repo, uuid), upload in sorted(tree.uploads.items()):
            when = started.get(upload.get("started", ("",))[0])
            text = when.decode("ascii", "replace").strip() if isinstance(when, bytes) else None
            # an upload's folder name is no reference: kept, shown escaped when odd
            rows.append((repo, printable(uuid), text and printable(text), upload.get("size")))
        return build("uploads", rows)

    def _history(self, tree: _Tree, tags: list[tuple[str, str, str, str | None]]
                 ) -> list[tuple[str, str, str, bool, Any]]:
        current = {(repo, tag): digest for repo, tag, digest, _ in tags}
        return [(repo, tag, digest, current.get((repo, tag)) == digest, when)
                for repo, tag, digest, when in tree.history]




#: how many characters of a refused path an errors row shows
_SHOWN = 300


class _Names:
    """Repository and tag names from folder names, checked against the reference
    grammar before they become one (each name once): a folder name that is no
    name (not UTF-8, upper case, too long) is refused, as the registry's collector
    itself stops on a repository name it cannot parse."""

    def __init__(self) -> None:
        self.checked: dict[tuple[str, str | None], tuple[str, str] | None] = {}
        self.reported: set[str] = set()

    def problem(self, entry: Entry) -> tuple[str, str] | None:
        """(path, why) when the entry's repository or tag is not a valid name."""
        repository, tag = entry.repository or "", entry.tag
        key = (repository, tag)
        if key not in self.checked:
            self.checked[key] = self._check(repository, tag)
        return self.checked[key]

    def _check(self, repository: str, tag: str | None) -> tuple[str, str] | None:
        if (repository, None) not in self.checked:
            self.checked[(repository, None)] = _invalid(
                f"repositories/{repository}", "repository name", validate_repository,
                repository)
        if tag is None or self.checked[(repository, None)]:
            return self.checked[(repository, None)]
        return _invalid(f"repositories/{repository}/_manifests/tags/{tag}", "tag",
                        validate_tag, tag)


def _invalid(path: str, what: str, validate: Any, name: str) -> tuple[str, str] | None:
    try:
        validate(name)
    except InvalidReference as exc:
        return (printable(path, limit=_SHOWN),
                f"not a valid {what}: {printable(exc, limit=_SHOWN)}; not read")
    return None


def _target(content: bytes) -> str | Exception:
    """The digest a link's bytes hold, or why they are no link."""
    target = link_target(content)
    return target if target else ValueError(
        "holds no digest" if not content.strip() else "does not hold a digest")


def _foreign(media_type: str | None) -> bool:
    return media_type == mt.DOCKER_FOREIGN_LAYER


def _sized(info: ManifestInfo, disk: Mapping[str, int]) -> ManifestInfo:
    """The manifest's blobs with the sizes of their data on disk (the truth a
    descriptor only claims); a blob not on disk keeps its descriptor size."""
    def sized(blob: Blob) -> Blob:
        size = disk.get(blob.digest, blob.size)
        return blob if size == blob.size else replace(blob, size=size)

    if all(disk.get(b.digest, b.size) == b.size for b in info.blobs()):
        return info  # as nearly always: the descriptors tell the truth
    return replace(info, config=sized(info.config) if info.config else None,
                   layers=tuple(sized(b) for b in info.layers))


def _every_blob(referenced: pd.DataFrame, disk: Mapping[str, int]) -> pd.DataFrame:
    """The blobs frame of a scan: every referenced blob (its size from disk when
    there), and every blob on disk that nothing references; ``on_disk`` says which."""
    digests = referenced["digest"].to_numpy(dtype=object)
    known = set(digests)
    unreferenced = [d for d in disk if d not in known]
    on_disk = [disk.get(d) for d in digests]
    sizes = pd.array([s if s is not None else r for s, r in zip(
        on_disk, referenced["size"].astype(object), strict=True)] + [
        disk[d] for d in unreferenced], dtype="Int64")
    frame = pd.DataFrame({
        "digest": pd.array([*digests, *unreferenced], dtype="string"),
        "size": sizes,
        "kind": [*referenced["kind"].astype(object), *([None] * len(unreferenced))],
        "repositories": [*referenced["repositories"], *([0] * len(unreferenced))],
        "manifests": [*referenced["manifests"], *([0] * len(unreferenced))],
        "media_type": [*referenced["media_type"].astype(object),
                       *([None] * len(unreferenced))],
    })
    frame = conform("blobs", frame)
    frame["on_disk"] = np.array(  # bool even when empty (a list of nothing is object)
        [s is not None for s in on_disk] + [True] * len(unreferenced), dtype=bool)
    return tidy("blobs", frame)
