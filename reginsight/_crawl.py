"""Crawl a registry into an :class:`Inventory`: catalog -> tags -> manifests (through
indexes) -> image configs, concurrently, each digest fetched once.

The crawl is a set of small jobs (list tags, get a manifest, read a config) run by
a thread pool over the registry's one httpx client. Results come back to the
calling thread, which alone keeps the state: what is known by digest, what is in
flight, what failed. A failure becomes an ``errors`` row and the crawl goes on.
"""

from __future__ import annotations

import fnmatch
import queue
import re
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import _mediatypes as mt
from ._errors import ManifestInvalid, NotFound, RegistryError, TooLarge
from ._json import json_object
from ._manifest import Descriptor, ImageIndex, Manifest, Schema1Manifest

if TYPE_CHECKING:
    from ._client import Registry
    from ._inventory import Inventory

#: Image configs are small JSON documents; a larger "config" is not read.
CONFIG_LIMIT = 16 * 1024 * 1024
DEFAULT_CONCURRENCY = 32
_CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})

RepositoryFilter = None | str | re.Pattern[str] | Iterable[str]


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int | None
    media_type: str | None


@dataclass(frozen=True)
class Child:
    digest: str
    media_type: str | None
    os: str | None
    architecture: str | None
    variant: str | None


@dataclass(frozen=True)
class Platform:
    """What an image config (or schema1 v1Compatibility) says about the image."""

    created: str | None
    os: str | None
    architecture: str | None
    variant: str | None


@dataclass(frozen=True)
class ManifestInfo:
    """What a manifest says, the same in every repository that holds its digest."""

    digest: str
    media_type: str | None
    kind: str
    manifest_size: int
    config: Blob | None = None
    layers: tuple[Blob, ...] = ()
    children: tuple[Child, ...] = ()
    platform: Platform | None = None  # schema1 carries it inline


def manifest_info(manifest: Manifest) -> ManifestInfo:
    """The repository-independent facts of a parsed manifest."""
    common = {"digest": manifest.digest, "media_type": manifest.media_type or None,
              "kind": manifest.kind, "manifest_size": manifest.size}
    if isinstance(manifest, ImageIndex):
        children = tuple(
            Child(d.digest, d.media_type,
                  d.platform.os if d.platform else None,
                  d.platform.architecture if d.platform else None,
                  d.platform.variant if d.platform else None)
            for d in manifest.manifests)
        return ManifestInfo(**common, children=children)
    layers = tuple(Blob(d.digest, d.size, d.media_type) for d in manifest.layers)
    if isinstance(manifest, Schema1Manifest):
        image = manifest.image_config
        return ManifestInfo(**common, layers=layers, platform=Platform(
            _text(image.get("created")), _text(image.get("os")),
            _text(image.get("architecture")) or manifest.architecture or None,
            _text(image.get("variant"))))
    config = manifest.config
    return ManifestInfo(
        **common, layers=layers,
        config=Blob(config.digest, config.size, config.media_type) if config else None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_config(raw: bytes) -> Platform:
    """created/os/architecture/variant of an image config blob."""
    doc = json_object(raw)
    if doc is None:
        raise ManifestInvalid("image config is not a JSON object")
    return Platform(_text(doc.get("created")), _text(doc.get("os")),
                    _text(doc.get("architecture")), _text(doc.get("variant")))


def select_repositories(names: Iterable[str], wanted: RepositoryFilter) -> list[str]:
    """Apply the ``repositories=`` filter: None (all), a glob, a compiled regex, or an
    iterable of names."""
    if wanted is None:
        return list(names)
    if isinstance(wanted, re.Pattern):
        return [n for n in names if wanted.search(n)]
    if isinstance(wanted, str):
        return [n for n in names if fnmatch.fnmatchcase(n, wanted)]
    chosen = {str(w) for w in wanted}
    return [n for n in names if n in chosen]


class Crawler:
    """One crawl. ``run()`` returns the Inventory; state lives in the calling thread."""

    def __init__(self, reg: Registry, *, concurrency: int = DEFAULT_CONCURRENCY,
                 progress: bool = True, since: Inventory | None = None,
                 fetch_manifests: bool = True) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.reg = reg
        self.concurrency = concurrency
        self.progress = progress
        self.fetch_manifests = fetch_manifests
        self.manifests: dict[str, ManifestInfo] = {}
        self.platforms: dict[str, Platform] = {}  # config digest -> what it says
        self.blob_sizes: dict[str, int] = {}  # schema1 layers, by HEAD
        self.tags: list[tuple[str, str, str, str | None]] = []  # repo, tag, digest, type
        self.errors: list[tuple[str, str, str, str]] = []
        self.repositories: list[str] = []
        self.scope: str | None = None  # what was asked for; None: the whole catalog
        self._pending: dict[Future[Any], tuple[str, tuple[str, ...]]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        self._inflight: set[tuple[str, str]] = set()
        self.heads_only = since is not None or not fetch_manifests
        if since is not None:
            from ._inventory import known_facts

            self.manifests, self.platforms, self.blob_sizes = known_facts(since)

    # ---------------------------------------------------------------- driver

    def run(self, repositories: RepositoryFilter = None) -> Inventory:
        from ._inventory import assemble

        if repositories is not None:
            self.scope = (repositories.pattern if isinstance(repositories, re.Pattern)
                          else repositories if isinstance(repositories, str)
                          else ", ".join(sorted(str(r) for r in repositories)))
        bar = _progress_bar(self.reg.url, enabled=self.progress)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="reginsight") as pool:
            self._pool = pool
            try:
                if repositories is None or isinstance(repositories, str | re.Pattern):
                    self._filter, self._filter_from_catalog = repositories, True
                    self._submit("catalog", (), self.reg.repositories)
                else:
                    self._filter, self._filter_from_catalog = None, False
                    self._on_catalog([str(r) for r in repositories])
                while self._pending:
                    try:  # a timeout keeps Ctrl-C responsive while waiting
                        future = self._done.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    self._finish(future, bar)
            except BaseException:
                # Ctrl-C (or a bug): drop queued work; running requests end by timeout
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            finally:
                bar.close()
        return assemble(self)

    def _submit(self, stage: str, key: tuple[str, ...], fn: Callable[..., Any], *args: Any
                ) -> None:
        future = self._pool.submit(fn, *args)
        self._pending[future] = (stage, key)
        future.add_done_callback(self._done.put)

    def _failed(self, stage: str, key: tuple[str, ...], exc: RegistryError, bar: Any) -> None:
        repository = key[0] if key else ""
        reference = key[1] if len(key) > 1 else ""
        self.errors.append((repository, reference, stage, f"{type(exc).__name__}: {exc}"))
        if stage == "tag":
            bar.update(1)

    def _finish(self, future: Future[Any], bar: Any) -> None:
        stage, key = self._pending.pop(future)
        try:
            result = future.result()
        except NotFound as exc:
            if stage == "tags" and self._filter_from_catalog and "NAME_UNKNOWN" in exc.codes:
                # 2.8 lists repositories that hold blobs but no tag: empty, not an error
                return
            self._failed(stage, key, exc, bar)
            return
        except RegistryError as exc:
            self._failed(stage, key, exc, bar)
            return

        if stage == "catalog":
            self._on_catalog(result)
        elif stage == "tags":
            self._on_tags(key, result, bar)
        elif stage == "tag":
            self._on_tag(key, result)
            bar.update(1)
        elif stage == "manifest":
            self._on_manifest(key[0], result)
        elif stage == "config":
            self.platforms[key[1]] = result
        elif stage == "blob":
            self.blob_sizes[key[1]] = result

    # ------------------------------------------------------------- handlers

    def _on_catalog(self, names: list[str]) -> None:
        self.repositories = sorted(set(select_repositories(names, self._filter)))
        for repository in self.repositories:
            self._submit("tags", (repository,), self.reg.tags, repository)

    def _on_tags(self, key: tuple[str, ...], tags: list[str], bar: Any) -> None:
        (repository,) = key
        bar.total = (bar.total or 0) + len(tags)
        bar.refresh()
        fetch = self.reg.manifest_descriptor if self.heads_only else self.reg.manifest
        for tag in tags:
            self._submit("tag", (repository, tag), fetch, repository, tag)

    def _on_tag(self, key: tuple[str, ...], result: Manifest | Descriptor) -> None:
        repository, tag = key
        self.tags.append((repository, tag, result.digest, result.media_type))
        if isinstance(result, Descriptor):  # a HEAD: fetch only what is not known yet
            self._want_manifest(repository, result.digest)
        else:
            self._on_manifest(repository, result)

    def _want_manifest(self, repository: str, digest: str) -> None:
        info = self.manifests.get(digest)
        if info is not None:
            self._want_parts(repository, info)
        elif self.fetch_manifests and ("manifest", digest) not in self._inflight:
            self._inflight.add(("manifest", digest))
            self._submit("manifest", (repository, digest), self.reg.manifest, repository, digest)

    def _on_manifest(self, repository: str, manifest: Manifest) -> None:
        info = self.manifests.get(manifest.digest) or manifest_info(manifest)
        self.manifests[manifest.digest] = info
        self._want_parts(repository, info)

    def _want_parts(self, repository: str, info: ManifestInfo) -> None:
        for child in info.children:
            self._want_manifest(repository, child.digest)
        config = info.config
        if (config is not None and config.media_type in _CONFIG_TYPES
                and config.digest not in self.platforms
                and ("config", config.digest) not in self._inflight):
            self._inflight.add(("config", config.digest))
            self._submit("config", (repository, config.digest), self._config, repository,
                         config.digest)
        if info.kind == "schema1":
            for layer in info.layers:
                if (layer.digest not in self.blob_sizes
                        and ("blob", layer.digest) not in self._inflight):
                    self._inflight.add(("blob", layer.digest))
                    self._submit("blob", (repository, layer.digest), self.reg.blob_size,
                                 repository, layer.digest)

    def _config(self, repository: str, digest: str) -> Platform:
        with self.reg.download_blob(repository, digest) as stream:
            raw = stream.read(CONFIG_LIMIT + 1)
            if len(raw) > CONFIG_LIMIT:
                raise TooLarge(f"config {digest} exceeds {CONFIG_LIMIT} bytes")
            stream.read()  # to EOF: the digest is checked there
        return parse_config(raw)


class _NoBar:
    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(url: str, *, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=0, unit="tag", desc=f"crawl {url}", file=sys.stderr, leave=True)


def crawl(
    reg: Registry,
    repositories: RepositoryFilter = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: bool = True,
    since: Inventory | None = None,
) -> Inventory:
    """Crawl ``reg`` into an :class:`Inventory` of DataFrames.

    ``repositories``: None for the whole catalog, a list of names, a glob string
    (``"team/*"``) or a compiled regex (searched). ``concurrency`` bounds requests in
    flight (threads over the registry's one connection pool). ``since``: a previous
    Inventory of this registry; tags are then HEADed and only digests it does not
    know are fetched. ``progress`` shows a tqdm bar (a widget in Jupyter).

    A repository or tag that fails becomes an ``errors`` row; the crawl goes on.
    Ctrl-C stops it (KeyboardInterrupt) without waiting for queued work.
    """
    return Crawler(reg, concurrency=concurrency, progress=progress, since=since).run(
        repositories)


def load_tags(reg: Registry, repositories: RepositoryFilter = None, **options: Any
              ) -> pd.DataFrame:
    """Only the ``tags`` frame, by HEAD of each tag (no manifest bodies are read).

    Columns: repository (category), tag (string), digest (string), media_type
    (category; NA: HEAD does not tell it).
    """
    crawler = Crawler(reg, fetch_manifests=False, **options)
    return crawler.run(repositories).tags


def load_manifests(reg: Registry, repositories: RepositoryFilter = None, **options: Any
                   ) -> pd.DataFrame:
    """The ``manifests`` frame of a full crawl (see :class:`Inventory` for columns)."""
    return crawl(reg, repositories, **options).manifests


def load_layers(reg: Registry, repositories: RepositoryFilter = None, **options: Any
                ) -> pd.DataFrame:
    """The ``layers`` frame of a full crawl (see :class:`Inventory` for columns)."""
    return crawl(reg, repositories, **options).layers
