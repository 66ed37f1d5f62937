"""Registries in the wild: the real registry behind a proxy that speaks another
registry's dialect (tests/dialect_proxy.py). Each test asserts what a user meets:
the exit code and message, every tag, the right media type, a copy that lands,
no stall."""

from __future__ import annotations

import json
import warnings

import httpx
import pandas.testing as pdt
import pytest

import reginsight as ri
from reginsight._cli import main
from reginsight.registry._auth import RegistryAuth
from reginsight.registry.protocol import with_query as with_params
from tests.dialect_proxy import (
    BARE_PING,
    GENERIC_CONTENT_TYPE,
    DialectProxy,
    head_rate_limited,
    no_catalog,
    pull_budget,
)
from tests.images import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Pusher, sha256
from tests.registry_server import RegistryServer
from tests.skopeo import inspect_raw
from tests.token_server import TokenServer, User

REPOSITORIES = [f"dialects/r{n}" for n in range(4)]
ALL = "dialects/*"
#: waits as in production: a stall these tests look for would really happen
REAL_WAITS = ri.RetryPolicy()


def _push_unnamed_oci(pusher: Pusher, repo: str) -> tuple[str, str]:
    """An OCI image manifest and index without ``mediaType`` (optional in the OCI
    spec): served as application/json, only their shape says what they are."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "created": "2026-03-04T05:06:07Z"}).encode()
    layer = b"unnamed oci layer" * 64
    doc = {"schemaVersion": 2,
           "config": {"mediaType": OCI_CONFIG, "digest": pusher.blob(repo, config),
                      "size": len(config)},
           "layers": [{"mediaType": OCI_LAYER, "digest": pusher.blob(repo, layer),
                       "size": len(layer)}]}
    raw = json.dumps(doc).encode()
    image = pusher.manifest(repo, "image", raw, OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": image, "size": len(raw),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    return image, pusher.manifest(repo, "index", index, OCI_INDEX)


@pytest.fixture(scope="module")
def clean(registry_server):
    """What the registry holds, crawled directly: the answer every dialect must give."""
    pusher = Pusher(registry_server.url)
    for repository in REPOSITORIES:
        for tag in ("v1", "v2"):
            pusher.image(repository, tag, layers=(b"shared" * 300, f"{repository}{tag}".encode()))
    _push_unnamed_oci(pusher, "dialects/oci")
    pusher.close()
    with ri.Registry(registry_server.url) as reg:
        inventory = ri.crawl(reg, ALL, progress=False)
    assert inventory.errors.empty and len(inventory.tags) == 10
    return inventory


def _same(a: ri.Inventory, b: ri.Inventory) -> None:
    for (name, x), (_, y) in zip(a.frames(), b.frames(), strict=True):
        pdt.assert_frame_equal(x, y, obj=name)


def _waited(reg: ri.Registry) -> float:
    return reg._transport.backoff.waited


# ------------------------------------------------------------------ 1, 2: no catalog


@pytest.mark.parametrize("status", [401, 404, 405])
def test_a_registry_without_catalog_exits_1_and_says_how_to_name_repositories(
        registry_server, clean, tmp_path, capsys, status):
    with DialectProxy(registry_server.url, dialects=(no_catalog(status),)) as proxy:
        with ri.Registry(proxy.url) as reg:
            with pytest.raises(ri.CatalogUnavailable) as refused:
                reg.repositories()
            assert refused.value.status == status
            with pytest.raises(ri.CatalogUnavailable):
                ri.crawl(reg, progress=False)
        for command in (["crawl", proxy.url, "-o", str(tmp_path / "inv")],
                        ["report", proxy.url, "-o", str(tmp_path / "r.html")],
                        ["crawl", proxy.url, "--repositories", ALL, "-o", str(tmp_path / "g")]):
            assert main([*command, "--no-progress"]) == 1
            said = capsys.readouterr().err
            assert "does not list its repositories" in said and f"HTTP {status}" in said
            assert "--repositories NAME" in said
        assert main(["ls", proxy.url]) == 1
        assert "ls URL REPO" in capsys.readouterr().err
    assert not (tmp_path / "inv").exists() and not (tmp_path / "r.html").exists()


def test_named_repositories_are_crawled_without_the_catalog(registry_server, clean, tmp_path):
    named = ["dialects/r0", "dialects/r1", "dialects/oci"]
    with DialectProxy(registry_server.url, dialects=(no_catalog(404),)) as proxy:
        assert main(["crawl", proxy.url, "--repositories", "dialects/r0,dialects/r1",
                     "--repositories", "dialects/oci", "--no-progress",
                     "-o", str(tmp_path / "inv")]) == 0
        with ri.Registry(proxy.url) as reg:
            one = ri.crawl(reg, "dialects/r2", progress=False)  # a plain name: no catalog
        assert proxy.count("GET", "/v2/_catalog") == 0
    saved = ri.Inventory.load(tmp_path / "inv")
    assert saved.errors.empty
    expected = clean.tags[clean.tags["repository"].isin(named)].reset_index(drop=True)
    pdt.assert_frame_equal(saved.tags.astype({"repository": str}),
                           expected.astype({"repository": str}))
    assert sorted(one.tags["tag"]) == ["v1", "v2"]


def test_a_named_repository_that_does_not_exist_is_an_error_row(registry_server, clean):
    with ri.Registry(registry_server.url) as reg:
        inventory = ri.crawl(reg, ["dialects/r0", "dialects/nope"], progress=False)
    assert list(inventory.errors["repository"]) == ["dialects/nope"]
    assert "NAME_UNKNOWN" in inventory.errors["error"].iloc[0]
    assert set(inventory.tags["repository"]) == {"dialects/r0"}


# ------------------------------------------------------------------ 3: realm query


def test_token_realm_with_its_own_query_keeps_it(tmp_path):
    users = {"alice": User("alice-pw", [("repository:*", {"pull", "push"}),
                                        ("registry:catalog", {"*"})])}
    with TokenServer(users, realm_query="tenant=acme") as tokens:
        bundle = tokens.write_bundle(tmp_path / "signer.crt")
        server = RegistryServer(tmp_path / "reg",
                                overrides={"auth": tokens.registry_auth_config(bundle)})
        server.start()
        try:
            alice = ri.Credentials(username="alice", password="alice-pw")
            pusher = Pusher(server.url, auth=RegistryAuth(alice, registry_url=server.url))
            pusher.image("acme/app", "v1")
            pusher.close()
            with ri.Registry(server.url, "alice", "alice-pw") as reg:
                inventory = ri.crawl(reg, progress=False)
        finally:
            server.stop()
    assert inventory.errors.empty and list(inventory.tags["tag"]) == ["v1"]
    ours = [r for r in tokens.requests if r["method"] == "GET"]
    assert ours and all(r["query"]["tenant"] == ["acme"] for r in ours)
    assert any("registry:catalog:*" in r["scopes"] for r in ours)


def test_realm_query_merge_keeps_order_and_repeats():
    assert with_params("https://auth.example/token?tenant=acme",
                       [("service", "r"), ("scope", "a b"), ("scope", "c")]) == (
        "https://auth.example/token?tenant=acme&service=r&scope=a+b&scope=c")
    assert with_params("https://auth.example/token", [("service", "r")]) == (
        "https://auth.example/token?service=r")
    assert with_params("https://auth.example/token?x=1", []) == "https://auth.example/token?x=1"
    request = httpx.Request("GET", with_params("https://a.example/t?tenant=acme",
                                               [("scope", "repository:x:pull")]))
    assert request.url.params.get_list("tenant") == ["acme"]


def test_a_token_server_that_fails_is_not_blamed_on_the_password(tmp_path):
    users = {"alice": User("alice-pw", [("repository:*", {"pull"})])}
    with TokenServer(users, realm_query="tenant=acme") as tokens:
        bundle = tokens.write_bundle(tmp_path / "signer.crt")
        config = tokens.registry_auth_config(bundle)
        config["token"]["realm"] = tokens.realm.split("?")[0]  # the query lost: HTTP 400
        server = RegistryServer(tmp_path / "reg", overrides={"auth": config}).start()
        try:
            with pytest.raises(ri.AuthenticationError) as failed:
                ri.Registry(server.url, "alice", "alice-pw")
        finally:
            server.stop()
    assert "could not issue a token" in str(failed.value) and "HTTP 400" in str(failed.value)
    assert "refused" not in str(failed.value) and "alice-pw" not in str(failed.value)


# ------------------------------------------------------- 4, 5: application/json manifests


def test_manifests_served_as_application_json_get_their_type_from_the_body(
        registry_server, clean):
    with DialectProxy(registry_server.url, dialects=(GENERIC_CONTENT_TYPE,)) as proxy, \
            ri.Registry(proxy.url) as reg:
        heads = ri.load_tags(reg, ALL, progress=False)
        crawled = ri.crawl(reg, ALL, progress=False)
        image = reg.manifest("dialects/oci", "image")
        head = reg.manifest_descriptor("dialects/oci", "image")
    assert heads["media_type"].isna().all()  # HEAD cannot tell: unknown, not "json"
    assert "application/json" not in set(crawled.manifests["media_type"].astype(str))
    _same(crawled, clean)
    assert image.media_type == OCI_MANIFEST and head.media_type is None
    oci = crawled.manifests[crawled.manifests["repository"] == "dialects/oci"]
    assert set(oci["media_type"]) == {OCI_MANIFEST, OCI_INDEX}


def test_copying_a_manifest_served_as_application_json_lands(registry_server, clean):
    with DialectProxy(registry_server.url, dialects=(GENERIC_CONTENT_TYPE,)) as proxy, \
            ri.Registry(proxy.url) as source, ri.Registry(registry_server.url) as target:
        digest = ri.copy(source, "dialects/oci:index", target, "copies/dialects:index")
        child = ri.copy(source, "dialects/oci:image", target, "copies/dialects:image")
        copied = target.manifest("copies/dialects", "index")
        stored = target.manifest_descriptor("copies/dialects", "image")
        with target.download_blob("copies/dialects",
                                  target.manifest("copies/dialects", "image").layers[0].digest
                                  ) as layer:
            assert layer.read() == b"unnamed oci layer" * 64
    assert copied.digest == digest and copied.media_type == OCI_INDEX
    assert stored.digest == child and stored.media_type == OCI_MANIFEST
    original = inspect_raw(registry_server.url, "dialects/oci", "index")
    assert inspect_raw(registry_server.url, "copies/dialects", "index") == original
    assert sha256(original) == digest


# ------------------------------------------------------------- 6, 7: rate limits


def test_a_spent_pull_budget_never_stalls_answers_that_come(registry_server, clean):
    with DialectProxy(registry_server.url, dialects=(pull_budget(refuse_gets=False),)) as proxy, \
            ri.Registry(proxy.url, retry=REAL_WAITS) as reg:
        with pytest.warns(ri.RateLimitWarning, match=r"pull budget is spent .*within 6 h"):
            reg.manifest_descriptor("dialects/r0", "v1")
        reg.manifest_descriptor("dialects/r0", "v2")
        crawled = ri.crawl(reg, ALL, progress=False)
        assert _waited(reg) == 0 and reg.retries == 0
        assert reg.rate_limit == ri.RateLimit(limit=100, remaining=0, window=21600)
    _same(crawled, clean)


def test_refused_pulls_fail_at_once_and_heads_go_on(registry_server, clean, tmp_path,
                                                     capsys):
    with DialectProxy(registry_server.url, dialects=(pull_budget(refuse_gets=True),)) as proxy, \
            ri.Registry(proxy.url, retry=REAL_WAITS) as reg:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ri.RateLimitWarning)
            recrawl = ri.crawl(reg, ALL, progress=False, since=clean)  # HEADs only
            full = ri.crawl(reg, ALL, progress=False)
        assert _waited(reg) == 0 and reg.retries == 0
    _same(recrawl, clean)
    assert full.tags.empty and len(full.errors) == len(clean.tags)
    assert full.errors["error"].str.contains(
        "pull budget is spent: 0 of 100 pulls left per 6 h window").all()
    assert full.errors["error"].str.contains("HEADs and blob downloads are not counted").all()
    assert proxy.count("GET", "/manifests/") == len(clean.tags)  # each asked once
    with DialectProxy(registry_server.url, dialects=(pull_budget(refuse_gets=True),)) as proxy:
        assert main(["crawl", proxy.url, "--repositories", "dialects/r0", "--no-progress",
                     "-o", str(tmp_path / "inv")]) == 0
    said = capsys.readouterr().err
    assert "reginsight: warning: " in said and "the pull budget is spent" in said
    assert "2 reads failed" in said and "dialects/r0 v1 (tag): RateLimited" in said


def test_heads_refused_with_429_fall_back_to_get(registry_server, clean):
    with DialectProxy(registry_server.url, dialects=(head_rate_limited("60"),)) as proxy, \
            ri.Registry(proxy.url, retry=REAL_WAITS) as reg:
        recrawl = ri.crawl(reg, ALL, progress=False, since=clean, concurrency=4)
        descriptor = reg.manifest_descriptor("dialects/r0", "v1")
        assert _waited(reg) == 0 and reg.retries == 0
        heads = proxy.count("HEAD", "/manifests/")
    _same(recrawl, clean)
    assert descriptor.digest == clean.tags.set_index(["repository", "tag"]).loc[
        ("dialects/r0", "v1"), "digest"]
    assert 1 <= heads <= 4  # those in flight before the first refusal; then GET only


def test_on_a_metered_registry_a_refused_head_waits_its_turn_before_spending_a_pull(
        registry_server, clean):
    metered = pull_budget(refuse_gets=False, remaining=50)  # GETs cost pulls here
    with DialectProxy(registry_server.url,
                      dialects=(head_rate_limited("0"), metered)) as proxy, \
            ri.Registry(proxy.url, retry=ri.RetryPolicy(attempts=3, base=0.01)) as reg:
        reg.manifest("dialects/r0", "v2")  # the registry is now known to meter GETs
        descriptor = reg.manifest_descriptor("dialects/r0", "v1")
        assert proxy.count("HEAD", "/manifests/") == 3  # retried as a busy server is
        assert proxy.count("GET", "/manifests/v1") == 1  # then one pull, not before
    assert descriptor.digest == clean.tags.set_index(["repository", "tag"]).loc[
        ("dialects/r0", "v1"), "digest"]


def test_a_generator_of_names_is_read_once_and_whole(registry_server, clean):
    with ri.Registry(registry_server.url) as reg:
        inventory = ri.crawl(reg, (name for name in ["dialects/r0", "dialects/r1"]),
                             progress=False)
    assert sorted(set(inventory.tags["repository"])) == ["dialects/r0", "dialects/r1"]
    assert inventory.scope == "dialects/r0, dialects/r1"


def test_cli_names_what_it_needs(registry_server, clean, tmp_path, capsys):
    with DialectProxy(registry_server.url, dialects=(no_catalog(401),)) as proxy:
        assert main(["crawl", proxy.url, "--repositories", "dialects/r0,team/*",
                     "-o", str(tmp_path / "x")]) == 1
        said = capsys.readouterr().err
        assert "globs (team/*) need the catalog" in said and "-u NAME" in said
        assert main(["crawl", proxy.url, "--repositories", "Team/App",
                     "-o", str(tmp_path / "y")]) == 2
        assert "--repositories 'Team/App'" in capsys.readouterr().err
        assert proxy.count("GET", "/v2/Team") == 0


# ------------------------------------------------------------------ 8: bare ping


def test_a_bare_200_on_v2_is_a_registry(registry_server, clean):
    with DialectProxy(registry_server.url, dialects=(BARE_PING,)) as proxy:
        assert httpx.get(proxy.url + "/v2/").content == b""
        with ri.Registry(proxy.url) as reg:
            crawled = ri.crawl(reg, ALL, progress=False)
    _same(crawled, clean)


def test_a_web_page_on_v2_is_still_not_a_registry():
    from tests.hostile import HostileServer

    page = (200, {"Content-Type": "text/html"}, b"<!doctype html><p>welcome</p>")
    with HostileServer(routes={"/v2/": lambda seen: page}) as server:
        with pytest.raises(ri.NotARegistry, match="not JSON"):
            ri.Registry(server.url)

