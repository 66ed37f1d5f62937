"""Crawling the real registries (Distribution 2.8 and 3.0): frames checked against what
the test pushed, digests against skopeo; partial failure as data; recrawl; persistence."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading

import pandas as pd
import pandas.testing as pdt
import pytest

import reginsight as ri
from reginsight import schema1
from tests.images import Pusher, sha256
from tests.outofcore import assert_same_out_of_core
from tests.saved import save_version_1
from tests.skopeo import inspect_raw
from tests.test_read_registry import _real_layer
from tests.transports import CountingTransport

BASE_LAYER = b"shared base layer " * 500


_FILLED: dict[str, tuple[str, dict]] = {}


def _fill(server, *, schema1_too: bool) -> tuple[str, dict]:
    """Every manifest kind under one prefix, with a shared base layer and shared tags
    (schema1 too where the registry takes it); pushed once per registry."""
    if server.url in _FILLED:
        return _FILLED[server.url]
    prefix = "inv"
    pusher = Pusher(server.url)
    facts = {}
    facts["docker"] = pusher.image(f"{prefix}/web", "1.0", layers=(BASE_LAYER, b"web" * 100),
                                   created="2025-05-01T10:00:00Z")
    pusher.manifest(f"{prefix}/web", "latest", facts["docker"].raw, facts["docker"].media_type)
    facts["oci"] = pusher.image(f"{prefix}/api", "2.0", oci=True, created="2026-02-03T04:05:06Z",
                                layers=(BASE_LAYER, b"api" * 200))
    amd = pusher.image(f"{prefix}/multi", "amd", oci=True, layers=(BASE_LAYER,))
    arm = pusher.image(f"{prefix}/multi", "arm", oci=True, architecture="arm64", variant="v8",
                       layers=(b"arm-only" * 50,))
    facts["amd"], facts["arm"] = amd, arm
    facts["index"] = pusher.index(f"{prefix}/multi", "all", [
        (amd, {"os": "linux", "architecture": "amd64"}),
        (arm, {"os": "linux", "architecture": "arm64", "variant": "v8"})])
    facts["list"] = pusher.index(f"{prefix}/multi", "dockerlist", [
        (amd, {"os": "linux", "architecture": "amd64"})], oci=False)
    if schema1_too:
        with ri.Registry(server.url) as reg:
            layer = gzip.compress(_real_layer(), mtime=0)
            blob = reg.upload_blob(f"{prefix}/old", layer)
            doc = {"schemaVersion": 1, "name": f"{prefix}/old", "tag": "v1",
                   "architecture": "amd64",
                   "fsLayers": [{"blobSum": blob}, {"blobSum": blob}],
                   "history": [{"v1Compatibility": json.dumps({
                       "id": "b" * 64, "parent": "a" * 64, "created": "2019-03-04T05:06:07Z",
                       "os": "linux", "architecture": "amd64"})},
                       {"v1Compatibility": json.dumps({"id": "a" * 64})}]}
            signed = schema1.sign(doc, schema1.generate_key())
            facts["schema1_digest"] = reg.put_manifest(
                f"{prefix}/old", "v1", signed,
                "application/vnd.docker.distribution.manifest.v1+prettyjws")
            facts["schema1_layer"] = (blob, len(layer))
    pusher.close()
    _FILLED[server.url] = prefix, facts
    return prefix, facts


@pytest.fixture(scope="module")
def filled(any_registry, registry_version):
    """:func:`_fill` on each registry (3.0 takes no schema1: 7 tags, not 8)."""
    return _fill(any_registry, schema1_too=registry_version == "2.8")


@pytest.fixture(scope="module")
def filled_28(registry_server):
    """:func:`_fill` on 2.8 only, schema1 included: tests of the crawl's own machinery."""
    return _fill(registry_server, schema1_too=True)


def _crawl(server, prefix, **options):
    with ri.Registry(server.url) as reg:
        return ri.crawl(reg, f"{prefix}/*", progress=False, **options)


def test_frames_match_what_was_pushed(any_registry, filled):
    registry_server = any_registry
    prefix, facts = filled
    schema1_too = "schema1_digest" in facts
    inv = _crawl(registry_server, prefix)
    assert inv.errors.empty, inv.errors
    tags = inv.tags.set_index(["repository", "tag"])["digest"]
    assert tags[(f"{prefix}/web", "1.0")] == tags[(f"{prefix}/web", "latest")] \
        == facts["docker"].digest
    for repo, tag in [(f"{prefix}/web", "1.0"), (f"{prefix}/api", "2.0"),
                      (f"{prefix}/multi", "all"), (f"{prefix}/multi", "dockerlist"),
                      *[(f"{prefix}/old", "v1")] * schema1_too]:
        raw = inspect_raw(registry_server.url, repo, tag)
        assert tags[(repo, tag)] == ri.parse_manifest(raw).digest  # skopeo agrees

    m = inv.manifests.set_index(["repository", "digest"])
    web = m.loc[(f"{prefix}/web", facts["docker"].digest)]
    assert (web["kind"], web["os"], web["architecture"]) == ("image", "linux", "amd64")
    assert web["created"] == pd.Timestamp("2025-05-01T10:00:00Z")
    config = json.loads(facts["docker"].raw)["config"]["size"]
    assert web["size"] == config + len(BASE_LAYER) + 300
    assert web["layers"] == 2 and web["manifest_size"] == len(facts["docker"].raw)
    assert len(m.loc[f"{prefix}/web"]) == 1  # two tags, one row

    index = m.loc[(f"{prefix}/multi", facts["index"].digest)]
    assert index["kind"] == "index" and pd.isna(index["parent"])
    arm = m.loc[(f"{prefix}/multi", facts["arm"].digest)]
    assert arm["parent"] == facts["index"].digest
    assert (arm["os"], arm["architecture"], arm["variant"]) == ("linux", "arm64", "v8")
    child_sizes = (m.loc[(f"{prefix}/multi", facts["amd"].digest), "size"] + arm["size"])
    assert index["size"] == child_sizes  # no blob shared between the two children
    docker_list = m.loc[(f"{prefix}/multi", facts["list"].digest)]
    assert docker_list["size"] == m.loc[(f"{prefix}/multi", facts["amd"].digest), "size"]

    children = inv.children[inv.children["parent"] == facts["index"].digest]
    assert list(children["digest"]) == [facts["amd"].digest, facts["arm"].digest]

    # each tag carries its image's time and bytes; an index: its newest image's time
    tag = inv.tags.set_index(["repository", "tag"])
    assert tag.loc[(f"{prefix}/web", "1.0"), "created"] == web["created"]
    assert tag.loc[(f"{prefix}/web", "latest"), "size"] == web["size"]
    assert tag.loc[(f"{prefix}/multi", "all"), "size"] == index["size"]
    assert tag.loc[(f"{prefix}/multi", "all"), "created"] == max(
        m.loc[(f"{prefix}/multi", facts[k].digest), "created"] for k in ("amd", "arm"))

    blobs = inv.blobs.set_index("digest")
    base = sha256(BASE_LAYER)
    assert blobs.loc[base, "kind"] == "layer"
    assert blobs.loc[base, "repositories"] == 3  # web, api, multi
    assert blobs.loc[base, "size"] == len(BASE_LAYER)
    assert blobs.loc[facts["amd"].digest, "kind"] == "manifest"

    if schema1_too:
        old = m.loc[(f"{prefix}/old", facts["schema1_digest"])]
        blob, size = facts["schema1_layer"]
        assert old["kind"] == "schema1" and old["size"] == size  # distinct: the layer twice
        assert old["created"] == pd.Timestamp("2019-03-04T05:06:07Z")
        assert pd.isna(old["config_digest"])
        layers = inv.layers[inv.layers["manifest"] == facts["schema1_digest"]]
        assert list(layers["size"]) == [size, size] and list(layers["digest"]) == [blob, blob]
        assert tag.loc[(f"{prefix}/old", "v1"), "created"] == old["created"]
    else:  # 3.0 took no schema1
        assert "schema1" not in set(inv.manifests["kind"])


def test_dtypes_are_deliberate(any_registry, filled):
    inv = _crawl(any_registry, filled[0])
    dtypes = inv.manifests.dtypes.astype(str).to_dict()
    assert dtypes["created"] == "datetime64[ns, UTC]"
    assert dtypes["size"] == "Int64" and dtypes["manifest_size"] == "int64"
    assert dtypes["layers"] == "Int64"  # NA for an index with a child that failed
    assert dtypes["repository"] == "category" and dtypes["digest"] == "string"
    assert list(inv.tags.columns) == ["repository", "tag", "digest", "media_type", "created",
                                      "size"]
    assert inv.tags.dtypes.astype(str).to_dict() == {
        "repository": "category", "tag": "string", "digest": "string",
        "media_type": "category", "created": "datetime64[ns, UTC]", "size": "Int64"}
    assert list(inv.children.columns[:4]) == ["repository", "parent", "position", "digest"]
    assert list(inv.layers.columns) == ["repository", "manifest", "position", "digest", "size",
                                        "media_type"]
    assert isinstance(inv.layers.index, pd.RangeIndex)


def test_two_crawls_compare_equal_and_survive_parquet(any_registry, filled, tmp_path):
    registry_server = any_registry
    first = _crawl(registry_server, filled[0])
    second = _crawl(registry_server, filled[0], concurrency=3)
    for (name, a), (_, b) in zip(first.frames(), second.frames(), strict=True):
        pdt.assert_frame_equal(a, b, obj=name)
    first.save(tmp_path / "inv")
    loaded = ri.Inventory.load(tmp_path / "inv")
    for (name, a), (_, b) in zip(first.frames(), loaded.frames(), strict=True):
        pdt.assert_frame_equal(a, b, check_exact=True, check_categorical=True, obj=name)
    assert loaded.registry == registry_server.url and loaded.taken_at == first.taken_at


def test_an_inventory_saved_before_the_tag_columns_and_parent_loads_the_same(
        registry_server, filled_28, tmp_path):
    filled = filled_28
    """Saved by an older version: tags without created/size, children with ``index``
    for ``parent``. Loading derives and renames, to exactly what a crawl gives."""
    inv = _crawl(registry_server, filled[0])
    save_version_1(inv, tmp_path / "old", lambda name, frame: (
        frame.drop(columns=["created", "size"]) if name == "tags"
        else frame.rename(columns={"parent": "index"}) if name == "children" else frame))
    loaded = ri.Inventory.load(tmp_path / "old")
    for (name, a), (_, b) in zip(inv.frames(), loaded.frames(), strict=True):
        pdt.assert_frame_equal(a, b, check_exact=True, check_categorical=True, obj=name)


def test_recrawl_of_an_unchanged_registry_fetches_no_manifest(any_registry, filled):
    registry_server = any_registry
    prefix = filled[0]
    first = _crawl(registry_server, prefix)
    transport = CountingTransport()
    with ri.Registry(registry_server.url, transport=transport) as reg:
        again = ri.crawl(reg, f"{prefix}/*", progress=False, since=first)
    for (name, a), (_, b) in zip(first.frames(), again.frames(), strict=True):
        pdt.assert_frame_equal(a, b, obj=name)
    assert transport.count("GET", "/manifests/") == 0
    assert transport.count("GET", "/blobs/") == 0
    assert transport.count("HEAD", "/manifests/") == len(first.tags)


def test_recrawl_fetches_only_what_changed(any_registry, prefix):
    registry_server = any_registry
    pusher = Pusher(registry_server.url)
    pusher.image(f"{prefix}/app", "1", layers=(BASE_LAYER,))
    with ri.Registry(registry_server.url) as reg:
        first = ri.crawl(reg, f"{prefix}/*", progress=False)
        new = pusher.image(f"{prefix}/app", "2", layers=(BASE_LAYER, b"new"))
        transport = CountingTransport()
    with ri.Registry(registry_server.url, transport=transport) as reg:
        again = ri.crawl(reg, f"{prefix}/*", progress=False, since=first)
    assert transport.count("GET", "/manifests/") == 1  # the new tag only
    assert transport.count("GET", "/blobs/") == 1  # its config
    assert set(again.tags["digest"]) == set(first.tags["digest"]) | {new.digest}
    pusher.close()


def test_failures_become_error_rows_and_the_crawl_finishes(any_registry, prefix):
    registry_server = any_registry
    pusher = Pusher(registry_server.url)
    good = pusher.image(f"{prefix}/good", "v1")
    bad = pusher.image(f"{prefix}/bad", "v1")
    pusher.image(f"{prefix}/bad", "v2")
    pusher.close()
    # corrupt one stored manifest: served bytes no longer match their digest
    path = (registry_server.storage / "docker/registry/v2/blobs/sha256" / bad.digest[7:9]
            / bad.digest[7:] / "data")
    path.write_bytes(b"{not json")
    with ri.Registry(registry_server.url) as reg:
        inv = ri.crawl(reg, [f"{prefix}/good", f"{prefix}/bad", f"{prefix}/missing"],
                       progress=False)
    errors = inv.errors.set_index(["repository", "reference"])
    assert errors.loc[(f"{prefix}/missing", ""), "stage"] == "tags"
    assert "NAME_UNKNOWN" in errors.loc[(f"{prefix}/missing", ""), "error"]
    assert errors.loc[(f"{prefix}/bad", "v1"), "stage"] == "tag"
    assert set(inv.tags["repository"]) == {f"{prefix}/good", f"{prefix}/bad"}
    assert good.digest in set(inv.manifests["digest"])
    assert bad.digest not in set(inv.manifests["digest"])  # never a half-read manifest


def test_a_forbidden_repository_is_an_error_row(tmp_path_factory):
    """On a token registry, a repository the user may not read fails alone."""
    from tests.registry_server import RegistryServer
    from tests.token_server import TokenServer, User

    users = {"ann": User("pw-ann-1", [("repository:open/*", {"pull", "push"}),
                                      ("registry:catalog", {"*"})])}
    workdir = tmp_path_factory.mktemp("crawl-token")
    with TokenServer(users) as tokens:
        bundle = tokens.write_bundle(workdir / "signer.crt")
        server = RegistryServer(workdir, overrides={
            "auth": tokens.registry_auth_config(bundle)}).start()
        try:
            with ri.Registry(server.url, "ann", "pw-ann-1") as reg:
                reg.put_manifest("open/app", "v1", _config_only(reg, "open/app"))
                inv = ri.crawl(reg, ["open/app", "closed/app"], progress=False)
        finally:
            server.stop()
    assert list(inv.tags["repository"]) == ["open/app"]
    (row,) = inv.errors.itertuples()
    assert row.repository == "closed/app" and "AuthenticationError" in row.error
    assert "pw-ann-1" not in row.error


def _config_only(reg, repo):
    config = b'{"architecture": "amd64", "os": "linux"}'
    return {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": reg.upload_blob(repo, config), "size": len(config)},
            "layers": []}


def test_load_tags_only_heads(any_registry, filled):
    registry_server = any_registry
    tagged = 8 if "schema1_digest" in filled[1] else 7  # 3.0 took no schema1
    transport = CountingTransport()
    with ri.Registry(registry_server.url, transport=transport) as reg:
        tags = ri.load_tags(reg, f"{filled[0]}/*", progress=False)
    assert transport.count("GET", "/manifests/") == 0
    assert len(tags) == tagged
    assert list(tags.columns) == ["repository", "tag", "digest", "media_type"]
    with ri.Registry(registry_server.url) as reg:
        full = ri.crawl(reg, f"{filled[0]}/*", progress=False)
    # HEAD tells digest and media type alike; the image's time and bytes need the crawl
    pdt.assert_frame_equal(tags, full.tags[list(tags.columns)])
    with ri.Registry(registry_server.url) as reg:
        layers = ri.load_layers(reg, f"{filled[0]}/web", progress=False)
        manifests = ri.load_manifests(reg, f"{filled[0]}/*", progress=False)
        some = ri.crawl(reg, re.compile(rf"^{filled[0]}/(web|api)$"), progress=False)
    assert set(layers["digest"]) >= {sha256(BASE_LAYER)}
    pdt.assert_frame_equal(manifests, full.manifests)
    assert set(some.tags["repository"]) == {f"{filled[0]}/web", f"{filled[0]}/api"}
    assert some.scope == rf"^{filled[0]}/(web|api)$" and not some.complete
    summary = full.summary()
    assert (summary["tags"], summary["indexes"], summary["schema1"]) == (tagged, 2, tagged - 7)
    assert repr(full).startswith(f"<Inventory {registry_server.url} at ")
    assert f"{tagged} tags" in repr(full) and "0 errors" in repr(full)


def test_works_inside_a_running_event_loop(registry_server, filled_28):
    filled = filled_28
    async def notebook_cell():
        with ri.Registry(registry_server.url) as reg:
            return ri.crawl(reg, f"{filled[0]}/web", progress=False)

    assert len(asyncio.run(notebook_cell()).tags) == 2


def test_ctrl_c_stops_the_crawl_cleanly(registry_server, filled_28):
    filled = filled_28
    before = threading.active_count()
    with ri.Registry(registry_server.url) as reg:
        real, calls = reg.manifest, []

        def interrupted(repository, reference):
            calls.append(reference)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(repository, reference)

        reg.manifest = interrupted
        with pytest.raises(KeyboardInterrupt):
            ri.crawl(reg, f"{filled[0]}/*", progress=False, concurrency=1)
    # one worker: at most the job it had already taken ran after the interrupt; the
    # rest of the 8 tags' queue was dropped
    assert len(calls) <= 3
    assert threading.active_count() == before


def test_progress_bar_on_stderr(registry_server, filled_28, capsys):
    filled = filled_28
    with ri.Registry(registry_server.url) as reg:
        ri.crawl(reg, f"{filled[0]}/web", progress=True)
    assert "2/2" in capsys.readouterr().err


def test_html_summary_escapes_everything():
    from reginsight.inventory._frames import build

    frames = {name: build(name, []) for name in
              ("tags", "manifests", "layers", "blobs", "children")}
    frames["errors"] = build("errors", [("a", "b", "tag", "<script>alert(1)</script>")])
    inv = ri.Inventory(registry="http://r<x>", taken_at=pd.Timestamp.now(tz="UTC"), **frames)
    html = inv._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "r&lt;x&gt;" in html


def test_out_of_core_figures_equal_pandas_on_every_manifest_kind(registry_server, filled_28,
                                                                 tmp_path):
    filled = filled_28
    """schema1, indexes, shared layers and tags: DuckDB over the saved dataset."""
    inv = _crawl(registry_server, filled[0])
    assert set(inv.manifests["kind"]) >= {"image", "index", "schema1"}
    assert_same_out_of_core(inv, tmp_path / "saved")
