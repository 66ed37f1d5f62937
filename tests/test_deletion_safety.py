"""Nothing the user keeps is lost by a deletion: a tagged index's children stay (rm, the
library helpers, an apply from a stale plan), and an apply re-reads the tags before
every DELETE. Real registries: Debian's 2.8 and upstream Distribution 3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import reginsight as ri
from tests.images import Pushed, Pusher
from tests.skopeo import skopeo

PLATFORMS = ("amd64", "arm64")
AMD64, ARM64 = ({"os": "linux", "architecture": "amd64"},
                {"os": "linux", "architecture": "arm64"})


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reginsight", *args], capture_output=True,
                          text=True, timeout=120)


def multi_arch(url: str, repository: str, tag: str) -> tuple[Pushed, dict[str, Pushed]]:
    """A tagged index with one child per platform; each child also tagged TAG-ARCH."""
    pusher = Pusher(url)
    children = {arch: pusher.image(repository, f"{tag}-{arch}", architecture=arch)
                for arch in PLATFORMS}
    index = pusher.index(repository, tag, [(child, {"os": "linux", "architecture": arch})
                                           for arch, child in children.items()])
    return index, children


def pulls(url: str, reference: str, arch: str, into: Path) -> bool:
    """skopeo copies that platform of the image (REPO:TAG or REPO@DIGEST), every blob,
    into a folder."""
    host = url.split("://", 1)[1]
    (into / arch).mkdir(parents=True)
    try:
        skopeo("copy", "--src-tls-verify=false", "--override-arch", arch, "--override-os",
               "linux", f"docker://{host}/{reference}", f"dir:{into / arch}")
    except subprocess.CalledProcessError:
        return False
    return True


def moving_before_delete(reg: ri.Registry, pusher: Pusher, repository: str, tag: str,
                         onto: Pushed) -> None:
    """From now on, just before each DELETE ``reg`` sends (after every check), ``tag``
    is moved onto ``onto``: the window no check can close."""
    real_delete = reg.delete_manifest

    def move_then_delete(repo: str, digest: str) -> None:
        pusher.manifest(repository, tag, onto.raw, onto.media_type)
        real_delete(repo, digest)

    reg.delete_manifest = move_then_delete


def test_rm_refuses_a_platform_of_a_tagged_index_by_digest_and_by_tag(
        registry_server, prefix, tmp_path):
    url, repository = registry_server.url, f"{prefix}/multi/arch"
    _, children = multi_arch(url, repository, "1.0")
    amd64 = children["amd64"].digest

    dry = run("rm", url, f"{repository}@{amd64}")
    assert dry.returncode == 0, dry.stderr
    assert f"{repository}:1.0" in dry.stdout and "--break-indexes" in dry.stdout
    refused = run("rm", url, f"{repository}@{amd64}", "--yes", "--all-tags-on-digest")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert f"tagged index {repository}:1.0" in refused.stderr
    assert "--break-indexes" in refused.stderr

    # through a tag on the child: 2.8 deletes tags by digest, so that too is refused
    dry_tag = run("rm", url, f"{repository}:1.0-amd64")
    assert dry_tag.returncode == 0 and f"{repository}:1.0" in dry_tag.stdout
    by_tag = run("rm", url, f"{repository}:1.0-amd64", "--yes")
    assert by_tag.returncode == 3 and f"{repository}:1.0" in by_tag.stderr

    for arch in PLATFORMS:
        assert pulls(url, f"{repository}:1.0", arch, tmp_path), arch
    assert run("ls", url, repository).stdout.split() == ["1.0", "1.0-amd64", "1.0-arm64"]


def test_rm_break_indexes_is_the_explicit_override(registry_server, prefix, tmp_path):
    url, repository = registry_server.url, f"{prefix}/override"
    _, children = multi_arch(url, repository, "2.0")
    done = run("rm", url, f"{repository}@{children['amd64'].digest}", "--yes",
               "--all-tags-on-digest", "--break-indexes")
    assert done.returncode == 0, done.stderr
    assert f"broke the tagged index {repository}:2.0" in done.stdout
    assert not pulls(url, f"{repository}:2.0", "amd64", tmp_path)


def test_library_helpers_raise_breaks_index_at_any_depth(any_registry, registry_version,
                                                         prefix, any_reg):
    reg = any_reg
    url, repository = any_registry.url, f"{prefix}/nested"
    pusher = Pusher(url)
    inner, children = multi_arch(url, repository, "inner")
    pusher.index(repository, "outer", [(inner, {})])  # an index of an index
    grandchild = children["arm64"].digest

    with pytest.raises(ri.BreaksIndex) as caught:
        ri.delete_digest(reg, repository, grandchild, delete_tags=True)
    assert caught.value.indexes == ("inner", "outer")
    with pytest.raises(ri.BreaksIndex) as inner_refused:  # the inner index is a child too
        ri.delete_digest(reg, repository, inner.digest, delete_tags=True)
    assert inner_refused.value.indexes == ("outer",)
    if registry_version == "3.0":  # the tag goes, by the OCI tag delete; the image stays
        assert ri.delete_tag(reg, repository, "inner-arm64").method == "tag"
        assert reg.tags(repository) == ["inner", "inner-amd64", "outer"]
    else:  # by digest: it would break both indexes
        with pytest.raises(ri.BreaksIndex):
            ri.delete_tag(reg, repository, "inner-arm64")
        assert reg.tags(repository) == ["inner", "inner-amd64", "inner-arm64", "outer"]
    assert reg.manifest_digest(repository, grandchild) == grandchild

    loose = pusher.image(repository, None)  # nothing references it: deleted
    done = ri.delete_digest(reg, repository, loose.digest)
    assert done.removed == () and done.broken == ()
    with pytest.raises(ri.NotFound):
        reg.manifest_digest(repository, loose.digest)


def test_on_distribution_3_rm_of_a_platform_tag_removes_only_the_tag(registry_v3, prefix,
                                                                       tmp_path):
    url, repository = registry_v3.url, f"{prefix}/multi/arch"
    _, children = multi_arch(url, repository, "3.0")
    done = run("rm", url, f"{repository}:3.0-amd64", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"deleted {repository}:3.0-amd64" in done.stdout
    assert f"the OCI tag delete (DELETE /v2/{repository}/manifests/3.0-amd64" in done.stdout
    assert run("ls", url, repository).stdout.split() == ["3.0", "3.0-arm64"]
    for arch in PLATFORMS:
        assert pulls(url, f"{repository}:3.0", arch, tmp_path), arch
    # by digest it is refused on 3.0 as on 2.8
    refused = run("rm", url, f"{repository}@{children['amd64'].digest}", "--yes")
    assert refused.returncode == 3 and f"{repository}:3.0" in refused.stderr
    assert pulls(url, f"{repository}:3.0", "amd64", tmp_path / "again")


def test_rm_says_which_method_deleted_the_tag(any_registry, registry_version, prefix):
    """Distribution 3 removes one tag by the OCI tag delete (its alias stays); 2.8 has
    none, so the manifest goes by digest, checked, and says so."""
    url, repository = any_registry.url, f"{prefix}/method"
    pusher = Pusher(url)
    shared = pusher.image(repository, "old")
    pusher.manifest(repository, "alias", shared.raw, shared.media_type)
    solo = pusher.image(repository, "solo")

    dry = run("rm", url, f"{repository}:old")
    assert dry.returncode == 0 and "the OCI tag delete where the registry serves it" in dry.stdout
    done = run("rm", url, f"{repository}:solo", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"deleted {repository}:solo ({solo.digest})" in done.stdout
    old = run("rm", url, f"{repository}:old", "--yes")
    if registry_version == "3.0":
        assert "method: the OCI tag delete (DELETE /v2/" in done.stdout
        assert "manifest deleted by digest" not in done.stdout
        assert old.returncode == 0 and f"deleted {repository}:old (" in old.stdout
        assert run("ls", url, repository).stdout.split() == ["alias"]
        with ri.Registry(url) as reg:  # the manifest stays
            assert reg.manifest_digest(repository, shared.digest) == shared.digest
    else:
        assert (f"method: the manifest deleted by digest (DELETE /v2/{repository}/manifests/"
                f"{solo.digest})") in done.stdout
        assert "OCI tag delete (DELETE" not in done.stdout
        assert old.returncode == 3 and f"{repository}:alias" in old.stderr  # by digest: refused
        assert run("ls", url, repository).stdout.split() == ["alias", "old"]


def plan_of(*rows: tuple[str, str | None, str]) -> pd.DataFrame:
    """A plan as plan_cleanup writes it: delete rows, tag NA for a manifest by digest."""
    return pd.DataFrame({
        "repository": pd.array([r for r, _, _ in rows], dtype="string"),
        "tag": pd.array([t for _, t, _ in rows], dtype="string"),
        "digest": pd.array([d for _, _, d in rows], dtype="string"),
        "action": pd.array(["delete"] * len(rows), dtype="string")})


def test_apply_rechecks_the_tags_before_each_delete(any_registry, prefix, any_reg):
    reg = any_reg
    url, repository = any_registry.url, f"{prefix}/race/b"
    pusher = Pusher(url)
    old = {name: pusher.image(repository, name) for name in ("old1", "old2")}
    pusher.image(repository, "keep")
    plan = plan_of(*((repository, name, image.digest) for name, image in old.items()))
    first, second = sorted(old.values(), key=lambda image: image.digest)
    real_delete = reg.delete_manifest

    def delete_then_push(repo: str, digest: str) -> None:
        real_delete(repo, digest)
        if digest == first.digest:  # a CI push lands between the two DELETEs
            pusher.manifest(repository, "prod", second.raw, second.media_type)

    reg.delete_manifest = delete_then_push
    result = ri.apply_cleanup(reg, plan, dry_run=False)
    rows = result.set_index("tag")
    assert rows.loc[first.reference, "status"] == "deleted"
    assert rows.loc[second.reference, "status"] == "skipped"
    assert "prod" in rows.loc[second.reference, "detail"]
    assert reg.manifest_digest(repository, "prod") == second.digest
    assert sorted(reg.tags(repository)) == sorted(["keep", "prod", second.reference])


def test_apply_reports_a_tag_lost_in_the_remaining_window(any_registry, prefix, any_reg):
    reg = any_reg
    url, repository = any_registry.url, f"{prefix}/window"
    pusher = Pusher(url)
    doomed = pusher.image(repository, "old")
    pusher.image(repository, "prod")
    moving_before_delete(reg, pusher, repository, "prod", onto=doomed)
    result = ri.apply_cleanup(reg, plan_of((repository, "old", doomed.digest)), dry_run=False)
    lost = result[result["status"] == "lost"]
    assert lost["tag"].tolist() == ["prod"], result
    assert "not in the plan" in lost["detail"].iloc[0]
    assert reg.tags(repository) == []


def test_apply_of_a_stale_plan_keeps_a_platform_of_a_new_index(any_registry, prefix, any_reg):
    """The plan was made before an index listing the digest was pushed: the apply
    skips it and says why; the index pulls for every platform."""
    reg = any_reg
    url, repository = any_registry.url, f"{prefix}/stale"
    pusher = Pusher(url)
    single = pusher.image(repository, "single", architecture="amd64")
    other = pusher.image(repository, None, architecture="arm64")  # untagged
    plan = plan_of((repository, "single", single.digest),
                   (repository, None, other.digest))
    pusher.index(repository, "multi", [(single, {"os": "linux", "architecture": "amd64"}),
                                       (other, {"os": "linux", "architecture": "arm64"})])
    for dry_run in (True, False):
        result = ri.apply_cleanup(reg, plan, dry_run=dry_run)
        assert set(result["status"]) == {"skipped"}, result
        assert all(f"tagged index {repository}:multi" in d for d in result["detail"]), result
    assert reg.manifest_digest(repository, "multi")
    assert reg.manifest_digest(repository, "single") == single.digest


def test_apply_deletes_an_index_before_the_index_it_lists(any_registry, prefix, any_reg):
    """Planned together, an outer index and the inner one it lists both go, whatever
    their digests' order: the inner one is no longer referenced once the outer is gone."""
    reg = any_reg
    url, repository = any_registry.url, f"{prefix}/twolevels"
    pusher = Pusher(url)
    inner, children = multi_arch(url, repository, "inner")
    outer = pusher.index(repository, "outer", [(inner, {})])
    pusher.image(repository, "kept")
    plan = plan_of((repository, "outer", outer.digest), (repository, "inner", inner.digest),
                   *((repository, f"inner-{arch}", child.digest)
                     for arch, child in children.items()))
    for dry_run in (True, False):
        result = ri.apply_cleanup(reg, plan, dry_run=dry_run)
        tagged = result[result["tag"] != ""]
        assert set(tagged["status"]) == {"would delete" if dry_run else "deleted"}, result
        assert len(tagged) == 4
    assert reg.tags(repository) == ["kept"]


def test_apply_skips_what_it_cannot_check_again_and_keeps_its_result(registry_server,
                                                                     prefix):
    """The tags of one repository cannot be read again after the first DELETE (the
    registry answers 503): its digest is skipped, not deleted blind, the other
    repository's deletion stands, and the result is returned, not lost."""
    from tests.fault_proxy import FaultProxy

    pusher = Pusher(registry_server.url)
    first, second = f"{prefix}/a", f"{prefix}/b"
    doomed = {repo: pusher.image(repo, "old") for repo in (first, second)}
    for repo in (first, second):
        pusher.image(repo, "keep")
    broken = {"on": False}
    failing = (lambda path: broken["on"] and path.startswith(f"/v2/{second}/"), "503")
    with FaultProxy(registry_server.url, rate=0.0, always=failing) as proxy, \
            ri.Registry(proxy.url) as reg:
        real_delete = reg.delete_manifest

        def delete_then_fail(repo: str, digest: str) -> None:
            real_delete(repo, digest)
            broken["on"] = True

        reg.delete_manifest = delete_then_fail
        result = ri.apply_cleanup(reg, plan_of(*((repo, "old", image.digest)
                                                 for repo, image in doomed.items())),
                                  dry_run=False)
    assert result[result["repository"] == first]["status"].tolist() == ["deleted"]
    statuses = dict(zip(result["repository"] + " " + result["status"], result["detail"],
                        strict=True))
    assert f"the tags of {second} could not be read again" in statuses[f"{second} skipped"]
    assert f"{second} unchecked" in statuses  # the listing after the apply failed too
    with ri.Registry(registry_server.url) as direct:
        assert direct.tags(second) == ["keep", "old"]
        assert direct.tags(first) == ["keep"]


def test_a_plan_deletes_no_platform_an_untagged_index_still_needs(tmp_path):
    """CI moved :1.0, deployments still pull the old index by digest; it shares its
    amd64 image with the older :0.9, which the plan deletes. From a storage scan the
    plan sees the untagged index: the shared image is not one of the children it lists,
    and the apply deletes only what the plan lists."""
    from tests.registry_server import RegistryServer

    server = RegistryServer(tmp_path / "registry").start()
    try:
        url, repository = server.url, "pin/app"
        pusher = Pusher(url)
        shared = pusher.image(repository, None, created="2024-01-01T00:00:00Z")
        old_arm = pusher.image(repository, None, architecture="arm64",
                               created="2024-01-01T00:00:00Z")
        new_arm = pusher.image(repository, None, architecture="arm64",
                               created="2026-01-01T00:00:00Z")
        pusher.index(repository, "0.9", [(shared, AMD64), (old_arm, ARM64)])
        pinned = pusher.index(repository, None, [(shared, AMD64), (new_arm, ARM64)])
        pusher.index(repository, "1.0", [(pusher.image(
            repository, None, created="2026-02-01T00:00:00Z"), AMD64)])
        inv = ri.scan_storage(str(server.storage), progress=False)
        plan = ri.plan_cleanup(inv, keep_last=1, now=pd.Timestamp("2026-06-01", tz="UTC"))
        doomed = plan[plan["action"] == "delete"]
        assert list(doomed["tag"].dropna()) == ["0.9"]
        assert set(doomed.loc[doomed["tag"].isna(), "digest"]) == {old_arm.digest}
        with ri.Registry(url) as reg:
            result = ri.apply_cleanup(reg, plan, dry_run=False)
        assert set(result["digest"]) == set(doomed["digest"])
        assert set(result["status"]) == {"deleted"}
        for arch in ("amd64", "arm64"):
            assert pulls(url, f"{repository}@{pinned.digest}", arch, tmp_path), arch
    finally:
        server.stop()


def test_a_listed_tag_that_cannot_be_read_fails_the_check_closed(registry_server, prefix,
                                                                 tmp_path):
    """The registry lists :1.0 but its HEAD answers 404 (a flaky proxy, an eventually
    consistent store): what it points at is unknown, so nothing it might hold goes."""
    url, repository = registry_server.url, f"{prefix}/flaky"
    multi_arch(url, repository, "1.0")
    loose = Pusher(url).image(repository, None)
    with ri.Registry(url) as reg:
        real_head = reg.manifest_descriptor
        reg.manifest_descriptor = lambda repo, ref: real_head(
            repo, "no-such-tag" if ref == "1.0" else ref)
        result = ri.apply_cleanup(reg, plan_of((repository, None, loose.digest)),
                                  dry_run=False)
        assert result["status"].tolist() == ["skipped"], result
        with pytest.raises(ri.NotFound):
            ri.delete_digest(reg, repository, loose.digest)
    with ri.Registry(url) as reg:
        assert reg.manifest_digest(repository, loose.digest) == loose.digest


def test_delete_digest_reports_a_tag_lost_in_its_window(any_registry, prefix, any_reg):
    reg = any_reg
    repository = f"{prefix}/onewindow"
    pusher = Pusher(any_registry.url)
    doomed = pusher.image(repository, None)
    pusher.image(repository, "prod")
    moving_before_delete(reg, pusher, repository, "prod", onto=doomed)
    done = ri.delete_digest(reg, repository, doomed.digest)
    assert done.removed == () and done.lost == ("prod",)
