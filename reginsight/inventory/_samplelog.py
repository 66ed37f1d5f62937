"""An access log for the bundled sample: what the sample registry would have written
over the last 200 days, for trying :func:`reginsight.read_pulls` and everything fed by
it without a registry of one's own."""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ._inventory import Inventory

#: how far back the sample log goes, and where it rotates (older lines: the .gz)
SPAN = pd.Timedelta(days=200)
ROTATED = pd.Timedelta(days=30)
_CLIENTS = ("10.0.4.11", "10.0.4.12", "10.0.7.31", "10.0.9.2")
_AGENTS = ("containerd/v1.7.22", "docker/27.3.1 go/go1.22.7", "skopeo/1.16.1")
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sample_access_log(directory: str | os.PathLike[str], *, now: object = None) -> Path:
    """Write the bundled sample's registry log into ``directory`` (created; refused
    when it holds files) and return it: ``registry.log`` (the last 30 days) and
    ``registry.log.1.gz`` (the 170 before), in Distribution's JSON log formatter, each
    request as the registry writes it (a ``response completed`` line and an access-log
    line). Pulls follow the sample's tags: each repository's newest image pulled
    daily (an index by tag, then its amd64 child by digest), nodes checking it with a
    HEAD every 6 hours, the one before it pulled until 60 days ago, the third once
    150 days ago, older ones never; plus registry health checks. The times end at
    ``now`` (default: the current time), so the log is always recent."""
    from ._sample import sample

    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: give a new folder for the sample log")
    end = (pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)).floor("h")
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    lines = sorted(_requests(sample(), end), key=lambda item: item[0])
    recent = [text for when, text in lines if when > end - ROTATED]
    older = [text for when, text in lines if when <= end - ROTATED]
    with gzip.open(folder / "registry.log.1.gz", "wt", encoding="utf-8") as out:
        out.writelines(older)
    (folder / "registry.log").write_text("".join(recent), encoding="utf-8")
    return folder


def _requests(inv: Inventory, end: pd.Timestamp) -> Iterator[tuple[pd.Timestamp, str]]:
    rng = random.Random(28)  # noqa: S311 - a reproducible sample, not a secret
    tags = inv.tags.astype({"repository": str, "tag": str, "digest": str})
    children = inv.children.astype({"repository": str, "parent": str, "digest": str})
    roles = inv.manifests.set_index(["repository", "digest"])["role"]
    days = SPAN.days
    for hour in range(0, days * 24, 6):  # the registry's health check, every 6 hours
        yield from _request(end - SPAN + pd.Timedelta(hours=hour), "GET", "/v2/", 200,
                            "127.0.0.1", "kube-probe/1.31", rng)
    for repository, group in tags.groupby("repository"):
        images = group[[roles.get((repository, d)) in ("image", "index")
                        for d in group["digest"]]]
        newest = images.sort_values(["created", "tag"], ascending=False, na_position="last")
        newest = newest.drop_duplicates("digest")
        picks = list(newest.itertuples(index=False))
        for rank, row in enumerate(picks[:3]):
            child = children.loc[(children["repository"] == repository)
                                 & (children["parent"] == row.digest), "digest"]
            if rank == 0:
                when = [end - pd.Timedelta(days=d, hours=rng.randrange(24)) for d in range(days)]
            elif rank == 1:
                when = [end - pd.Timedelta(days=d, hours=rng.randrange(24))
                        for d in range(60, days, 7)]
            else:
                when = [end - pd.Timedelta(days=150, hours=rng.randrange(24))]
            for moment in when:
                client, agent = rng.choice(_CLIENTS), rng.choice(_AGENTS)
                yield from _request(moment, "GET", f"/v2/{repository}/manifests/{row.tag}", 200,
                                    client, agent, rng)
                if len(child):
                    yield from _request(moment + pd.Timedelta(milliseconds=40), "GET",
                                        f"/v2/{repository}/manifests/{child.iloc[0]}", 200,
                                        client, agent, rng)
            if rank == 0:
                for hour in range(0, days * 24, 6):
                    yield from _request(end - pd.Timedelta(hours=hour, minutes=7), "HEAD",
                                        f"/v2/{repository}/manifests/{row.tag}", 200,
                                        "10.0.4.11", _AGENTS[0], rng)


def _request(when: pd.Timestamp, method: str, uri: str, status: int, client: str, agent: str,
             rng: random.Random) -> Iterator[tuple[pd.Timestamp, str]]:
    """The two lines Distribution writes for one request: the ``response completed``
    line (JSON formatter) and the access-log line."""
    port = rng.randrange(30000, 60000)
    duration = rng.uniform(0.3, 4.0)
    record = {
        "go.version": "go1.19.8", "http.request.host": "registry.example.internal",
        "http.request.id": f"{rng.getrandbits(128):032x}", "http.request.method": method,
        "http.request.remoteaddr": f"{client}:{port}", "http.request.uri": uri,
        "http.request.useragent": agent, "http.response.contenttype": _MANIFEST,
        "http.response.duration": f"{duration:.3f}ms", "http.response.status": status,
        "http.response.written": 0 if method == "HEAD" else 1024, "level": "info",
        "msg": "response completed",
        "time": (when + pd.Timedelta(milliseconds=duration)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    yield when, json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
    size = 0 if method == "HEAD" else 1024
    yield when, f'{client} - - [{stamp}] "{method} {uri} HTTP/1.1" {status} {size} "" "{agent}"\n'
