"""Cleanup against the real registries (Distribution 2.8 and 3.0), and the proof of
``reclaimable``: predict, delete through reginsight, run that registry's own garbage
collector (the same version's binary), compare bytes."""

from __future__ import annotations

import pandas as pd
import pytest

import reginsight as ri
from tests.images import Pusher
from tests.registry_server import RegistryServer
from tests.transports import CountingTransport
from tests.versions import VERSIONS, registry_of

BASE = b"base layer " * 2000
NOW = pd.Timestamp("2026-11-27", tz="UTC")


def _blob_bytes(server: RegistryServer) -> int:
    """Bytes of every blob the registry stores (manifests, configs, layers)."""
    root = server.storage / "docker/registry/v2/blobs"
    return sum(path.stat().st_size for path in root.rglob("data"))


def _fill(url: str) -> dict:
    p = Pusher(url)
    made = {}
    for n, day in enumerate(["2025-01-01", "2025-06-01", "2026-11-01"]):
        made[f"app:{n}"] = p.image("gc/app", f"v{n}", layers=(BASE, f"app {n}".encode() * 300),
                                   created=f"{day}T00:00:00Z")
    old = made["app:0"]
    p.manifest("gc/app", "stable", old.raw, old.media_type)  # shares v0's digest
    p.image("gc/tool", "v1", layers=(BASE, b"tool" * 500), created="2024-01-01T00:00:00Z")
    p.image("gc/tool", "v2", layers=(BASE, b"tool2" * 500), created="2026-11-20T00:00:00Z")
    amd = p.image("gc/multi", "amd", oci=True, layers=(BASE, b"amd" * 400),
                  created="2024-05-05T00:00:00Z")
    arm = p.image("gc/multi", "arm-build", oci=True, layers=(b"arm" * 400,),
                  architecture="arm64", created="2024-05-05T00:00:00Z")
    p.index("gc/multi", "all", [(amd, {"os": "linux", "architecture": "amd64"}),
                                (arm, {"os": "linux", "architecture": "arm64"})])
    p.image("gc/multi", "new", oci=True, layers=(b"new" * 100,), created="2026-11-25T00:00:00Z")
    p.close()
    return made


@pytest.fixture(params=list(VERSIONS))
def gc_registry(request, tmp_path):
    """A registry of its own for each test (the collector measures the whole storage),
    of each version."""
    server = registry_of(request.param, tmp_path / "gc").start()
    yield server
    server.stop()


def test_reclaimable_equals_what_garbage_collect_frees(gc_registry):
    _fill(gc_registry.url)
    with ri.Registry(gc_registry.url) as reg:
        inv = ri.crawl(reg, progress=False)
        assert inv.errors.empty
        plan = ri.plan_cleanup(inv, keep_last=1, older_than="180d", protect=["gc/tool:v1"],
                               now=NOW)
        doomed = plan[plan["action"] == "delete"]
        # v0 and stable go together; the index 'all' and its arm child; tool:v1 stays
        assert set(zip(doomed["repository"], doomed["tag"], strict=True)) == {
            ("gc/app", "v0"), ("gc/app", "stable"), ("gc/app", "v1"),
            ("gc/multi", "all"), ("gc/multi", "arm-build"), ("gc/multi", "amd")}
        predicted = plan.attrs["reclaimable_bytes"]
        assert predicted > len(BASE) // 100  # something real is freed ...
        before = _blob_bytes(gc_registry)
        result = ri.apply_cleanup(reg, plan, dry_run=False)
        assert set(result["status"]) == {"deleted"}
        assert set(reg.tags("gc/app")) == {"v2"}
    gc_registry.stop()
    gc_registry.garbage_collect()
    freed = before - _blob_bytes(gc_registry)
    assert freed == predicted
    gc_registry.start()
    with ri.Registry(gc_registry.url) as reg:  # ... and nothing kept was lost
        for repo, tag in (("gc/app", "v2"), ("gc/tool", "v1"), ("gc/multi", "new")):
            manifest = reg.manifest(repo, tag)
            for layer in manifest.layers:
                with reg.download_blob(repo, layer.digest) as stream:
                    stream.read()


def test_dry_run_sends_no_delete_and_a_moved_tag_is_skipped(gc_registry):
    _fill(gc_registry.url)
    transport = CountingTransport()
    with ri.Registry(gc_registry.url, transport=transport) as reg:
        inv = ri.crawl(reg, "gc/app", progress=False)
        plan = ri.plan_cleanup(inv, keep_last=1, now=NOW)
        dry = ri.apply_cleanup(reg, plan)
        assert transport.count("DELETE") == 0
        assert set(dry["status"]) == {"would delete"}
        # v1 moves to v2's image after the plan was made
        v2 = reg.manifest("gc/app", "v2")
        reg.put_manifest("gc/app", "v1", v2)
        # and a new tag lands on v0's digest: that digest must not go
        reg.put_manifest("gc/app", "hotfix", reg.manifest("gc/app", "v0"))
        result = ri.apply_cleanup(reg, plan, dry_run=False).set_index("tag")
        assert result.loc["v1", "status"] == "skipped"
        assert result.loc["v1", "detail"].startswith("moved to")
        assert result.loc["v0", "status"] == "skipped"
        assert "hotfix" in result.loc["v0", "detail"]
        assert set(reg.tags("gc/app")) == {"v0", "v1", "v2", "stable", "hotfix"}


@pytest.mark.parametrize("version", list(VERSIONS))
def test_deletion_disabled_stops_at_the_first_405(tmp_path, version):
    server = registry_of(version, tmp_path / "nodel",
                         storage={"delete": {"enabled": False}}).start()
    try:
        _fill(server.url)
        transport = CountingTransport()
        with ri.Registry(server.url, transport=transport) as reg:
            inv = ri.crawl(reg, progress=False)
            plan = ri.plan_cleanup(inv, keep_last=1, now=NOW)
            assert (plan["action"] == "delete").sum() >= 3
            with pytest.raises(ri.CleanupStopped, match="refused") as caught:
                ri.apply_cleanup(reg, plan, dry_run=False)
            assert transport.count("DELETE") == 1
            statuses = caught.value.result["status"].tolist()
            assert statuses.count("failed") >= 1 and "not attempted" in statuses
    finally:
        server.stop()
