"""Signatures, attestations, SBOMs, buildx attestations and Helm charts in the real
registries (Distribution 2.8 and 3.0): their roles and subjects, storage by role, and
cleanup that keeps a referrer with its subject, proven against what each registry's own
garbage-collect frees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

import reginsight as ri
from tests.images import Pushed, Pusher
from tests.outofcore import assert_same_out_of_core
from tests.supply_chain import SupplyChain, subject_tag
from tests.versions import VERSIONS, registry_of

NOW = pd.Timestamp("2026-11-27", tz="UTC")
AMD = {"os": "linux", "architecture": "amd64"}
ARM = {"os": "linux", "architecture": "arm64"}


@dataclass
class Scene:
    app: str
    charts: str
    v1: Pushed  # a buildx index with attestations, signed, attested, with an SBOM
    children: tuple[Pushed, Pushed]
    v2: Pushed  # the newest image, signed
    old: Pushed  # an old image, signed
    nocreated: Pushed  # an image whose config has no created
    signatures: dict[str, Pushed]  # by what they sign: v1, v2, old, gone
    v1_attestation: Pushed
    v1_sbom: Pushed
    gone: str  # the digest of an image deleted after it was signed


def _fill(url: str, prefix: str) -> Scene:
    push = Pusher(url)
    chain = SupplyChain(push)
    app, charts = f"{prefix}/app", f"{prefix}/charts/web"
    amd = push.image(app, None, oci=True, created="2026-01-01T00:00:00Z")
    arm = push.image(app, None, oci=True, architecture="arm64", created="2026-01-01T00:00:00Z")
    v1 = chain.buildx_index(app, "v1", [(amd, AMD), (arm, ARM)])
    v2 = push.image(app, "v2", oci=True, created="2026-11-01T00:00:00Z")
    old = push.image(app, "old", oci=True, created="2024-01-01T00:00:00Z")
    nocreated = push.image(app, "nocreated", oci=True, created=None)
    gone = push.image(app, "gone", oci=True, created="2025-01-01T00:00:00Z")
    signatures = {name: chain.cosign_signature(app, image.digest)
                  for name, image in (("v1", v1), ("v2", v2), ("old", old), ("gone", gone))}
    scene = Scene(app=app, charts=charts, v1=v1, children=(amd, arm), v2=v2, old=old,
                  nocreated=nocreated, signatures=signatures,
                  v1_attestation=chain.cosign_attestation(app, v1.digest),
                  v1_sbom=chain.spdx_sbom(app, v1), gone=gone.digest)
    assert push.http.delete(f"/v2/{app}/manifests/{gone.digest}").status_code == 202
    chain.helm_chart(charts, "1.0.0")
    chain.helm_chart(charts, "1.1.0")
    push.close()
    return scene


def _row(inv: ri.Inventory, repository: str, digest: str) -> pd.Series:
    rows = inv.manifests[(inv.manifests["repository"] == repository)
                         & (inv.manifests["digest"] == digest)]
    assert len(rows) == 1, (repository, digest)
    return rows.iloc[0]


def _on_disk(storage: Path, digest: str) -> int:
    hex_digits = digest.split(":", 1)[1]
    return (storage / "docker/registry/v2/blobs/sha256" / hex_digits[:2] / hex_digits
            / "data").stat().st_size


def test_roles_and_subjects_from_every_source(any_registry, any_reg, prefix):
    reg = any_reg
    scene = _fill(any_registry.url, prefix)
    inv = ri.crawl(reg, [scene.app, scene.charts], progress=False)
    assert inv.errors.empty, inv.errors
    app = scene.app
    for image in (scene.v2, scene.old, scene.nocreated, *scene.children):
        row = _row(inv, app, image.digest)
        assert row["role"] == "image"
        assert pd.isna(row["subject"]) and pd.isna(row["artifact_type"])
    assert _row(inv, app, scene.v1.digest)["role"] == "index"
    for name, signature in scene.signatures.items():
        row = _row(inv, app, signature.digest)
        assert row["role"] == "signature"
        assert row["artifact_type"] == "application/vnd.dev.cosign.simplesigning.v1+json"
        assert row["subject_source"] == "cosign tag"
        assert row["subject"] == (scene.gone if name == "gone" else getattr(scene, name).digest)
    attestation = _row(inv, app, scene.v1_attestation.digest)
    assert (attestation["role"], attestation["subject"], attestation["subject_source"]) == (
        "attestation", scene.v1.digest, "cosign tag")
    sbom = _row(inv, app, scene.v1_sbom.digest)  # untagged, found through the fallback index
    assert (sbom["role"], sbom["artifact_type"], sbom["subject"], sbom["subject_source"]) == (
        "sbom", "application/spdx+json", scene.v1.digest, "subject")
    fallback = inv.tags[inv.tags["tag"] == subject_tag(scene.v1.digest)]["digest"].item()
    assert _row(inv, app, fallback)["subject_source"] == "fallback tag"
    # buildx: each attestation manifest is about its sibling platform image
    buildx = inv.manifests[(inv.manifests["repository"] == app)
                           & (inv.manifests["subject_source"] == "buildx annotation")]
    assert sorted(buildx["subject"]) == sorted(c.digest for c in scene.children)
    assert set(buildx["role"]) == {"attestation"}
    assert set(buildx["parent"]) == {scene.v1.digest}
    charts = inv.manifests[inv.manifests["repository"] == scene.charts]
    assert set(charts["role"]) == {"artifact"}
    assert set(charts["artifact_type"]) == {"application/vnd.cncf.helm.config.v1+json"}
    # cosign's year-1 "created" and a config without one: unknown, not a crash
    assert _row(inv, app, scene.signatures["v2"].digest)["created"] is pd.NaT
    assert _row(inv, app, scene.nocreated.digest)["created"] is pd.NaT

    refs = ri.referrers(inv)
    assert refs.loc[refs["orphaned"], "digest"].tolist() == [scene.signatures["gone"].digest]
    about_v1 = refs[refs["subject"] == scene.v1.digest].set_index("digest")
    assert about_v1.loc[scene.signatures["v1"].digest, "tags"] == subject_tag(
        scene.v1.digest, ".sig")
    assert about_v1.loc[scene.v1_sbom.digest, "tags"] == ""
    assert set(about_v1["role"]) == {"signature", "attestation", "sbom", "index"}

    unsigned = ri.images_without(inv, "signature")
    assert unsigned["tag"].tolist() == ["nocreated"]
    assert ri.images_without(inv, "sbom")["tag"].tolist() == ["nocreated", "old", "v2"]
    # buildx attests the platform images v1 reaches
    assert "v1" not in set(ri.images_without(inv, "attestation")["tag"])


def test_a_recrawl_since_keeps_roles_and_subjects(registry_server, reg, prefix):
    scene = _fill(registry_server.url, prefix)
    first = ri.crawl(reg, [scene.app, scene.charts], progress=False)
    again = ri.crawl(reg, [scene.app, scene.charts], progress=False, since=first)
    for name, frame in first.frames():
        pd.testing.assert_frame_equal(getattr(again, name), frame, obj=name)


def test_storage_by_role_equals_the_blobs_on_disk(any_registry, any_reg, prefix):
    registry_server, reg = any_registry, any_reg
    scene = _fill(registry_server.url, prefix)
    inv = ri.crawl(reg, [scene.app, scene.charts], progress=False)
    frame = ri.storage_by_role(inv).set_index("role")
    # the oracle: every manifest's config and layers, sized on the registry's disk
    expected: dict[str, set[str]] = {}
    with httpx.Client(base_url=registry_server.url) as http:
        for row in inv.manifests.itertuples():
            doc = http.get(f"/v2/{row.repository}/manifests/{row.digest}",
                           headers={"Accept": row.media_type}).json()
            blobs = [doc["config"]["digest"]] if "config" in doc else []
            blobs += [layer["digest"] for layer in doc.get("layers", [])]
            expected.setdefault(row.role, set()).update(blobs)
    users: dict[str, int] = {}
    for digests in expected.values():
        for digest in digests:
            users[digest] = users.get(digest, 0) + 1
    for role, digests in expected.items():
        stored = sum(_on_disk(registry_server.storage, d) for d in digests)
        exclusive = sum(_on_disk(registry_server.storage, d) for d in digests if users[d] == 1)
        assert frame.loc[role, "stored_bytes"] == stored, role
        assert frame.loc[role, "exclusive_bytes"] == exclusive, role
    assert list(frame.index) == ["image", "index", "signature", "attestation", "sbom",
                                 "artifact"]
    assert frame.loc["index", "stored_bytes"] == 0  # an index's bytes are its images'
    assert frame.loc["signature", "manifests"] == 4
    assert frame.loc["artifact", "manifests"] == 2


def test_the_sbom_fallback_tag_never_takes_the_only_image_s_place(registry_server, reg,
                                                                   prefix):
    """The reported failure: keep_last=1 kept the SBOM's fallback tag and deleted v1."""
    push = Pusher(registry_server.url)
    chain = SupplyChain(push)
    repo = f"{prefix}/solo"
    amd = push.image(repo, None, oci=True, created="2026-01-01T00:00:00Z")
    arm = push.image(repo, None, oci=True, architecture="arm64",
                     created="2026-01-01T00:00:00Z")
    v1 = push.index(repo, "v1", [(amd, AMD), (arm, ARM)])
    chain.spdx_sbom(repo, v1)
    chain.cosign_signature(repo, v1.digest)
    push.close()
    plan = ri.plan_cleanup(ri.crawl(reg, [repo], progress=False), keep_last=1, now=NOW)
    by_tag = plan.set_index("tag")
    assert by_tag.loc["v1", "action"] == "keep"
    assert by_tag.loc["v1", "reason"] == "among the 1 newest images"
    for tag in (subject_tag(v1.digest), subject_tag(v1.digest, ".sig")):
        assert by_tag.loc[tag, "action"] == "keep"
        assert by_tag.loc[tag, "reason"] == f"referrer of {v1.digest[:19]}"
    assert plan.attrs["reclaimable_bytes"] == 0


def test_plans_follow_roles_subjects_and_creation_times(any_registry, any_reg, prefix):
    reg = any_reg
    scene = _fill(any_registry.url, prefix)
    inv = ri.crawl(reg, [scene.app, scene.charts], progress=False)
    v1_refs = {subject_tag(scene.v1.digest), subject_tag(scene.v1.digest, ".sig"),
               subject_tag(scene.v1.digest, ".att")}
    old_sig = subject_tag(scene.old.digest, ".sig")
    orphan = subject_tag(scene.gone, ".sig")

    plan = ri.plan_cleanup(inv, keep_last=1, now=NOW).set_index("tag")
    deleted = set(plan.index[plan["action"] == "delete"].dropna())  # NA: v1's platforms
    assert deleted == {"v1", "old", old_sig, *v1_refs}
    children = plan.loc[plan.index.isna()]
    assert children["reason"].str.startswith("child of index sha256:").all()
    assert f"child of index {scene.v1.digest}" in set(children["reason"])
    assert plan.loc["v2", "reason"] == "among the 1 newest images"
    assert plan.loc["nocreated", "reason"] == "creation time unknown"
    assert plan.loc[old_sig, "reason"] == f"referrer of {scene.old.digest[:19]}"
    assert plan.loc[subject_tag(scene.v2.digest, ".sig"), "action"] == "keep"
    assert plan.loc[orphan, "reason"].startswith("orphaned referrer of")
    assert plan.loc["1.0.0", "action"] == "keep"  # a Helm chart is not an image
    assert plan.loc["1.0.0", "reason"].startswith(
        "artifact application/vnd.cncf.helm.config.v1+json")

    aged = ri.plan_cleanup(inv, older_than="180d", now=NOW).set_index("tag")
    assert set(aged.index[aged["action"] == "delete"].dropna()) == {"v1", "old", old_sig,
                                                                    *v1_refs}
    assert aged.loc["v2", "reason"] == "newer than 180d"

    with_orphans = ri.plan_cleanup(inv, keep_last=1, orphans=True, now=NOW).set_index("tag")
    assert set(with_orphans.index[with_orphans["action"] == "delete"].dropna()
               ) == deleted | {orphan}
    assert with_orphans.loc[orphan, "reason"] == f"orphaned referrer of {scene.gone[:19]}"
    # no rule: only the orphan goes
    only = ri.plan_cleanup(inv, orphans=True, now=NOW)
    assert only.loc[only["action"] == "delete", "tag"].tolist() == [orphan]


@pytest.mark.parametrize("version", list(VERSIONS))
def test_apply_frees_what_reclaimable_says_and_keeps_the_rest(tmp_path, version):
    server = registry_of(version, tmp_path / "supply").start()
    try:
        scene = _fill(server.url, "sc")
        server.stop()
        server.garbage_collect()  # the deleted image's blobs go now: not ours to count
        server.start()
        with ri.Registry(server.url) as reg:
            inv = ri.crawl(reg, progress=False)
            plan = ri.plan_cleanup(inv, keep_last=1, orphans=True, now=NOW)
            predicted = plan.attrs["reclaimable_bytes"]
            before = sum(p.stat().st_size for p in
                         (server.storage / "docker/registry/v2/blobs").rglob("data"))
            result = ri.apply_cleanup(reg, plan, dry_run=False)
            assert set(result["status"]) == {"deleted"}, result
            # the index's platform images and attestations went by digest with it
            gone_by_digest = set(result.loc[result["tag"] == "", "digest"])
            assert {c.digest for c in scene.children} <= gone_by_digest
            left = set(reg.tags(scene.app))
            assert left == {"v2", "nocreated", subject_tag(scene.v2.digest, ".sig")}
        server.stop()
        server.garbage_collect()
        after = sum(p.stat().st_size for p in
                    (server.storage / "docker/registry/v2/blobs").rglob("data"))
        assert before - after == predicted
        assert predicted > 10_000
        server.start()
        with ri.Registry(server.url) as reg:  # what stays still pulls, blob by blob
            again = ri.crawl(reg, progress=False)
            assert again.errors.empty
            for repo, tag in [(scene.app, "v2"), (scene.app, "nocreated"),
                              (scene.charts, "1.0.0")]:
                manifest = reg.manifest(repo, tag)
                for blob in (manifest.config, *manifest.layers):
                    with reg.download_blob(repo, blob.digest) as stream:
                        stream.read()
            refs = ri.referrers(again)
            assert refs["subject"].tolist() == [scene.v2.digest]
    finally:
        server.stop()


@pytest.mark.parametrize("version", list(VERSIONS))
def test_storage_plan_keeps_untagged_referrers_of_kept_images(tmp_path, version):
    """In the storage, an SBOM pushed by digest (no fallback tag) about a kept image
    stays under untagged=True; one about a deleted image goes with it."""
    server = registry_of(version, tmp_path / "storage").start()
    try:
        push = Pusher(server.url)
        chain = SupplyChain(push)
        keep = push.image("st/app", "v2", oci=True, created="2026-11-01T00:00:00Z")
        drop = push.image("st/app", "v1", oci=True, created="2025-01-01T00:00:00Z")
        kept_sbom = chain.spdx_sbom("st/app", keep, fallback=False)
        dropped_sbom = chain.spdx_sbom("st/app", drop, fallback=False)
        stray = push.image("st/app", None, oci=True, created="2025-06-01T00:00:00Z")
        push.close()
        server.stop()
        inv = ri.scan_storage(server.storage, progress=False)
        plan = ri.plan_cleanup(inv, keep_last=1, untagged=True, now=NOW)
        rows = {(t if isinstance(t, str) else d): (a, r) for t, d, a, r in zip(
            plan["tag"], plan["digest"], plan["action"], plan["reason"], strict=True)}
        assert rows["v2"][0] == "keep" and rows["v1"][0] == "delete"
        assert rows[dropped_sbom.digest] == ("delete", f"referrer of {drop.digest[:19]}")
        assert rows[stray.digest] == ("delete", "untagged")
        assert kept_sbom.digest not in rows
        predicted = plan.attrs["reclaimable_bytes"]
        server.start()
        with ri.Registry(server.url) as reg:
            ri.apply_cleanup(reg, plan, dry_run=False)
            assert reg.manifest("st/app", kept_sbom.digest).subject.digest == keep.digest
        server.stop()
        before = sum(p.stat().st_size for p in
                     (server.storage / "docker/registry/v2/blobs").rglob("data"))
        server.garbage_collect()
        after = sum(p.stat().st_size for p in
                    (server.storage / "docker/registry/v2/blobs").rglob("data"))
        assert before - after == predicted > 0
    finally:
        server.stop()


@pytest.mark.parametrize("created", [None, "1970-01-01T00:00:00Z"])
def test_an_unknown_creation_time_never_counts_as_newest(registry_server, reg, prefix,
                                                        created):
    push = Pusher(registry_server.url)
    repo = f"{prefix}/repro"
    push.image(repo, "unknown", oci=True, created=created)
    push.image(repo, "new", oci=True, created="2026-11-01T00:00:00Z")
    push.image(repo, "older", oci=True, created="2026-10-01T00:00:00Z")
    push.close()
    plan = ri.plan_cleanup(ri.crawl(reg, [repo], progress=False), keep_last=1,
                           now=NOW).set_index("tag")
    assert plan.loc["new", "reason"] == "among the 1 newest images"
    assert plan.loc["unknown", "reason"] == "creation time unknown"
    assert plan.loc["older", "action"] == "delete"


def test_out_of_core_figures_equal_pandas_with_referrers(registry_server, reg, prefix,
                                                         tmp_path):
    scene = _fill(registry_server.url, prefix)
    inv = ri.crawl(reg, [scene.app, scene.charts], progress=False)
    assert (inv.manifests["role"] != "image").any()
    assert_same_out_of_core(inv, tmp_path / "saved")
