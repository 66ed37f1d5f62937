"""Credentials never travel where they should not: cross-host redirects, hostile token
realms, metadata addresses. Hostile answers come from loopback servers or from a
transport that records requests instead of connecting."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest

import reginsight as ri
from reginsight.registry._auth import check_realm
from reginsight.registry._credentials import Credentials, config_key, resolve_credentials
from reginsight.registry._hosts import unsafe_host_reason
from reginsight.registry.protocol import merge_scopes
from tests.hostile import HostileServer, endless, registry_ping

BLOB = b"layer bytes " * 100
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
BASIC = "Basic " + base64.b64encode(b"alice:pw-3f9e").decode()


def _basic_registry(blob_route):
    def ping(seen):
        if seen.headers.get("authorization") != BASIC:
            return 401, {"WWW-Authenticate": 'Basic realm="test"'}, b""
        return registry_ping(seen)

    return {"/v2/": ping, f"/v2/app/blobs/{DIGEST}": blob_route}


def test_cross_host_redirect_drops_authorization():
    with HostileServer(host="127.0.0.2") as storage:
        storage.routes["/presigned"] = lambda seen: (200, {}, BLOB)

        def blob(seen):
            assert seen.headers.get("authorization") == BASIC
            return 307, {"Location": f"{storage.url}/presigned?X-Amz-Signature=abc"}, b""

        with HostileServer(routes=_basic_registry(blob)) as registry, \
                ri.Registry(registry.url, "alice", "pw-3f9e") as reg, \
                reg.download_blob("app", DIGEST) as stream:
            assert stream.read() == BLOB
        (fetched,) = storage.requests
        assert "authorization" not in fetched.headers


def test_same_origin_redirect_keeps_authorization():
    """The counterpart: the header is dropped for leaving the origin, not always."""
    with HostileServer() as registry:
        registry.routes.update(_basic_registry(
            lambda seen: (307, {"Location": "/data"}, b"")))
        registry.routes["/data"] = lambda seen: (
            (200, {}, BLOB) if seen.headers.get("authorization") == BASIC else (401, {}, b""))
        with ri.Registry(registry.url, "alice", "pw-3f9e") as reg, \
                reg.download_blob("app", DIGEST) as stream:
            assert stream.read() == BLOB


class Recorder:
    """An httpx transport that answers from a script and never connects anywhere."""

    def __init__(self, answer):
        self.requests: list[httpx.Request] = []
        self._answer = answer
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request):
        self.requests.append(request)
        return self._answer(request)

    @property
    def hosts(self):
        return {r.url.host for r in self.requests}


def _bearer(realm):
    def answer(request):
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"token": "t"})
        if request.headers.get("authorization") == "Bearer t":
            return httpx.Response(200, json={},
                                  headers={"Docker-Distribution-API-Version": "registry/2.0"})
        return httpx.Response(401, headers={
            "WWW-Authenticate": f'Bearer realm="{realm}",service="s"'})
    return answer


@pytest.mark.parametrize(("registry", "realm", "why"), [
    ("https://registry.test", "http://169.254.169.254/token", "downgrade"),
    ("https://registry.test", "https://169.254.169.254/token", "link-local"),
    ("https://registry.test", "https://metadata.google.internal/token", "metadata"),
    ("https://registry.test", "https://[fd00:ec2::254]/token", "link-local"),
    ("https://registry.test", "http://registry.test/token", "downgrade"),
    ("https://registry.test", "https://10.0.0.8/token", "private"),
    ("https://registry.test", "https://127.0.0.1/token", "loopback"),
    ("https://203.0.113.7", "https://192.168.1.1/token", "private"),
    ("https://registry.test", "file:///etc/passwd", "not an http"),
])
def test_hostile_realms_are_refused_before_any_request_to_them(registry, realm, why):
    recorder = Recorder(_bearer(realm))
    with pytest.raises(ri.UnsafeAddress, match=why):
        ri.Registry(registry, "alice", "pw", transport=recorder.transport)
    assert recorder.hosts == {httpx.URL(registry).host}


def test_a_loopback_registry_may_use_a_loopback_realm():
    recorder = Recorder(_bearer("http://127.0.0.1:9/token"))
    with ri.Registry("http://127.0.0.1:8", "alice", "pw", transport=recorder.transport):
        pass
    token_request = recorder.requests[1]
    assert token_request.url.path == "/token"
    assert token_request.headers["authorization"].startswith("Basic ")


def test_redirect_to_a_metadata_address_is_refused():
    def answer(request):
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    recorder = Recorder(answer)
    with ri.Registry("https://registry.test", transport=recorder.transport) as reg:
        with pytest.raises(ri.UnsafeAddress), reg.download_blob("app", DIGEST):
            pass
    assert recorder.hosts == {"registry.test"}


def test_endless_token_body_is_refused():
    with HostileServer() as server:
        server.routes["/token"] = lambda seen: (200, {}, endless())
        server.routes["/v2/"] = lambda seen: (401, {
            "WWW-Authenticate": f'Bearer realm="{server.url}/token",service="s"'}, b"")
        with pytest.raises(ri.TooLarge):
            ri.Registry(server.url)


def test_endless_401_body_is_cut_and_reported():
    with HostileServer() as server:
        server.routes["/v2/"] = lambda seen: (401, {"WWW-Authenticate": "Basic"}, endless())
        with pytest.raises(ri.AuthenticationError):
            ri.Registry(server.url, "alice", "pw")


def test_scopes_merge_per_resource():
    assert merge_scopes(["repository:a:pull", "repository:a:push", "registry:catalog:*",
                         "repository:b:pull", "", "junk"]) == (
        "registry:catalog:*", "repository:a:pull,push", "repository:b:pull")


def test_check_realm_allows_ordinary_realms():
    check_realm("https://auth.docker.io/token", "https://registry-1.docker.io")
    check_realm("https://ghcr.io/token", "https://ghcr.io")
    check_realm("http://10.0.0.2:5001/auth", "http://10.0.0.1:5000")


def test_unsafe_hosts():
    assert unsafe_host_reason("169.254.169.254")
    assert unsafe_host_reason("::ffff:169.254.169.254")
    assert unsafe_host_reason("METADATA.google.internal.")
    assert unsafe_host_reason("0.0.0.0")
    assert unsafe_host_reason("127.0.0.1") is None
    assert unsafe_host_reason("registry.example") is None


def test_credentials_never_in_repr():
    secrets = ("pw-9c1f", "idtok-5e2a", "regtok-7b3d")
    creds = Credentials(username="u", password=secrets[0], identity_token=secrets[1],
                        registry_token=secrets[2])
    for secret in secrets:
        assert secret not in repr(creds) and secret not in str(creds)


def test_docker_config_keys(tmp_path):
    assert config_key("https://registry-1.docker.io") == "https://index.docker.io/v1/"
    assert config_key("http://127.0.0.1:5000") == "127.0.0.1:5000"
    auth = base64.b64encode(b"hubuser:hubpass").decode()
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth},
                                          "https://r.example/v1/": {"auth": "!!"}}}))
    hub = resolve_credentials("https://registry-1.docker.io", config_path=path)
    assert (hub.username, hub.password) == ("hubuser", "hubpass")
    assert resolve_credentials("https://other.example", config_path=path).anonymous
    with pytest.raises(ri.CredentialsError):
        resolve_credentials("https://r.example", config_path=path)


@pytest.mark.parametrize("content", ["{not json", "[]"])
def test_broken_docker_config_is_a_credentials_error(tmp_path, content):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ri.CredentialsError):
        resolve_credentials("https://r.example", config_path=path)


def test_missing_helper_is_a_credentials_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "no-such-helper-xyz"}))
    with pytest.raises(ri.CredentialsError, match="not on PATH"):
        resolve_credentials("https://r.example", config_path=path)


def test_an_upload_location_on_another_host_gets_no_credentials():
    """A registry (or a proxy in its place) names another host in Location: that host
    may challenge all it likes, it never sees the registry's password."""
    with HostileServer(host="127.0.0.2") as elsewhere:
        elsewhere.routes["/up"] = lambda seen: (
            401, {"WWW-Authenticate": 'Basic realm="x"'}, b"")
        with HostileServer(routes=_basic_registry(lambda seen: (404, {}, b""))) as registry:
            registry.routes["/v2/app/blobs/uploads/"] = lambda seen: (
                202, {"Location": f"{elsewhere.url}/up"}, b"")
            with ri.Registry(registry.url, "alice", "pw-3f9e") as reg, \
                    pytest.raises(ri.AuthenticationError):
                reg.upload_blob("app", BLOB)
        assert elsewhere.requests and all(
            "authorization" not in seen.headers for seen in elsewhere.requests)


def test_a_token_request_is_never_redirected_to_another_host():
    with HostileServer(host="127.0.0.2") as collector:
        with HostileServer() as server:
            server.routes["/token"] = lambda seen: (
                307, {"Location": f"{collector.url}/collect"}, b"")
            server.routes["/v2/"] = lambda seen: (401, {
                "WWW-Authenticate": f'Bearer realm="{server.url}/token",service="s"'}, b"")
            with pytest.raises(ri.UnsafeAddress, match="redirected"):
                ri.Registry(server.url, credentials=ri.Credentials(identity_token="REFRESH-1"))
        assert collector.requests == []


@pytest.mark.parametrize("url", ["https://alice:pa/ss@reg.example/x",
                                 "https://alice:p@ss@reg.example/foo"])
def test_passwords_with_slashes_and_ats_never_reach_a_message(url):
    with pytest.raises(ri.InvalidReference) as caught:
        ri.Registry(url)
    assert "pa/ss" not in str(caught.value) and "p@ss" not in str(caught.value)
    assert "ss@" not in str(caught.value)
