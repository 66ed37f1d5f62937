"""Crawl a registry into an :class:`Inventory`: catalog -> tags -> manifests (through
indexes) -> image configs, concurrently, each digest fetched once.

The crawl is a set of small jobs (list tags, get a manifest, read a config) run by
a thread pool over the registry's one httpx client. Results come back to the
calling thread, which alone keeps the state: what is known by digest, what is in
flight, what failed. A failure becomes an ``errors`` row and the crawl goes on.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from .. import _mediatypes as mt
from .._errors import NotFound, RegistryError, TooLarge
from ..registry._manifest import Descriptor, Manifest
from ..registry.protocol import ErrorCode
from ._assemble import assemble, crawled_rows, facts_of
from ._facts import (
    CONFIG_LIMIT,
    ConfigFacts,
    CrawlResult,
    Facts,
    ManifestInfo,
    manifest_info,
    parse_config,
)
from ._progress import LineBar, NoBar, progress_bar
from ._selection import RepositoryFilter, describe_scope, invalid_rows, selection
from ._subjects import subjects

if TYPE_CHECKING:
    from distributed import Client

    from ..registry._client import Registry
    from ._inventory import Inventory

DEFAULT_CONCURRENCY = 32


class Crawler:
    """One crawl. ``run()`` returns a :class:`CrawlResult`; state lives in the calling
    thread."""

    def __init__(self, reg: Registry, *, concurrency: int = DEFAULT_CONCURRENCY,
                 progress: bool = True, since: Inventory | Facts | None = None,
                 fetch_manifests: bool = True) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.reg = reg
        self.concurrency = concurrency
        self.progress = progress
        self.fetch_manifests = fetch_manifests
        if isinstance(since, Facts):  # a shard of a distributed crawl: its part, a copy
            self.facts = Facts(dict(since.manifests), dict(since.configs),
                               dict(since.blob_sizes))
        else:
            self.facts = facts_of(since) if since is not None else Facts()
        self.tags: list[tuple[str, str, str, str | None]] = []  # repo, tag, digest, type
        self.errors: list[tuple[str, str, str, str]] = []
        self.repositories: list[str] = []
        self.scope: str | None = None  # what was asked for; None: the whole catalog
        self._selection = selection(None)
        self._pending: dict[Future[Any], tuple[str, tuple[str, ...]]] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        # set by the worker a Ctrl-C reached: queued jobs then return before any request,
        # even before the main thread has seen it and cancelled them
        self._interrupted = threading.Event()
        self._inflight: set[tuple[str, str]] = set()
        self.heads_only = since is not None or not fetch_manifests
        #: what the referrers API listed: (repository, subject, referrer digest)
        self.referrer_links: list[tuple[str, str, str]] = []
        #: (repository, digest) found by other means than tags (referrers the API
        #: listed, subjects asked for by digest): untagged ones become rows this way
        self.untagged: set[tuple[str, str]] = set()
        self.referrers_api: bool | None = None  # None: not known yet
        self._asked: set[tuple[str, str, str]] = set()  # (stage, repository, digest)
        self._probing = False  # one referrers request in flight while the API is unknown
        self._waiting: deque[tuple[str, str]] = deque()  # to ask once that is known
        # shown from when the catalog is read: a refused catalog is no crawl of 0 tags
        self._bar: Any = NoBar()

    # ---------------------------------------------------------------- driver

    def run(self, repositories: RepositoryFilter = None, *,
            catalog: Iterable[str] | None = None) -> CrawlResult:
        """Crawl ``repositories``; ``catalog``: the catalog as already read (a shard
        of a distributed crawl: the part of it this shard covers)."""
        if repositories is not None and not isinstance(repositories, str | re.Pattern):
            repositories = list(repositories)  # read twice below: a generator only once
        self.scope = describe_scope(repositories)
        finished = False
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="reginsight") as pool:
            self._pool = pool
            try:
                self._selection = selection(repositories)
                if catalog is not None:
                    self._on_catalog(list(catalog))
                elif self._selection.needs_catalog:
                    # the catalog with its invalid entries set apart: they become rows
                    self._submit("catalog", (), self.reg.catalog)
                else:
                    self._on_catalog([])
                while self._pending:
                    try:  # a timeout keeps Ctrl-C responsive while waiting
                        future = self._done.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    self._finish(future)
                    self._next_referrers()
                    if not self._pending and self.fetch_manifests:
                        self._want_subjects()
                finished = True
            except BaseException:
                # Ctrl-C (or a bug): drop queued work; running requests end by timeout
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            finally:
                # a plain line's last word is "N tags in Xs": said of a finished crawl only
                if finished or not isinstance(self._bar, LineBar):
                    self._bar.close()
        return CrawlResult(registry=self.reg.url, scope=self.scope, tags=tuple(self.tags),
                           errors=tuple(self.errors), facts=self.facts,
                           referrers=tuple(self.referrer_links),
                           untagged=frozenset(self.untagged),
                           repositories=tuple(self.repositories))

    def _submit(self, stage: str, key: tuple[str, ...], fn: Callable[..., Any], *args: Any
                ) -> None:
        future = self._pool.submit(self._unless_interrupted, fn, *args)
        self._pending[future] = (stage, key)
        future.add_done_callback(self._on_done)

    def _unless_interrupted(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._interrupted.is_set():
            raise KeyboardInterrupt
        return fn(*args)

    def _on_done(self, future: Future[Any]) -> None:
        # in the worker, before it takes its next job
        if not future.cancelled() and isinstance(future.exception(), KeyboardInterrupt):
            self._interrupted.set()
        self._done.put(future)

    def _failed(self, stage: str, key: tuple[str, ...], exc: RegistryError) -> None:
        repository = key[0] if key else ""
        reference = key[1] if len(key) > 1 else ""
        self.errors.append((repository, reference, stage, f"{type(exc).__name__}: {exc}"))
        if stage == "tag":
            self._bar.update(1)

    def _finish(self, future: Future[Any]) -> None:
        stage, key = self._pending.pop(future)
        if stage == "referrers":
            self._probing = False
        try:
            result = future.result()
        except RegistryError as exc:
            if stage == "catalog":
                raise  # nothing to crawl: an empty inventory would pass for a whole one
            if not (isinstance(exc, NotFound) and self._expected_absence(stage, key, exc)):
                self._failed(stage, key, exc)
            return

        if stage == "catalog":
            self.errors.extend(invalid_rows(result.invalid, self._selection))
            self._on_catalog(list(result.names))
        elif stage == "tags":
            self._on_tags(key, result)
        elif stage == "tag":
            self._on_tag(key, result)
            self._bar.update(1)
        elif stage == "manifest":
            self._on_manifest(key[0], result)
        elif stage == "config":
            self.facts.configs[key[1]] = result
        elif stage == "blob":
            self.facts.blob_sizes[key[1]] = result
        elif stage == "referrers":
            self._on_referrers(key, result)
        elif stage == "subject":
            self.untagged.add((key[0], key[1]))
            self._on_tag_target(key[0], result)

    def _expected_absence(self, stage: str, key: tuple[str, ...], exc: NotFound) -> bool:
        """A 404 that is an answer, not an error: a repository the catalog listed
        with no tags (2.8 lists repositories that hold only blobs), or a subject
        that is gone (its referrers are orphaned)."""
        if stage == "subject":
            return True
        return (stage == "tags" and ErrorCode.NAME_UNKNOWN in exc.codes
                and key[0] not in self._selection.names)

    # ------------------------------------------------------------- handlers

    def _on_catalog(self, listed: list[str]) -> None:
        self._bar = progress_bar(f"crawl {self.reg.url}", unit="tag", enabled=self.progress)
        chosen = self._selection
        self.repositories = sorted({*chosen.names, *filter(chosen.matches, listed)})
        for repository in self.repositories:
            self._submit("tags", (repository,), self.reg.tags, repository)

    def _on_tags(self, key: tuple[str, ...], tags: list[str]) -> None:
        (repository,) = key
        self._bar.total = (self._bar.total or 0) + len(tags)
        self._bar.refresh()
        fetch = self.reg.manifest_descriptor if self.heads_only else self.reg.manifest
        for tag in tags:
            self._submit("tag", (repository, tag), fetch, repository, tag)

    def _on_tag(self, key: tuple[str, ...], result: Manifest | Descriptor) -> None:
        repository, tag = key
        self.tags.append((repository, tag, result.digest, result.media_type))
        self._on_tag_target(repository, result)

    def _on_tag_target(self, repository: str, result: Manifest | Descriptor) -> None:
        if isinstance(result, Descriptor):  # a HEAD: fetch only what is not known yet
            self._want_manifest(repository, result.digest)
        else:
            self._on_manifest(repository, result)

    def _want_manifest(self, repository: str, digest: str) -> None:
        info = self.facts.manifests.get(digest)
        if info is not None:
            self._want_parts(repository, info)
        elif self.fetch_manifests and ("manifest", digest) not in self._inflight:
            self._inflight.add(("manifest", digest))
            self._submit("manifest", (repository, digest), self.reg.manifest, repository, digest)

    def _on_manifest(self, repository: str, manifest: Manifest) -> None:
        info = self.facts.manifests.get(manifest.digest) or manifest_info(manifest)
        self.facts.manifests[manifest.digest] = info
        self._want_parts(repository, info)

    def _want_parts(self, repository: str, info: ManifestInfo) -> None:
        self._want_referrers(repository, info.digest)
        for child in info.children:
            self._want_manifest(repository, child.digest)
        config = info.config
        if (config is not None and config.media_type in mt.IMAGE_CONFIGS
                and config.digest not in self.facts.configs
                and ("config", config.digest) not in self._inflight):
            self._inflight.add(("config", config.digest))
            self._submit("config", (repository, config.digest), self._config, repository,
                         config.digest)
        if info.kind == "schema1":
            for layer in info.layers:
                if (layer.digest not in self.facts.blob_sizes
                        and ("blob", layer.digest) not in self._inflight):
                    self._inflight.add(("blob", layer.digest))
                    self._submit("blob", (repository, layer.digest), self.reg.blob_size,
                                 repository, layer.digest)

    def _once(self, stage: str, repository: str, digest: str, fn: Callable[..., Any]) -> None:
        """Ask ``fn(repository, digest)`` once per crawl."""
        if (stage, repository, digest) not in self._asked:
            self._asked.add((stage, repository, digest))
            self._submit(stage, (repository, digest), fn, repository, digest)

    def _want_referrers(self, repository: str, digest: str) -> None:
        """Ask the referrers API about a manifest; while nobody knows whether the
        registry has the API, one request at a time (a 404 ends the asking)."""
        if not self.fetch_manifests or self.referrers_api is False:
            return
        if self.referrers_api is None:
            if self._probing:
                self._waiting.append((repository, digest))
                return
            self._probing = True
        self._once("referrers", repository, digest, self.reg.referrers)

    def _next_referrers(self) -> None:
        """After a referrers answer: ask the waiting ones (API present), drop them
        (absent), or probe with the next one (the answer was an error)."""
        if self.referrers_api is False:
            self._waiting.clear()
        while self._waiting and not self._probing:
            self._want_referrers(*self._waiting.popleft())

    def _on_referrers(self, key: tuple[str, ...], found: list[Descriptor] | None) -> None:
        repository, subject = key
        if found is None:  # 404: no referrers API; the fallback tags are crawled as tags
            self.referrers_api = False
            return
        self.referrers_api = True
        for descriptor in found:
            self.referrer_links.append((repository, subject, descriptor.digest))
            self.untagged.add((repository, descriptor.digest))
            self._want_manifest(repository, descriptor.digest)

    def _want_subjects(self) -> None:
        """Once the crawl has settled: ask for every subject a repository's referrers
        name that the crawl has not seen there. One held untagged becomes a row (the
        API lists no untagged manifests); one the registry does not hold is gone,
        and its referrers are orphaned."""
        rows = crawled_rows(self.tags, self.untagged, self.facts.manifests)
        about = subjects(rows=rows, infos=self.facts.manifests,
                         tags=[(repo, tag, digest) for repo, tag, digest, _ in self.tags],
                         referrers=self.referrer_links)
        for (repository, _), (subject, _) in sorted(about.items()):
            if subject not in rows.get(repository, ()):
                known = subject in self.facts.manifests  # then a HEAD says enough
                self._once("subject", repository, subject,
                           self.reg.manifest_descriptor if known else self.reg.manifest)

    def _config(self, repository: str, digest: str) -> ConfigFacts:
        with self.reg.download_blob(repository, digest) as stream:
            raw = stream.read(CONFIG_LIMIT + 1)
            if len(raw) > CONFIG_LIMIT:
                raise TooLarge(f"config {digest} exceeds {CONFIG_LIMIT} bytes")
            stream.read()  # to EOF: the digest is checked there
        return parse_config(raw)


def crawl(
    reg: Registry,
    repositories: RepositoryFilter = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: bool = True,
    since: Inventory | None = None,
    cluster: Client | None = None,
) -> Inventory:
    """Crawl ``reg`` into an :class:`Inventory` of DataFrames.

    ``repositories``: None for the whole catalog; a name (``"team/app"``) or a list
    of names, read directly, so registries that refuse the catalog (Docker Hub, GHCR,
    GitLab) can be crawled; a glob (``"team/*"``), a compiled regex (searched), or a
    list mixing them with names, matched against the catalog. A catalog that cannot
    be read raises (CatalogUnavailable when the registry refuses to list).
    ``concurrency`` bounds requests in flight (threads over the registry's one
    connection pool). ``since``: a previous
    Inventory of this registry; tags are then HEADed and only digests it does not
    know are fetched. ``progress`` shows a tqdm bar (a widget in Jupyter).
    ``cluster``: a ``dask.distributed.Client``; the repositories are then sharded over
    its workers, each with its own client built from ``reg.settings`` and
    ``concurrency`` requests in flight per shard (``pip install 'reginsight[dask]'``;
    see :mod:`reginsight.inventory._distributed`). The frames are the same.

    A repository or tag that fails becomes an ``errors`` row; the crawl goes on. So
    does a catalog entry that is no repository name (stage ``catalog``, the entry
    shown safely): no request is ever built from it (``reg.catalog()`` lists it apart).
    Ctrl-C stops it (KeyboardInterrupt) without waiting for queued work.
    """
    if cluster is not None:
        from ._distributed import crawl_on_cluster  # Dask is loaded only here

        return assemble(crawl_on_cluster(
            cluster, reg, repositories, since=since, progress=progress,
            crawler=partial(Crawler, concurrency=concurrency, progress=False)))
    return assemble(Crawler(reg, concurrency=concurrency, progress=progress, since=since).run(
        repositories))


def load_tags(reg: Registry, repositories: RepositoryFilter = None, **options: Any
              ) -> pd.DataFrame:
    """Only the ``tags`` frame, by HEAD of each tag (no manifest bodies are read).

    Columns: repository (category), tag (string), digest (string), media_type
    (category; NA: HEAD does not tell it). Not ``created`` and ``size``: they come
    from the manifests, which a crawl (:func:`crawl`) reads.
    """
    crawler = Crawler(reg, fetch_manifests=False, **options)
    return assemble(crawler.run(repositories)).tags.drop(columns=["created", "size"])


def load_manifests(reg: Registry, repositories: RepositoryFilter = None, **options: Any
                   ) -> pd.DataFrame:
    """The ``manifests`` frame of a full crawl (see :class:`Inventory` for columns)."""
    return crawl(reg, repositories, **options).manifests


def load_layers(reg: Registry, repositories: RepositoryFilter = None, **options: Any
                ) -> pd.DataFrame:
    """The ``layers`` frame of a full crawl (see :class:`Inventory` for columns)."""
    return crawl(reg, repositories, **options).layers
