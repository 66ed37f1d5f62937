"""Hostile input that is not a registry's fault mode but an attack: names that walk
paths, tags that smuggle URLs, saved inventories aimed outside their directory."""

from __future__ import annotations

import json
import os
import shutil

import pytest

import reginsight as ri
from tests.hostile import HostileServer, registry_ping
from tests.test_analysis import inventory

BAD_NAMES = ["../etc", "a/%2e%2e/b", "a?x=1", "a#frag", "Upper", "x" * 300, "a//b", ""]
BAD_TAGS = ["..", "%2e%2e", "a?b", "a#b", "a/b", "-lead", "t" * 300, ""]


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_a_hostile_tag_list_is_refused_typed(tag):
    body = json.dumps({"name": "app", "tags": ["good", tag]}).encode()
    routes = {"/v2/": registry_ping, "/v2/app/tags/list": lambda seen: (200, {}, body)}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ProtocolViolation, match="invalid tag"):
            reg.tags("app")
        inv = ri.crawl(reg, ["app"], progress=False)
    assert inv.tags.empty and len(inv.errors) == 1
    assert "invalid tag" in inv.errors["error"].iloc[0]
    # nothing was ever asked for the bad tag, so no path was built from it
    assert not any("/manifests/" in seen.path for seen in server.requests)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_user_given_names_never_reach_a_url(name):
    with HostileServer(routes={"/v2/": registry_ping}) as server, \
            ri.Registry(server.url) as reg:
        for call in (lambda: reg.tags(name), lambda: reg.manifest(name, "latest"),
                     lambda: reg.upload_blob(name, b"x"), lambda: reg.delete_manifest(
                         name, "sha256:" + "0" * 64)):
            with pytest.raises(ri.InvalidReference):
                call()
        assert [seen.path for seen in server.requests] == ["/v2/"]


def test_saving_follows_no_planted_link(tmp_path):
    """Links planted where a save writes are not reginsight's: the save is refused,
    and neither the links nor what they point at change; a link in an earlier
    inventory's frame folder is refused the same way."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    target = tmp_path / "inventory"
    target.mkdir()
    (target / "tags").symlink_to(elsewhere)  # a frame's directory, planted
    (target / "layers.parquet").symlink_to(outside)  # a file of the earlier format
    (target / "inventory.json").symlink_to(outside)
    with pytest.raises(ri.InventoryError, match=r"inventory\.json is a link"):
        inventory().save(target)
    assert outside.read_text() == "precious"
    assert sorted(os.listdir(elsewhere)) == ["keep.txt"]
    assert sorted(os.listdir(target)) == ["inventory.json", "layers.parquet", "tags"]
    assert all((target / name).is_symlink() for name in os.listdir(target))
    earlier = tmp_path / "earlier"
    inventory().save(earlier)
    shutil.rmtree(earlier / "tags")
    (earlier / "tags").symlink_to(elsewhere)
    with pytest.raises(ri.InventoryError, match="did not write"):
        inventory().save(earlier)
    assert (earlier / "tags").is_symlink() and sorted(os.listdir(elsewhere)) == ["keep.txt"]


@pytest.mark.parametrize("damage", ["missing", "not-json", "other-format", "bad-parquet"])
def test_loading_a_damaged_inventory_is_a_typed_error(tmp_path, damage):
    inventory().save(tmp_path)
    if damage == "missing":
        shutil.rmtree(tmp_path / "layers")
    elif damage == "not-json":
        (tmp_path / "inventory.json").write_text("{")
    elif damage == "other-format":
        (tmp_path / "inventory.json").write_text('{"format": "something-else"}')
    else:
        part = next((tmp_path / "tags").glob("*/*.parquet"))
        part.write_bytes(b"PAR1 but not really")
    with pytest.raises(ri.InventoryError):
        ri.Inventory.load(tmp_path)


def test_a_redirect_loop_is_typed_and_a_crawl_survives_it():
    routes = {"/v2/": registry_ping,
              "/v2/_catalog": lambda seen: (200, {}, b'{"repositories": ["ok", "loop"]}'),
              "/v2/ok/tags/list": lambda seen: (200, {}, b'{"name": "ok", "tags": []}'),
              "/v2/loop/tags/list": lambda seen: (302, {"Location": "/v2/loop/tags/list"},
                                                  b"")}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ProtocolViolation, match="TooManyRedirects"):
            reg.tags("loop")
        inv = ri.crawl(reg, progress=False)
    assert list(inv.errors["repository"]) == ["loop"]


@pytest.mark.parametrize("config", [
    {"auths": ["not", "an", "object"]},
    {"credHelpers": "x"},
    {"auths": {"r.example": {"auth": "w6nDqcOp"}}},  # base64 of non-ASCII, no colon
    {"auths": {"r.example": {"auth": "éé"}}},
])
def test_odd_docker_configs_are_credentials_errors(tmp_path, config):
    from reginsight.registry._credentials import resolve_credentials

    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ri.CredentialsError):
        resolve_credentials("https://r.example", config_path=path)


def test_missing_tls_material_is_a_credentials_error(tmp_path):
    with pytest.raises(ri.CredentialsError):
        ri.Registry("https://127.0.0.1:1", verify=str(tmp_path / "missing.pem"))
    with pytest.raises(ri.CredentialsError):
        ri.Registry("https://127.0.0.1:1", cert=(str(tmp_path / "c.pem"), str(tmp_path / "k")))


@pytest.mark.parametrize("header", [{"jwk": "a string", "alg": "ES256"},
                                    {"x5c": {"not": "a list"}, "alg": "ES256"},
                                    {"x5c": ["!!!"], "alg": "ES256"}, {"alg": "ES256"}])
def test_odd_signature_headers_are_signature_errors(header):
    import base64

    from reginsight import schema1

    protected = base64.urlsafe_b64encode(
        json.dumps({"formatLength": 10, "formatTail": "fQ"}).encode()).decode().rstrip("=")
    raw = json.dumps({"schemaVersion": 1, "signatures": [
        {"header": header, "signature": "AA", "protected": protected}]}).encode()
    with pytest.raises(schema1.SignatureInvalid):
        schema1.verify(raw)
