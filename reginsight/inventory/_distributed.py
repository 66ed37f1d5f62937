"""A crawl sharded over Dask workers: ``ri.crawl(reg, ..., cluster=client)``.

The calling process lists the repositories (the catalog, or the names asked for),
deals them round-robin into a few shards per worker thread (so a slow shard does not
hold the others back) and submits one task per shard. Each task builds its own
:class:`Registry` from ``reg.settings`` and runs the ordinary :class:`Crawler` on its
shard; the caller merges the shards' results into the one a single process makes and
assembles it as usual. Everything a crawl learns per repository (tags, rows, subjects)
stays inside one shard, and what it learns by digest is the same in every shard, so
sharding changes no frame. A digest held in two shards is read by each.

Secrets: the credentials travel encrypted (Fernet) in the task arguments. The key is
made for this crawl only and reaches the workers through a WorkerPlugin, which the
scheduler also gives a worker that (re)starts mid-crawl; it is unregistered when the
crawl ends. The task graph, the dashboard and the logs show no password; whoever can
read the scheduler's memory can read both halves, so run Dask with TLS
(``distributed.security``) across untrusted networks.

A worker that dies takes only its running shards with it: the scheduler runs them
again on another worker (``distributed.scheduler.allowed-failures``); a shard is a
read of the registry, so running it twice gives the same result.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet

from ..registry._client import Registry, RegistrySettings
from ..registry._credentials import Credentials
from ..registry.protocol import Listing
from ._assemble import facts_of
from ._facts import CrawlResult, Facts
from ._progress import progress_bar
from ._selection import RepositoryFilter, Selection, describe_scope, invalid_rows, selection

try:
    from distributed import Client, WorkerPlugin, as_completed, get_worker
except ImportError as exc:  # dask is an optional extra
    raise ImportError("ri.crawl(..., cluster=) needs Dask: pip install 'reginsight[dask]'"
                      ) from exc

if TYPE_CHECKING:
    from ._inventory import Inventory

#: shards per worker thread: enough that the fast ones take over from a slow one
SHARDS_PER_THREAD = 4
#: seconds to wait for a first worker when the cluster has none yet
WAIT_FOR_WORKERS = 60


@dataclass(frozen=True)
class SealedSettings:
    """A registry's settings as they travel to workers: the credentials encrypted with
    the crawl's key, which only the plugin named ``key_plugin`` holds."""

    settings: RegistrySettings  # credentials left out
    credentials: bytes = field(repr=False)  # a Fernet token of the credentials as JSON
    key_plugin: str

    def open(self, key: bytes) -> RegistrySettings:
        fields = json.loads(Fernet(key).decrypt(self.credentials))
        return replace(self.settings, credentials=Credentials(**fields))


class CrawlKey(WorkerPlugin):
    """One crawl's key on every worker, for that crawl's shards (never in a repr)."""

    def __init__(self, name: str, key: bytes) -> None:
        self.name = name
        self._key = key

    def __repr__(self) -> str:
        return f"CrawlKey({self.name!r}, key=<redacted>)"


@dataclass(frozen=True)
class Shard:
    """What one task crawls: ``wanted`` as ``Crawler.run`` takes it, the repositories
    of the catalog already read (None: no catalog needed), and what ``since`` knows
    about this shard's repositories."""

    index: int
    repositories: tuple[str, ...]
    wanted: RepositoryFilter
    catalog: tuple[str, ...] | None
    since: Facts | None = field(default=None, repr=False)


def crawl_shard(sealed: SealedSettings, shard: Shard, crawler: Callable[..., Any]
                ) -> CrawlResult:
    """The task a worker runs: its own client, the ordinary crawl of one shard."""
    plugin = get_worker().plugins.get(sealed.key_plugin)
    if not isinstance(plugin, CrawlKey):
        raise RuntimeError(f"this worker holds no key for the crawl ({sealed.key_plugin} "
                           "was unregistered: the crawl ended or was cancelled)")
    with Registry.from_settings(sealed.open(plugin._key)) as reg:
        return crawler(reg, since=shard.since).run(shard.wanted, catalog=shard.catalog)


def plan_shards(names: Sequence[str], chosen: Selection, count: int,
                since: Inventory | None = None) -> list[Shard]:
    """``names`` (sorted) dealt round-robin into ``count`` shards: the same shards for
    the same names and cluster size. A name the user gave stays a name (its 404 is an
    error row); one from the catalog stays a catalog entry (a 404 means no tags)."""
    known = facts_of(since) if since is not None else None
    held: dict[str, set[str]] = defaultdict(set)
    if since is not None:
        for repo, digest in zip(since.manifests["repository"].astype(str),
                                since.manifests["digest"].astype(str), strict=True):
            held[repo].add(digest)
    shards = []
    for index in range(count):
        mine = tuple(names[index::count])
        named = [name for name in mine if name in chosen.names]
        shards.append(Shard(
            index=index, repositories=mine,
            wanted=None if chosen.everything else [*named, *chosen.patterns],
            catalog=tuple(n for n in mine if n not in named) if chosen.needs_catalog else None,
            since=None if known is None else _part(known, set().union(
                *(held[name] for name in mine)))))
    return shards


def _part(known: Facts, digests: set[str]) -> Facts:
    """The facts about ``digests``: their manifests, configs, and layer sizes."""
    manifests = {d: known.manifests[d] for d in sorted(digests) if d in known.manifests}
    configs = {info.config.digest: known.configs[info.config.digest]
               for info in manifests.values()
               if info.config and info.config.digest in known.configs}
    sizes = {layer.digest: known.blob_sizes[layer.digest] for info in manifests.values()
             for layer in info.layers if layer.digest in known.blob_sizes}
    return Facts(manifests, configs, sizes)


def merge(results: Sequence[CrawlResult], *, registry: str, scope: str | None
          ) -> CrawlResult:
    """The shards' results as one crawl's: facts by digest, the rest side by side."""
    facts = Facts()
    for result in results:
        facts.manifests.update(result.facts.manifests)
        facts.configs.update(result.facts.configs)
        facts.blob_sizes.update(result.facts.blob_sizes)
    return CrawlResult(
        registry=registry, scope=scope, facts=facts,
        tags=tuple(row for r in results for row in r.tags),
        errors=tuple(row for r in results for row in r.errors),
        referrers=tuple(row for r in results for row in r.referrers),
        untagged=frozenset().union(*(r.untagged for r in results)),
        repositories=tuple(sorted(name for r in results for name in r.repositories or ())))


def crawl_on_cluster(client: Client, reg: Registry, repositories: RepositoryFilter, *,
                     crawler: Callable[..., Any], progress: bool,
                     since: Inventory | None) -> CrawlResult:
    """Crawl ``reg`` with one task per shard on ``client``'s workers; ``crawler(reg,
    since=facts)`` makes a shard's Crawler (the caller's class: this module sits below
    the crawl)."""
    if not isinstance(client, Client):
        raise TypeError(f"cluster= takes a dask.distributed.Client, not {type(client).__name__}")
    why = reg.settings.portable()
    if why is not None:
        raise ValueError(f"{reg!r} cannot be rebuilt on Dask workers: {why}")
    if repositories is not None and not isinstance(repositories, str | re.Pattern):
        repositories = list(repositories)  # read twice below: a generator only once
    chosen = selection(repositories)
    # as in one process: the catalog's invalid entries are rows here, never a shard's
    listed = reg.catalog() if chosen.needs_catalog else Listing(names=())
    names = sorted({*chosen.names, *filter(chosen.matches, listed.names)})
    if not client.nthreads():  # tasks would wait for a worker that may never come
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except TimeoutError:
            raise ValueError(f"the Dask cluster at {client.scheduler.address} has no "
                             f"worker (waited {WAIT_FOR_WORKERS} s)") from None
    threads = sum(client.nthreads().values())
    shards = plan_shards(names, chosen, min(len(names), threads * SHARDS_PER_THREAD), since)
    results = run_shards(client, reg, shards, crawler=crawler, progress=progress)
    merged = merge(results, registry=reg.url, scope=describe_scope(repositories))
    return replace(merged, errors=(*invalid_rows(listed.invalid, chosen), *merged.errors))


def run_shards(client: Client, reg: Registry, shards: Sequence[Shard], *,
               crawler: Callable[..., Any], progress: bool) -> list[CrawlResult]:
    """Submit the shards, show progress as they finish, return their results in shard
    order. The key is registered for this crawl only; queued shards are cancelled if
    the caller stops (Ctrl-C) or one fails."""
    crawl_id = secrets.token_hex(8)
    key = Fernet.generate_key()
    sealed = SealedSettings(
        settings=replace(reg.settings, credentials=Credentials(source="sealed")),
        credentials=Fernet(key).encrypt(json.dumps(asdict(reg.settings.credentials)).encode()),
        key_plugin=f"reginsight-crawl-key-{crawl_id}")
    bar = progress_bar(f"crawl {reg.url}", unit="repository",
                       total=sum(len(s.repositories) for s in shards), enabled=progress)
    results: dict[int, CrawlResult] = {}
    futures = []
    try:
        if shards:
            client.register_plugin(CrawlKey(sealed.key_plugin, key))
        futures = [client.submit(crawl_shard, sealed, shard, crawler, pure=False,
                                 key=f"reginsight-crawl-{crawl_id}-shard-{shard.index:04d}")
                   for shard in shards]
        index_of = {future.key: shard.index for future, shard in zip(futures, shards,
                                                                        strict=True)}
        for future in as_completed(futures):
            result = future.result()
            results[index_of[future.key]] = result
            bar.update(len(shards[index_of[future.key]].repositories))
    finally:
        bar.close()
        if futures:
            client.cancel(futures)
        if shards:
            client.unregister_worker_plugin(sealed.key_plugin)
    return [results[shard.index] for shard in shards]
