"""The crawl sharded over Dask (issue 16): a LocalCluster of worker processes crawls the
real registry and gives the frames a single process gives; with since=; with a worker
killed mid-crawl; and no password in the task graph or the logs."""

from __future__ import annotations

import os
import pickle
import re
import signal
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pandas as pd
import pytest

import reginsight as ri
from tests.conftest import BASIC_PASSWORD, BASIC_USER
from tests.fault_proxy import FaultProxy
from tests.images import Pushed, Pusher
from tests.supply_chain import SupplyChain

try:
    from distributed import Client, LocalCluster, SchedulerPlugin
except ImportError:  # the dask extra; CI installs it, so there this is a failure
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("dask[distributed] is not installed: pip install 'reginsight[dask]'",
                allow_module_level=True)

from reginsight.inventory._distributed import plan_shards
from reginsight.inventory._selection import selection


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """One cluster for the module: two worker processes of one thread each."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as dask_client:
        yield dask_client


@dataclass
class Scene:
    prefix: str
    app4_v1: tuple[bytes, ...]  # the layers of one image, to push its digest elsewhere


def _layer(label: str) -> bytes:
    return (label.encode() * 64)[:512]


@pytest.fixture(scope="module")
def scene(registry_server) -> Iterator[Scene]:
    """Ten repositories under one prefix: shared base layers, an image in two
    repositories, an index, a cosign signature, an SBOM (untagged, fallback tag), an
    untagged subject, and a repository holding only a blob (the catalog lists it)."""
    prefix = f"d{uuid.uuid4().hex[:10]}"
    pusher = Pusher(registry_server.url)
    chain = SupplyChain(pusher)
    base = _layer("base")
    images: dict[str, Pushed] = {}
    for n in range(6):
        repo = f"{prefix}/app{n}"
        for t in range(2):
            images[f"{repo}:v{t}"] = pusher.image(repo, f"v{t}", layers=(
                base, _layer(f"{repo}-{t}")), created=f"2026-0{n + 1}-0{t + 1}T00:00:00Z")
        pusher.manifest(repo, "latest", images[f"{repo}:v1"].raw, images[f"{repo}:v1"].media_type)
    shared = (base, _layer("shared"))
    pusher.image(f"{prefix}/app0", "same", layers=shared)  # one digest in two repositories
    pusher.image(f"{prefix}/app3", "same", layers=shared)
    amd = pusher.image(f"{prefix}/multi", None, layers=(base, _layer("amd")))
    arm = pusher.image(f"{prefix}/multi", None, layers=(base, _layer("arm")),
                       architecture="arm64", variant="v8")
    pusher.index(f"{prefix}/multi", "1.0", [(amd, {"os": "linux", "architecture": "amd64"}),
                                             (arm, {"os": "linux", "architecture": "arm64",
                                                    "variant": "v8"})])
    signed = pusher.image(f"{prefix}/signed", "v1", layers=(base, _layer("signed")))
    chain.cosign_signature(f"{prefix}/signed", signed.digest)
    chain.spdx_sbom(f"{prefix}/signed", signed)
    hidden = pusher.image(f"{prefix}/hidden", None, layers=(base, _layer("hidden")))
    chain.cosign_signature(f"{prefix}/hidden", hidden.digest)  # its subject: untagged
    pusher.blob(f"{prefix}/blobsonly", _layer("only a blob"))
    yield Scene(prefix, (base, _layer(f"{prefix}/app4-1")))
    pusher.close()


def assert_same(distributed: ri.Inventory, single: ri.Inventory) -> None:
    """Frame for frame, and what the inventory says about itself."""
    assert distributed.registry == single.registry
    assert distributed.scope == single.scope
    assert distributed.repositories == single.repositories
    frames, expected = dict(distributed.frames()), dict(single.frames())
    assert frames.keys() == expected.keys()
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(frames[name], frame, obj=name)


def test_distributed_crawl_equals_the_single_process_crawl(reg, scene, client):
    glob = f"{scene.prefix}/*"
    single = ri.crawl(reg, glob, progress=False)
    inv = ri.crawl(reg, glob, progress=False, cluster=client)
    assert_same(inv, single)
    # the scene is all there: every kind of row the crawl can make
    assert inv.errors.empty, inv.errors
    assert len(inv.repositories) == 10 and f"{scene.prefix}/blobsonly" in inv.repositories
    assert set(inv.manifests["kind"]) == {"image", "index"}
    assert {"signature", "sbom"} <= set(inv.manifests["role"])
    assert inv.manifests["subject"].notna().sum() >= 3
    assert len(inv.children) == 3  # the index, and the SBOM's fallback index
    assert (inv.blobs["repositories"] >= 8).any()  # the base layer, shared


def test_the_command_line_crawls_on_a_scheduler(reg, scene, client, tmp_path, capsys):
    from reginsight._cli import main

    glob = f"{scene.prefix}/*"
    assert main(["crawl", reg.url, "-o", str(tmp_path / "inv"), "--repositories", glob,
                 "--scheduler", client.scheduler.address, "--no-progress"]) == 0
    assert_same(ri.Inventory.load(tmp_path / "inv"), ri.crawl(reg, glob, progress=False))
    assert "saved" in capsys.readouterr().err


def test_named_repositories_shard_as_names_with_progress(reg, scene, client, capsys):
    names = [f"{scene.prefix}/{n}" for n in ("app1", "multi", "missing", "hidden", "app4")]
    single = ri.crawl(reg, names, progress=False)
    inv = ri.crawl(reg, names, cluster=client)  # progress: plain lines on a captured stderr
    assert_same(inv, single)
    assert list(inv.errors["repository"]) == [f"{scene.prefix}/missing"]  # named: an error
    assert f"crawl {reg.url}: 5/5 repositories" in capsys.readouterr().err
    mixed = [f"{scene.prefix}/app2", re.compile(f"^{scene.prefix}/(multi|blobs)")]
    assert_same(ri.crawl(reg, mixed, progress=False, cluster=client),
                ri.crawl(reg, mixed, progress=False))
    nothing = f"{scene.prefix}/none-*"  # no repository: no shard, an empty inventory
    assert_same(ri.crawl(reg, nothing, progress=False, cluster=client),
                ri.crawl(reg, nothing, progress=False))


def test_since_ships_each_shard_its_part_and_equals_a_single_since_crawl(
        registry_server, reg, scene, client):
    glob = f"{scene.prefix}/*"
    before = ri.crawl(reg, glob, progress=False)
    pusher = Pusher(registry_server.url)
    try:  # a new image; and app4's v1 tagged in app2 (a digest the shard never held)
        pusher.image(f"{scene.prefix}/app1", "v9", layers=(_layer("new"),))
        moved = pusher.image(f"{scene.prefix}/app2", "moved", layers=scene.app4_v1,
                             created="2026-05-02T00:00:00Z")
    finally:
        pusher.close()
    assert moved.digest in set(before.manifests["digest"])
    single = ri.crawl(reg, glob, progress=False, since=before)
    assert_same(ri.crawl(reg, glob, progress=False, since=before, cluster=client), single)
    assert moved.digest in set(single.tags["digest"])

    names = list(before.repositories)
    for shard in plan_shards(names, selection(glob), 4, since=before):
        held = before.manifests[before.manifests["repository"].isin(shard.repositories)]
        assert set(shard.since.manifests) == set(held["digest"])
        assert set(shard.since.blob_sizes) <= set(
            before.layers[before.layers["repository"].isin(shard.repositories)]["digest"])
    assert plan_shards(names, selection(glob), 4) == plan_shards(names, selection(glob), 4)


class RunSpecs(SchedulerPlugin):
    """Keeps what the scheduler holds for every task it sends to a worker."""

    name = "reginsight-test-run-specs"

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, str]] = []

    def transition(self, key, start, finish, *args, **kwargs) -> None:
        if finish == "processing" and str(key).startswith("reginsight-crawl"):
            task = self.scheduler.tasks[key]
            self.seen.append((str(key), pickle.dumps(task.run_spec), repr(task.run_spec)))

    async def start(self, scheduler) -> None:
        self.scheduler = scheduler


def test_no_password_in_the_task_graph_or_the_logs(basic_registry, client):
    prefix = f"s{uuid.uuid4().hex[:10]}"
    pusher = Pusher(basic_registry.url, auth=httpx.BasicAuth(BASIC_USER, BASIC_PASSWORD))
    try:
        for n in range(3):
            pusher.image(f"{prefix}/app{n}", "v1")
    finally:
        pusher.close()
    client.register_plugin(RunSpecs())
    secret = BASIC_PASSWORD.encode()
    names = [f"{prefix}/app{n}" for n in range(3)]
    with ri.Registry(basic_registry.url, BASIC_USER, BASIC_PASSWORD) as reg:
        inv = ri.crawl(reg, names, progress=False, cluster=client)
        assert_same(inv, ri.crawl(reg, names, progress=False))
    assert inv.errors.empty and len(inv.tags) == 3  # the workers did authenticate
    seen = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins[
        RunSpecs.name].seen)
    assert len(seen) == 3
    for _, dumped, shown in seen:
        assert secret not in dumped and BASIC_PASSWORD not in shown
        # the arguments are there in clear (the URL), the credentials only sealed
        assert basic_registry.url.encode() in dumped and b"SealedSettings" in dumped
    client.unregister_scheduler_plugin(RunSpecs.name)
    logs = repr(client.get_worker_logs()) + repr(client.get_scheduler_logs())
    assert BASIC_PASSWORD not in logs
    # the crawl's key is gone from every worker once the crawl is over
    keys = client.run(lambda dask_worker: [n for n in dask_worker.plugins
                                           if n.startswith("reginsight-crawl-key")])
    assert keys and all(found == [] for found in keys.values())


def test_settings_that_cannot_travel_are_refused_before_any_task(registry_server, client):
    with ri.Registry(registry_server.url, transport=httpx.HTTPTransport()) as reg:
        with pytest.raises(ValueError, match="transport="):
            ri.crawl(reg, ["a/b"], cluster=client)
    with ri.Registry(registry_server.url, verify=ssl.create_default_context()) as reg:
        with pytest.raises(ValueError, match="CA bundle path"):
            ri.crawl(reg, ["a/b"], cluster=client)
    with ri.Registry(registry_server.url, "someone", "pw", timeout=7.0) as reg:
        assert reg.settings.portable() is None
        with ri.Registry.from_settings(reg.settings) as again:  # what a worker does
            assert again.settings == reg.settings and again.credentials.password == "pw"
        with pytest.raises(TypeError, match="Client"):
            ri.crawl(reg, ["a/b"], cluster="tcp://127.0.0.1:8786")


def test_without_dask_the_error_says_what_to_install(reg, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "reginsight.inventory._distributed")
    with pytest.raises(ImportError, match=re.escape("pip install 'reginsight[dask]'")):
        ri.crawl(reg, ["a/b"], cluster=object())


def _kill_a_busy_worker(client: Client, killed: dict, over: threading.Event) -> None:
    """Once shards have finished and others run, SIGKILL a worker process running one."""
    pids = client.run(os.getpid)

    def shards(dask_scheduler) -> list[tuple[str, str, str | None]]:
        return [(str(key), ts.state, ts.processing_on.address if ts.processing_on else None)
                for key, ts in dask_scheduler.tasks.items()
                if str(key).startswith("reginsight-crawl")]

    while not over.is_set():
        states = client.run_on_scheduler(shards)
        busy = [worker for _, state, worker in states if state == "processing" and worker]
        if busy and sum(state == "memory" for _, state, _ in states) >= 1:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.update(pid=pids[busy[0]], left=len(busy))
            return
        time.sleep(0.05)


def test_a_killed_worker_loses_only_its_shard(registry_server, scene, client):
    client.wait_for_workers(2)
    glob = f"{scene.prefix}/*"
    slow = (lambda path: True, "slow")  # 0.1 s on every request: a crawl of some seconds
    with FaultProxy(registry_server.url, rate=0.0, always=slow) as proxy, \
            ri.Registry(proxy.url) as reg:
        single = ri.crawl(reg, glob, progress=False)
        killed: dict = {}
        over = threading.Event()
        killer = threading.Thread(target=_kill_a_busy_worker, args=(client, killed, over))
        killer.start()
        try:
            inv = ri.crawl(reg, glob, progress=False, concurrency=2, cluster=client)
        finally:
            over.set()
            killer.join()
    assert killed, "no worker was killed mid-crawl"
    client.wait_for_workers(2)  # the nanny started another process
    assert killed["pid"] not in client.run(os.getpid).values()
    assert_same(inv, single)
    assert inv.errors.empty


def test_a_cluster_without_workers_is_an_error_not_a_hang(reg, scene, monkeypatch):
    from reginsight.inventory import _distributed

    monkeypatch.setattr(_distributed, "WAIT_FOR_WORKERS", 1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as empty:
        with pytest.raises(ValueError, match="no worker"):
            ri.crawl(reg, f"{scene.prefix}/*", progress=False, cluster=empty)
