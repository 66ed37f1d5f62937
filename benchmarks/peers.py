"""The peers, doing the same crawl: python-dxf (serial, as its API goes) and skopeo."""

from __future__ import annotations

import json
import subprocess

import dxf


def dxf_crawl(host: str) -> int:
    """python-dxf: catalog, tags, each manifest, each index child, each config."""
    base = dxf.DXFBase(host, insecure=True)
    count, configs = 0, set()
    for repo in base.list_repos():
        client = dxf.DXF.from_base(base, repo)
        try:
            aliases = client.list_aliases()
        except Exception:  # noqa: BLE001 - 404: a repository with blobs but no tag
            aliases = []
        for alias in aliases:
            count += 1
            manifests = [json.loads(client.get_manifest_and_response(alias)[0])]
            for child in manifests[0].get("manifests", []):
                manifests.append(json.loads(client.get_manifest_and_response(child["digest"])[0]))
            for manifest in manifests:
                config = manifest.get("config", {}).get("digest")
                if config and config not in configs:
                    configs.add(config)
                    b"".join(client.pull_blob(config))  # pull_blob checks the digest
    return count


def skopeo_inspect(host: str, pairs: list[tuple[str, str]]) -> int:
    """``skopeo inspect`` (manifest and config) once per tag."""
    for repo, tag in pairs:
        subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                        f"docker://{host}/{repo}:{tag}"], check=True, capture_output=True)
    return len(pairs)
