"""The floor: the least a concurrent crawler must do, with no parsing, checks or frames.

A thread pool over one httpx.Client: catalog, tag lists, each tag's manifest,
each index child, each distinct config. What reginsight does on top (typed
models, digest checks, frames) is measured against this.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def floor_crawl(url: str, *, concurrency: int = 32) -> int:
    """Fetch what a crawl needs; return the number of tags."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, limits=limits, timeout=60) as client, \
            ThreadPoolExecutor(concurrency) as pool:
        repos, next_url = [], "/v2/_catalog?n=1000"
        while next_url:
            page = client.get(next_url)
            repos += page.json()["repositories"]
            next_url = page.links.get("next", {}).get("url")

        def tags(repo: str) -> list[tuple[str, str]]:
            response = client.get(f"/v2/{repo}/tags/list")  # 404: blobs but no tags
            return [(repo, t) for t in response.json().get("tags") or []]

        def manifest(repo_ref: tuple[str, str]) -> tuple[str, dict]:
            repo, ref = repo_ref
            return repo, client.get(f"/v2/{repo}/manifests/{ref}",
                                    headers={"Accept": ACCEPT}).json()

        pairs = [pair for chunk in pool.map(tags, repos) for pair in chunk]
        manifests = list(pool.map(manifest, pairs))
        children = {(repo, c["digest"]) for repo, m in manifests for c in m.get("manifests", [])}
        manifests += list(pool.map(manifest, sorted(children)))
        configs = {m["config"]["digest"]: repo for repo, m in manifests if "config" in m}
        list(pool.map(lambda item: client.get(f"/v2/{item[1]}/blobs/{item[0]}").content,
                      configs.items()))
    return len(pairs)
