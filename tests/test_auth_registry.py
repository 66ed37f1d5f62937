"""Authentication against the real registry: a token server of our own (auth: token),
TLS with a CA made here, client certificates, docker config and credential helpers."""

from __future__ import annotations

import base64
import json
import logging
import os
import time

import httpx
import pytest

import reginsight as ri
from reginsight.registry._auth import RegistryAuth
from reginsight.registry._credentials import resolve_credentials
from tests.images import Pusher
from tests.pki import issue, self_signed
from tests.registry_server import RegistryServer
from tests.token_server import TokenServer, User

READER_PW = "reader-pw-7c1e"
WRITER_PW = "writer-pw-93ab"
REFRESH = "refresh-token-5d2f"


@pytest.fixture(scope="module")
def token_setup(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("token-registry")
    users = {
        "reader": User(READER_PW, [("repository:*", {"pull"})]),
        "writer": User(WRITER_PW, [("repository:*", {"pull", "push", "delete"}),
                                   ("registry:catalog", {"*"})], refresh_token=REFRESH),
    }
    tokens = TokenServer(users, anonymous=[("repository:public/*", {"pull"})]).__enter__()
    bundle = tokens.write_bundle(workdir / "signer.crt")
    server = RegistryServer(workdir, overrides={"auth": tokens.registry_auth_config(bundle)})
    server.start()
    writer = ri.Credentials(username="writer", password=WRITER_PW)
    pusher = Pusher(server.url, auth=RegistryAuth(writer, registry_url=server.url))
    pusher.image("public/app", "v1")
    pusher.image("private/app", "v1")
    yield server, tokens, pusher
    pusher.close()
    server.stop()
    tokens.__exit__(None, None, None)


def test_token_registry_serves_reader_and_anonymous_but_refuses_where_it_should(token_setup):
    server, _, _ = token_setup
    with ri.Registry(server.url, "reader", READER_PW) as reg:
        assert reg.tags("private/app") == ["v1"]
        assert reg.manifest("private/app", "v1").kind == "image"
        with pytest.raises(ri.CatalogUnavailable) as refused:  # no catalog grant for reader
            reg.repositories()
        assert refused.value.status == 401
    with ri.Registry(server.url) as anonymous:
        assert anonymous.tags("public/app") == ["v1"]
        with pytest.raises(ri.AuthenticationError):
            anonymous.tags("private/app")


def test_catalog_scope_is_asked_for(token_setup):
    server, tokens, _ = token_setup
    with ri.Registry(server.url, "writer", WRITER_PW) as reg:
        assert {"public/app", "private/app"} <= set(reg.repositories())
    assert any("registry:catalog:*" in r["scopes"] for r in tokens.requests)


def test_harness_pull_only_token_fails_a_push_on_the_real_registry(token_setup):
    server, tokens, _ = token_setup
    answer = httpx.get(tokens.realm, params=[("service", "reginsight-test"),
                                             ("scope", "repository:private/app:pull,push")],
                       auth=("reader", READER_PW)).json()
    token = answer["token"]
    headers = {"Authorization": f"Bearer {token}"}
    pull = httpx.get(f"{server.url}/v2/private/app/tags/list", headers=headers)
    assert pull.status_code == 200
    push = httpx.post(f"{server.url}/v2/private/app/blobs/uploads/", headers=headers)
    assert push.status_code == 401
    assert "insufficient_scope" in push.headers["www-authenticate"]


def test_tokens_are_cached_per_scope_and_renewed_before_expiry(token_setup):
    server, tokens, _ = token_setup
    with ri.Registry(server.url, "reader", READER_PW) as reg:
        before = len(tokens.requests)
        for _ in range(5):
            reg.manifest("private/app", "v1")
            reg.tags("private/app")
        assert len(tokens.requests) - before == 1  # one pull token, reused ten times
        reg.tags("public/app")
        assert len(tokens.requests) - before == 2  # another repository, another scope


def test_short_lived_tokens_are_renewed(token_setup):
    server, tokens, _ = token_setup
    tokens.expires_in = 2
    try:
        with ri.Registry(server.url, "reader", READER_PW) as reg:
            reg.tags("private/app")
            before = len(tokens.requests)
            reg.tags("private/app")
            assert len(tokens.requests) == before
            time.sleep(2.0)
            reg.tags("private/app")
            assert len(tokens.requests) == before + 1
    finally:
        tokens.expires_in = 300


def test_access_token_field_and_missing_expires_in(token_setup):
    server, tokens, _ = token_setup
    tokens.token_field, tokens.expires_in = "access_token", None
    try:
        with ri.Registry(server.url, "reader", READER_PW) as reg:
            assert reg.tags("private/app") == ["v1"]
    finally:
        tokens.token_field, tokens.expires_in = "token", 300


def test_wrong_password_on_token_registry_is_typed_and_secret_free(token_setup, caplog):
    server, _, _ = token_setup
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ri.AuthenticationError) as caught:
        ri.Registry(server.url, "reader", "not-" + READER_PW)
    text = str(caught.value) + repr(caught.value)
    assert "reader" in text and READER_PW not in text
    with ri.Registry(server.url, "reader", READER_PW) as reg:
        reg.tags("private/app")
        assert READER_PW not in repr(reg) + repr(reg.credentials) + repr(reg._http.auth)
    assert READER_PW not in caplog.text
    assert base64.b64encode(f"reader:{READER_PW}".encode()).decode() not in caplog.text


def _docker_config(tmp_path, monkeypatch, config: dict):
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


def test_docker_config_auths_entry(token_setup, tmp_path, monkeypatch):
    server, _, _ = token_setup
    host = server.url.split("://")[1]
    auth = base64.b64encode(f"reader:{READER_PW}".encode()).decode()
    _docker_config(tmp_path, monkeypatch, {"auths": {f"http://{host}": {"auth": auth}}})
    with ri.Registry(server.url) as reg:
        assert reg.credentials.username == "reader"
        assert reg.tags("private/app") == ["v1"]
    # the same file named explicitly, with DOCKER_CONFIG pointing at nothing
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "nowhere"))
    with ri.Registry(server.url, docker_config=tmp_path / "config.json") as reg:
        assert reg.credentials.username == "reader"
    # explicit credentials win over the config
    with pytest.raises(ri.AuthenticationError):
        ri.Registry(server.url, "reader", "wrong")


def test_docker_config_identity_token_uses_the_refresh_grant(token_setup, tmp_path, monkeypatch):
    server, tokens, _ = token_setup
    host = server.url.split("://")[1]
    _docker_config(tmp_path, monkeypatch, {"auths": {host: {"identitytoken": REFRESH}}})
    with ri.Registry(server.url) as reg:
        assert "private/app" in reg.repositories()
        assert REFRESH not in repr(reg.credentials)
    assert tokens.requests[-1]["method"] == "POST" and tokens.requests[-1]["user"] == "writer"


HELPER = """#!/bin/sh
[ "$1" = get ] || exit 1
read server
if [ "$server" = "{host}" ]; then
  printf '{{"ServerURL":"%s","Username":"reader","Secret":"{password}"}}' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
"""


@pytest.mark.parametrize("kind", ["credsStore", "credHelpers"])
def test_credential_helper(token_setup, tmp_path, monkeypatch, kind):
    server, _, _ = token_setup
    host = server.url.split("://")[1]
    helper = tmp_path / "docker-credential-rtest"
    helper.write_text(HELPER.format(host=host, password=READER_PW))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    config = {"credsStore": "rtest"} if kind == "credsStore" else {
        "credHelpers": {host: "rtest"}}
    _docker_config(tmp_path, monkeypatch, config)
    with ri.Registry(server.url) as reg:
        assert reg.credentials.source == "helper rtest"
        assert reg.tags("private/app") == ["v1"]
    # "credentials not found" from the helper means anonymous
    assert resolve_credentials("https://elsewhere.example").anonymous


# ------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def tls_setup(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tls-registry")
    ca = self_signed("reginsight test CA", ca=True)
    ca_path, _ = ca.write(workdir, "ca")
    server_cert, server_key = issue(ca, "127.0.0.1", server_ip="127.0.0.1").write(
        workdir, "server")
    client_cert, client_key = issue(ca, "reginsight client").write(workdir, "client")
    plain = RegistryServer(workdir / "plain", scheme="https", overrides={
        "http": {"tls": {"certificate": str(server_cert), "key": str(server_key)}}}).start()
    mutual = RegistryServer(workdir / "mutual", scheme="https", overrides={
        "http": {"tls": {"certificate": str(server_cert), "key": str(server_key),
                         "clientcas": [str(ca_path)]}}}).start()
    yield {"ca": str(ca_path), "client": (str(client_cert), str(client_key)),
           "plain": plain, "mutual": mutual}
    plain.stop()
    mutual.stop()


def test_tls_verified_with_the_test_ca(tls_setup):
    with ri.Registry(tls_setup["plain"].url, verify=tls_setup["ca"]) as reg:
        assert reg.url.startswith("https://")
        assert reg.repositories() == []


def test_tls_refused_without_the_ca(tls_setup):
    with pytest.raises(ri.RegistryUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        ri.Registry(tls_setup["plain"].url)


def test_tls_insecure_only_when_asked(tls_setup):
    with ri.Registry(tls_setup["plain"].url, insecure=True) as reg:
        assert reg.repositories() == []


def test_client_certificate(tls_setup):
    with ri.Registry(tls_setup["mutual"].url, verify=tls_setup["ca"],
                     cert=tls_setup["client"]) as reg:
        assert reg.repositories() == []
    with pytest.raises(ri.RegistryUnreachable):
        ri.Registry(tls_setup["mutual"].url, verify=tls_setup["ca"])


def test_bodies_are_replayed_after_the_first_401_of_a_new_scope(token_setup):
    """A fresh client PUTs a manifest before it holds a push token: the registry says
    401, the token is fetched, and the same body goes again."""
    server, tokens, _ = token_setup
    with ri.Registry(server.url, "writer", WRITER_PW) as reg:
        config = b'{"architecture": "amd64", "os": "linux"}'
        digest = reg.upload_blob("private/replay", config)
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": digest, "size": len(config)}, "layers": []}
    with ri.Registry(server.url, "writer", WRITER_PW) as fresh:
        before = len(tokens.requests)
        manifest_digest = fresh.put_manifest("private/replay", "v1", doc)
        assert len(tokens.requests) == before + 1
        assert fresh.manifest("private/replay", "v1").digest == manifest_digest
