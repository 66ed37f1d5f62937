"""read_pulls on the real registries' own logs: Distribution 2.8 and 3.0, each with its
JSON and its text log formatter (level info, access log on); images pushed with bare
HTTP, pulled with skopeo (by tag, by digest, a multi-arch index with and without --all)
and checked with a HEAD. Every pull is in the log's frame exactly once, with its time,
repository, reference and digest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import reginsight as ri
from tests.images import DOCKER_MANIFEST, OCI_INDEX, Pushed, Pusher
from tests.registry_server import RegistryServer
from tests.skopeo import skopeo
from tests.versions import registry_of

CONFIGURATIONS = [("2.8", "json"), ("2.8", "text"), ("3.0", "json"), ("3.0", "text")]
SKOPEO = "skopeo/"


@pytest.fixture(scope="module", params=CONFIGURATIONS, ids=lambda c: "-".join(c))
def logged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RegistryServer]:
    """One registry per version and formatter, its log at level info, access log on."""
    version, formatter = request.param
    server = registry_of(version, tmp_path_factory.mktemp(f"pulls-{version}-{formatter}"),
                         log={"level": "info", "formatter": formatter,
                              "accesslog": {"disabled": False}})
    server.start()  # a registry that does not start fails the tests (never a skip)
    yield server
    server.stop()


@pytest.fixture
def repo() -> str:
    return f"pulls-{uuid.uuid4().hex[:10]}/app"


def host(server: RegistryServer) -> str:
    return server.url.split("://", 1)[1]


def now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def logged_pulls(server: RegistryServer, repository: str) -> pd.DataFrame:
    """The rows of ``repository`` read from the registry's log file, once the registry
    has written what it served so far: a request sent after the others (a marker user
    agent) has both of its lines in the log."""
    marker = f"marker-{uuid.uuid4().hex}"
    httpx.get(f"{server.url}/v2/", headers={"User-Agent": marker}, timeout=10)
    log = server.workdir / "registry.log"
    deadline = time.monotonic() + 20
    while log.read_text(errors="replace").count(marker) < 2:
        assert time.monotonic() < deadline, f"the registry did not log {marker} in 20 s"
        time.sleep(0.05)
    pulls = ri.read_pulls(log)
    assert pulls.attrs["skipped"] == {str(log): 0}  # every line is the registry's
    (span,) = pulls.attrs["coverage"]
    assert span.source == str(log)
    return pulls[pulls["repository"] == repository].reset_index(drop=True)


def requests(pulls: pd.DataFrame) -> list[tuple]:
    """(method, kind, reference, digest) of each row, sorted."""
    return sorted((r.method, r.kind, r.reference, None if pd.isna(r.digest) else r.digest)
                  for r in pulls.itertuples())


def between(pulls: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The rows timed from ``start`` to ``end``: all of them, or the assertion says not.
    (A row only the access log has is timed to the second its request began.)"""
    inside = (pulls["time"] >= start.floor("s")) & (pulls["time"] <= end)
    assert inside.all(), pulls.loc[~inside, ["time", "method", "reference"]]
    return pulls


def blobs_of(image: Pushed) -> list[tuple]:
    return [("GET", "blob", digest, digest) for digest in (image.config, *image.layers)]


def test_a_push_then_a_pull_by_tag(logged: RegistryServer, repo: str, tmp_path: Path) -> None:
    start = now()
    image = Pusher(logged.url).image(repo, "v1")
    pushed = now()
    skopeo("copy", "--src-tls-verify=false", f"docker://{host(logged)}/{repo}:v1",
           f"dir:{tmp_path / 'out'}")
    end = now()
    pulls = logged_pulls(logged, repo)
    assert requests(pulls) == sorted([("PUT", "manifest", "v1", None),
                                      ("GET", "manifest", "v1", None), *blobs_of(image)])
    push = pulls[pulls["method"] == "PUT"]
    between(push, start, pushed)
    assert list(push["status"]) == [201]
    pull = between(pulls[pulls["method"] == "GET"], pushed, end)
    assert set(pull["status"]) == {200}
    assert all(agent.startswith(SKOPEO) for agent in pull["user_agent"])
    assert set(pulls["client"]) == {"127.0.0.1"}
    assert pulls["user"].isna().all()


def test_a_pull_by_digest(logged: RegistryServer, repo: str, tmp_path: Path) -> None:
    image = Pusher(logged.url).image(repo, "v2")
    start = now()
    skopeo("copy", "--src-tls-verify=false", f"docker://{host(logged)}/{repo}@{image.digest}",
           f"dir:{tmp_path / 'out'}")
    skopeo("inspect", "--raw", "--tls-verify=false",
           f"docker://{host(logged)}/{repo}@{image.digest}")
    end = now()
    pulls = between(logged_pulls(logged, repo).query("method != 'PUT'"), start, end)
    by_digest = ("GET", "manifest", image.digest, image.digest)
    assert requests(pulls) == sorted([by_digest, by_digest, *blobs_of(image)])


def test_a_multi_arch_index_pulls_one_child_or_all(logged: RegistryServer, repo: str,
                                                   tmp_path: Path) -> None:
    pusher = Pusher(logged.url)
    amd64 = pusher.image(repo, None, architecture="amd64")
    arm64 = pusher.image(repo, None, architecture="arm64", variant="v8")
    index = pusher.index(repo, "multi", [
        (amd64, {"os": "linux", "architecture": "amd64"}),
        (arm64, {"os": "linux", "architecture": "arm64", "variant": "v8"})])
    assert index.media_type == OCI_INDEX and amd64.media_type == DOCKER_MANIFEST
    source = f"docker://{host(logged)}/{repo}:multi"
    start = now()
    # without --all: the index, then the child of this machine's platform (amd64)
    skopeo("copy", "--src-tls-verify=false", "--override-arch", "amd64", source,
           f"dir:{tmp_path / 'one'}")
    middle = now()
    skopeo("copy", "--src-tls-verify=false", "--all", source, f"dir:{tmp_path / 'all'}")
    end = now()
    pulls = logged_pulls(logged, repo).query("method != 'PUT'")
    one = pulls[pulls["time"] <= middle]
    every = pulls[pulls["time"] > middle]
    tagged = ("GET", "manifest", "multi", None)

    def child(image: Pushed) -> tuple:
        return ("GET", "manifest", image.digest, image.digest)

    assert requests(between(one, start, middle)) == sorted(
        [tagged, child(amd64), *blobs_of(amd64)])
    assert requests(between(every, middle, end)) == sorted(
        [tagged, child(amd64), child(arm64), *blobs_of(amd64), *blobs_of(arm64)])
    # the children's pushes: by digest
    pushes = logged_pulls(logged, repo).query("method == 'PUT'")
    assert requests(pushes) == sorted([("PUT", "manifest", amd64.digest, amd64.digest),
                                       ("PUT", "manifest", arm64.digest, arm64.digest),
                                       ("PUT", "manifest", "multi", None)])


def test_a_head_only_check_counts_once(logged: RegistryServer, repo: str) -> None:
    image = Pusher(logged.url).image(repo, "cached")
    accept = {"Accept": DOCKER_MANIFEST, "User-Agent": "containerd/1.7.22"}
    start = now()
    by_tag = httpx.head(f"{logged.url}/v2/{repo}/manifests/cached", headers=accept)
    by_digest = httpx.head(f"{logged.url}/v2/{repo}/manifests/{image.digest}", headers=accept)
    missing = httpx.head(f"{logged.url}/v2/{repo}/manifests/gone", headers=accept)
    end = now()
    assert (by_tag.status_code, by_digest.status_code, missing.status_code) == (200, 200, 404)
    assert by_tag.headers["docker-content-digest"] == image.digest
    heads = between(logged_pulls(logged, repo).query("method == 'HEAD'"), start, end)
    assert requests(heads) == sorted([("HEAD", "manifest", "cached", None),
                                      ("HEAD", "manifest", image.digest, image.digest),
                                      ("HEAD", "manifest", "gone", None)])
    assert sorted(heads["status"]) == [200, 200, 404]
    assert set(heads["user_agent"]) == {"containerd/1.7.22"}
    assert set(heads["client"]) == {"127.0.0.1"}
