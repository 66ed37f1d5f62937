"""Between the facts model and the frames, both ways: :func:`assemble` turns what a
crawl learnt into an :class:`Inventory`; :func:`facts_of` reads an inventory back
into facts, so a recrawl (``since=``) fetches only what it does not know."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from ._facts import Blob, Child, ConfigFacts, CrawlResult, Facts, ManifestInfo
from ._frames import build, with_tag_images
from ._inventory import Inventory
from ._reach import reachable
from ._subjects import subjects


def crawled_rows(tags: Iterable[tuple[str, str, str, str | None]],
                 untagged: Iterable[tuple[str, str]], infos: Mapping[str, ManifestInfo]
                 ) -> dict[str, set[str]]:
    """What a crawl's ``manifests`` rows are, per repository: the manifests its tags
    and the untagged manifests it found (referrers, subjects) reach, through indexes."""
    roots: dict[str, set[str]] = defaultdict(set)
    for repo, _, digest, _ in tags:
        roots[repo].add(digest)
    for repo, digest in untagged:
        roots[repo].add(digest)
    children = _children_of(infos)
    return {repo: reachable(digests, children) for repo, digests in roots.items()}


def _children_of(infos: Mapping[str, ManifestInfo]) -> Callable[[str], Iterable[str]]:
    """The successors for :func:`reachable`: an index's child digests (none when the
    manifest was not read)."""

    def children(digest: str) -> Iterable[str]:
        info = infos.get(digest)
        return [child.digest for child in info.children] if info else ()

    return children


def assemble(result: CrawlResult) -> Inventory:
    """The inventory frames of what a crawl learnt (columns: see :class:`Inventory`)."""
    facts = result.facts
    infos = facts.manifests
    children = _children_of(infos)

    tagged: set[tuple[str, str]] | None = None
    if result.revisions is None:  # a crawl: the rows are what tags (and referrers) reach
        reach = crawled_rows(result.tags, result.untagged, infos)
    else:  # a storage scan: every revision is a row
        roots: dict[str, set[str]] = defaultdict(set)
        for repo, _, digest, _ in result.tags:
            roots[repo].add(digest)
        held: dict[str, set[str]] = defaultdict(set)
        for repo, digest in result.revisions:
            held[repo].add(digest)
        # a tag reaches what its repository holds; a child missing there pulls nothing
        tagged = {(repo, digest) for repo, digests in held.items()
                  for digest in reachable(
                      roots[repo] & digests,
                      lambda d, digests=digests: [c for c in children(d) if c in digests])}
        reach = held
    # which indexes of the repository list a manifest, and the platform they name it by
    parents: dict[tuple[str, str], set[str]] = defaultdict(set)
    named_platform: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
    for repo, digests in reach.items():
        for digest in sorted(digests):
            for child in infos[digest].children if digest in infos else ():
                parents[(repo, child.digest)].add(digest)
                named_platform.setdefault((repo, child.digest),
                                          (child.os, child.architecture, child.variant))

    def blob_size(blob: Blob) -> int | None:
        return blob.size if blob.size is not None else facts.blob_sizes.get(blob.digest)

    def images_of(info: ManifestInfo) -> list[ManifestInfo | None]:
        """The image manifests an index reaches at any depth (None: one not read),
        or the manifest itself."""
        if not info.children:
            return [info]
        return [infos.get(d) for d in sorted(reachable([info.digest], children))
                if d not in infos or not infos[d].children]

    tags = [(repo, tag, digest, infos[digest].media_type if digest in infos else media_type)
            for repo, tag, digest, media_type in result.tags]
    about = subjects(rows=reach, infos=infos,
                     tags=[(repo, tag, digest) for repo, tag, digest, _ in result.tags],
                     referrers=result.referrers)
    manifests, layers, child_rows = [], [], []
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
            images = images_of(info)
            if any(image is None for image in images):
                size, layer_count = None, None  # a child could not be read: unknown
            else:
                used = {b.digest: blob_size(b) for image in images for b in image.blobs()}
                size = None if any(v is None for v in used.values()) else sum(used.values())
                layer_count = len({layer.digest for image in images for layer in image.layers})
            platform = _platform_of(info, facts.configs)
            named = named_platform.get((repo, digest), (None, None, None))
            parent = min(parents[(repo, digest)]) if parents.get((repo, digest)) else None
            manifests.append((
                repo, digest, info.media_type, info.kind, parent,
                (platform.os if platform else None) or named[0],
                (platform.architecture if platform else None) or named[1],
                (platform.variant if platform else None) or named[2],
                info.config.digest if info.config else None,
                platform.created if platform else None,
                size, layer_count, info.manifest_size, info.role, info.artifact_type,
                *about.get((repo, digest), (None, None))))
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
                child_rows.append((repo, digest, position, child.digest, child.media_type,
                                   child.os, child.architecture, child.variant, child.subject))
    blobs = [(digest, size, kind, len(blob_repos[digest]), len(blob_users[digest]), media)
             for digest, (size, kind, media) in blob_facts.items()]
    manifest_frame = build("manifests", manifests)
    child_frame = build("children", child_rows)
    if tagged is not None:
        manifest_frame["tagged"] = pd.array([  # bool even when empty
            (repo, digest) in tagged for repo, digest in zip(
                manifest_frame["repository"].astype(str), manifest_frame["digest"], strict=True)],
            dtype=bool)
    return Inventory(
        registry=result.registry,
        taken_at=pd.Timestamp.now(tz="UTC"),
        scope=result.scope,
        repositories=result.repositories,
        tags=with_tag_images(build("tags", [(*tag, None, None) for tag in tags]),
                             manifest_frame, child_frame),
        manifests=manifest_frame,
        layers=build("layers", layers),
        blobs=build("blobs", blobs),
        children=child_frame,
        errors=build("errors", result.errors),
    )


def _platform_of(info: ManifestInfo, configs: dict[str, ConfigFacts]) -> ConfigFacts | None:
    if info.platform is not None:
        return info.platform
    if info.config is not None:
        return configs.get(info.config.digest)
    return None


def facts_of(inv: Inventory) -> Facts:
    """What a previous inventory knows by digest, for a recrawl that skips it. A config
    whose fetch failed last time is left out, so that it is fetched again."""

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
    for row in inv.children.drop_duplicates(["parent", "position"]).itertuples(index=False):
        child_lists.setdefault(str(row.parent), []).append(Child(
            str(row.digest), text(row.media_type), text(row.os), text(row.architecture),
            text(row.variant), text(row.subject)))
    blob_rows = inv.blobs.drop_duplicates("digest").set_index("digest")
    facts = Facts()
    for row in inv.manifests.drop_duplicates("digest").itertuples(index=False):
        platform = ConfigFacts(created(row.created), text(row.os), text(row.architecture),
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
                facts.configs[str(row.config_digest)] = platform
        facts.manifests[str(row.digest)] = ManifestInfo(
            digest=str(row.digest), media_type=text(row.media_type), kind=str(row.kind),
            manifest_size=int(row.manifest_size), config=config,
            layers=tuple(layer_lists.get(str(row.digest), ())),
            children=tuple(child_lists.get(str(row.digest), ())),
            platform=platform if row.kind == "schema1" else None,
            role=str(row.role), artifact_type=text(row.artifact_type),
            # only the manifest's own field: the other sources are per repository
            subject=text(row.subject) if row.subject_source == "subject" else None)
    facts.blob_sizes.update(
        (str(d), int(s)) for d, s in zip(inv.layers["digest"], inv.layers["size"], strict=True)
        if not pd.isna(s))
    return facts
