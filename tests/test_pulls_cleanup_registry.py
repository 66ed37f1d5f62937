"""A cleanup of what nobody pulled, proven on real registries (2.8 and 3.0): images
pulled with skopeo (by tag, by digest, a multi-arch index) or checked with a HEAD are
kept, the others are deleted, and what stays still pulls. The pull records are the
registry's own log, read with read_pulls."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import reginsight as ri
from tests.images import Pusher
from tests.registry_server import RegistryServer
from tests.skopeo import skopeo
from tests.versions import registry_of

LOGGING = {"level": "info", "formatter": "json", "accesslog": {"disabled": False}}


@pytest.fixture(scope="module", params=["2.8", "3.0"])
def logged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RegistryServer]:
    """A real registry of each version writing its JSON log and access log."""
    server = registry_of(request.param, tmp_path_factory.mktemp(f"pulls-{request.param}"),
                         log=LOGGING).start()
    try:
        yield server
    finally:
        server.stop()


def host(server: RegistryServer) -> str:
    return server.url.split("://", 1)[1]


def test_unpulled_for_deletes_exactly_what_nobody_pulled(logged: RegistryServer, prefix: str,
                                                         tmp_path: Path) -> None:
    pusher = Pusher(logged.url)
    try:
        pulled = pusher.image(f"{prefix}/app", "pulled")
        by_digest = pusher.image(f"{prefix}/app", "pinned")
        checked = pusher.image(f"{prefix}/app", "cached")
        idle = pusher.image(f"{prefix}/app", "idle")
        amd64 = pusher.image(f"{prefix}/multi", None, os_name="linux", architecture="amd64")
        arm64 = pusher.image(f"{prefix}/multi", None, os_name="linux", architecture="arm64")
        index = pusher.index(f"{prefix}/multi", "v1", [
            (amd64, {"os": "linux", "architecture": "amd64"}),
            (arm64, {"os": "linux", "architecture": "arm64"})])
        idle_amd64 = pusher.image(f"{prefix}/idle-multi", None)
        idle_index = pusher.index(f"{prefix}/idle-multi", "v1", [
            (idle_amd64, {"os": "linux", "architecture": "amd64"})])
    finally:
        pusher.close()
    time.sleep(2.5)  # every push lies outside the window the pulls fall in
    started = pd.Timestamp.now(tz="UTC")
    at = host(logged)
    skopeo("copy", "--src-tls-verify=false", f"docker://{at}/{prefix}/app:pulled",
           f"dir:{tmp_path / 'pulled'}")
    skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{at}/{prefix}/app@{by_digest.digest}")
    head = httpx.head(f"{logged.url}/v2/{prefix}/app/manifests/cached", headers={
        "Accept": checked.media_type})
    assert head.status_code == 200
    # an index pulled by tag: skopeo reads the index, then this machine's child by digest
    skopeo("copy", "--src-tls-verify=false", "--override-arch", "amd64", "--override-os",
           "linux", f"docker://{at}/{prefix}/multi:v1", f"dir:{tmp_path / 'multi'}")
    time.sleep(0.2)  # the log line of the last request is written as it completes
    now = pd.Timestamp.now(tz="UTC")
    # + 1.5 s: an access-log line (3.0's only record of a HEAD) is timed to the second
    window = dt.timedelta(seconds=(now - started).total_seconds() + 1.5)

    pulls = ri.read_pulls(logged.workdir / "registry.log")
    mine = pulls[pulls["repository"].astype(str).str.startswith(prefix)]
    manifest_gets = mine[(mine["kind"] == "manifest") & mine["method"].isin(["GET", "HEAD"])]
    assert len(manifest_gets) == 5, manifest_gets[["repository", "reference", "method"]]

    with ri.Registry(logged.url) as reg:
        inv = ri.crawl(reg, repositories=f"{prefix}/*", progress=False)
        plan = ri.plan_cleanup(inv, pulls=pulls, unpulled_for=window, now=now)
        decided = plan[plan["tag"].notna()].set_index(["repository", "tag"])["action"]
        assert decided.to_dict() == {
            (f"{prefix}/app", "cached"): "keep", (f"{prefix}/app", "idle"): "delete",
            (f"{prefix}/app", "pinned"): "keep", (f"{prefix}/app", "pulled"): "keep",
            (f"{prefix}/idle-multi", "v1"): "delete", (f"{prefix}/multi", "v1"): "keep"}
        deleted = plan[plan["action"] == "delete"]
        assert set(deleted["digest"]) == {idle.digest, idle_index.digest, idle_amd64.digest}
        result = ri.apply_cleanup(reg, plan, dry_run=False)
        assert set(result["status"]) == {"deleted"}, result
        assert reg.tags(f"{prefix}/app") == ["cached", "pinned", "pulled"]
    # what stays still pulls, every platform of the kept index included
    for reference in ("app:pulled", "app:pinned", "app:cached", "multi:v1",
                      f"multi@{amd64.digest}", f"multi@{arm64.digest}"):
        skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{at}/{prefix}/{reference}")
    kept = set(plan.loc[plan["action"] == "keep", "digest"])
    assert {pulled.digest, by_digest.digest, checked.digest, index.digest} <= kept


def test_records_that_start_inside_the_window_delete_nothing(
        logged: RegistryServer, prefix: str) -> None:
    """The log's older part is gone (rotated away): the records start inside the
    window, so "no record" is unknown, not unused, and nothing is deleted for it."""
    pusher = Pusher(logged.url)
    try:
        pusher.image(f"{prefix}/app", "idle")
    finally:
        pusher.close()
    time.sleep(1.5)
    log = logged.workdir / "registry.log"
    rotated_at, cut = pd.Timestamp.now(tz="UTC"), os.path.getsize(log)
    time.sleep(1.1)
    assert httpx.get(f"{logged.url}/v2/").status_code == 200  # the newer file's first line
    time.sleep(0.2)
    now = pd.Timestamp.now(tz="UTC")
    with open(log, "rb") as whole:
        whole.seek(cut)
        pulls = ri.read_pulls(whole)  # only what was written after the cut
    first = min(span.start for span in pulls.attrs["coverage"])
    assert first > rotated_at
    with ri.Registry(logged.url) as reg:
        inv = ri.crawl(reg, repositories=f"{prefix}/*", progress=False)
    window = dt.timedelta(seconds=(now - rotated_at).total_seconds() + 0.5)
    plan = ri.plan_cleanup(inv, pulls=pulls, unpulled_for=window, now=now)
    assert list(plan["action"]) == ["keep"]
    assert "the records cover only since" in plan["reason"].iloc[0]
    assert "unknown, not unused" in plan["reason"].iloc[0]
    # the whole log reaches back over the window: the same image is then unused
    whole_plan = ri.plan_cleanup(inv, pulls=ri.read_pulls(log), unpulled_for=window, now=now)
    assert list(whole_plan["action"]) == ["delete"], whole_plan["reason"].tolist()
