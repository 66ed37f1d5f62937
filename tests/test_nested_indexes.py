"""Three levels of nested indexes: the sizes, ``reclaimable``, the plan, and what
``apply_cleanup`` + the registry's own garbage collector do must all agree, on
Distribution 2.8 and 3.0 (each collected by its own binary)."""

from __future__ import annotations

import pandas as pd
import pytest

import reginsight as ri
from reginsight.inventory._reach import reachable
from tests.images import Pusher
from tests.outofcore import assert_same_out_of_core
from tests.registry_server import RegistryServer
from tests.versions import VERSIONS, registry_of

NOW = pd.Timestamp("2026-11-27", tz="UTC")
SHARED = b"shared base layer " * 1000
REPO = "nest/app"
AMD = {"os": "linux", "architecture": "amd64"}


def _blob_bytes(server: RegistryServer) -> int:
    root = server.storage / "docker/registry/v2/blobs"
    return sum(path.stat().st_size for path in root.rglob("data"))


@pytest.fixture(params=list(VERSIONS))
def nested(request, tmp_path):
    """``top`` -> middle -> inner -> {a, b}; middle also lists c. Tagged: top, old-a (a),
    c and an unrelated solo; middle, inner and b are reached only through top. A
    registry of its own, of each version."""
    server = registry_of(request.param, tmp_path / "nested").start()
    p = Pusher(server.url)
    a = p.image(REPO, "old-a", oci=True, layers=(SHARED, b"a" * 3000),
                created="2025-01-01T00:00:00Z")
    b = p.image(REPO, None, oci=True, layers=(b"b" * 2000,), architecture="arm64",
                created="2024-02-01T00:00:00Z")
    c = p.image(REPO, "c", oci=True, layers=(SHARED, b"c" * 1000),
                created="2024-03-01T00:00:00Z")
    inner = p.index(REPO, None, [(a, AMD), (b, {"os": "linux", "architecture": "arm64"})])
    middle = p.index(REPO, None, [(inner, AMD), (c, AMD)])
    top = p.index(REPO, "top", [(middle, AMD)])
    p.image(REPO, "solo", oci=True, layers=(b"solo" * 700,), created="2023-01-01T00:00:00Z")
    p.close()
    try:
        yield server, {"a": a, "b": b, "c": c, "inner": inner, "middle": middle, "top": top}
    finally:
        server.stop()


def _blob_sizes(inv: ri.Inventory, *images) -> dict[str, int]:
    sizes = inv.blobs.set_index("digest")["size"]
    return {d: int(sizes[d]) for image in images for d in (image.config, *image.layers)}


def test_sizes_plan_reclaimable_and_gc_agree_three_levels_down(nested):
    server, pushed = nested
    with ri.Registry(server.url) as reg:
        inv = ri.crawl(reg, progress=False)
        assert inv.errors.empty
        manifests = inv.manifests.set_index("digest")
        # sizes: the top index holds the distinct blobs of every image at any depth
        distinct = _blob_sizes(inv, pushed["a"], pushed["b"], pushed["c"])
        assert manifests.loc[pushed["top"].digest, "size"] == sum(distinct.values())
        assert manifests.loc[pushed["top"].digest, "layers"] == 4  # shared, a, b, c
        assert manifests.loc[pushed["middle"].digest, "size"] == sum(distinct.values())
        assert manifests.loc[pushed["inner"].digest, "size"] == sum(
            _blob_sizes(inv, pushed["a"], pushed["b"]).values())
        assert manifests.loc[pushed["inner"].digest, "parent"] == pushed["middle"].digest
        top_blobs = ri.tag_blobs(inv).query("tag == 'top'")
        assert int(top_blobs["size"].sum()) == sum(distinct.values())
        # an index's creation time is the newest image it reaches, at any depth
        created = ri.image_created(inv)
        assert created[(REPO, pushed["top"].digest)] == pd.Timestamp("2025-01-01", tz="UTC")

        # the plan: protecting top keeps everything it reaches, three levels down
        plan = ri.plan_cleanup(inv, older_than="180d", protect=["nest/app:top"], now=NOW)
        decided = plan.set_index("tag")
        assert decided.loc["old-a", "reason"] == "referenced by kept index top"
        assert decided.loc["c", "reason"] == "referenced by kept index top"
        assert list(plan.loc[plan["action"] == "delete", "tag"]) == ["solo"]

        # deleting top (and c) instead: predicted bytes == what garbage-collect frees
        plan = ri.plan_cleanup(inv, older_than="180d", protect=r"^(old-a|solo)$", now=NOW)
        assert set(plan.loc[plan["action"] == "delete", "tag"].dropna()) == {"top", "c"}
        # the plan lists what the deleted index takes with it, at every depth
        children = plan[plan["tag"].isna()]
        assert set(children["digest"]) == {pushed[k].digest for k in ("middle", "inner", "b")}
        assert children["reason"].str.startswith("child of index sha256:").all()
        freed = ri.reclaimable_blobs(inv, plan[plan["action"] == "delete"])
        gone = {pushed[k].digest for k in ("top", "middle", "inner", "b", "c")}
        assert gone <= set(freed["digest"])
        assert pushed["a"].digest not in set(freed["digest"])
        predicted = plan.attrs["reclaimable_bytes"]
        assert predicted == int(freed["size"].sum())
        before = _blob_bytes(server)
        result = ri.apply_cleanup(reg, plan, dry_run=False)
        assert set(result["status"]) == {"deleted"}
        assert {pushed["middle"].digest, pushed["inner"].digest, pushed["b"].digest} <= set(
            result.loc[result["tag"] == "", "digest"])
    server.stop()
    server.garbage_collect()
    assert before - _blob_bytes(server) == predicted
    server.start()
    with ri.Registry(server.url) as reg:  # what stays still pulls
        for tag in ("old-a", "solo"):
            for layer in reg.manifest(REPO, tag).layers:
                with reg.download_blob(REPO, layer.digest) as stream:
                    stream.read()


def test_reachable_has_no_depth_limit_and_ends_on_loops():
    chain = {n: [n + 1] for n in range(5000)}
    assert reachable([0], lambda n: chain.get(n, ())) == set(range(5001))
    loop = {"a": ["b"], "b": ["c"], "c": ["a", "d"]}
    assert reachable(["a"], lambda n: loop.get(n, ())) == {"a", "b", "c", "d"}


@pytest.mark.parametrize("nested", ["2.8"], indirect=True)  # the figures, not the registry
def test_out_of_core_figures_equal_pandas_through_nested_indexes(nested, tmp_path):
    server, _ = nested
    with ri.Registry(server.url) as reg:
        inv = ri.crawl(reg, progress=False)
    assert_same_out_of_core(inv, tmp_path / "saved")
    scanned = ri.scan_storage(server.storage, progress=False)
    assert_same_out_of_core(scanned, tmp_path / "scanned")
