"""Clear typed errors for wrong URLs, refused connections, bad credentials and hostile
servers. Hostile behaviour the real registry cannot produce is played by a loopback
server (tests/hostile.py); credentials are checked against the real registry."""

from __future__ import annotations

import json

import pytest

import reginsight as ri
from tests.conftest import BASIC_PASSWORD
from tests.hostile import HostileServer, endless, registry_ping
from tests.registry_server import free_port

PASSWORD = BASIC_PASSWORD


def test_basic_auth_with_the_right_password_works(basic_registry):
    with ri.Registry(basic_registry.url, "alice", PASSWORD) as reg:
        assert reg.repositories() == []
        assert PASSWORD not in repr(reg)


def test_wrong_password_is_a_typed_error_naming_the_url_not_the_password(basic_registry):
    with pytest.raises(ri.AuthenticationError) as caught:
        ri.Registry(basic_registry.url, "alice", "wrong-" + PASSWORD)
    text = str(caught.value) + repr(caught.value)
    assert basic_registry.url in text
    assert PASSWORD not in text
    assert caught.value.status == 401


def test_credentials_in_the_url_are_used_and_never_shown(basic_registry):
    host = basic_registry.url.split("://")[1]
    with ri.Registry(f"http://alice:{PASSWORD}@{host}") as reg:
        assert reg.url == basic_registry.url
        assert PASSWORD not in repr(reg)
    with pytest.raises(ri.AuthenticationError) as caught:
        ri.Registry(f"http://alice:bad{PASSWORD}@{host}")
    assert PASSWORD not in str(caught.value)


def test_missing_credentials_say_so(basic_registry):
    with pytest.raises(ri.AuthenticationError, match="requires credentials"):
        ri.Registry(basic_registry.url)


def test_refused_connection_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ri.RegistryUnreachable) as caught:
        ri.Registry(url)
    assert url in str(caught.value)


@pytest.mark.parametrize("answer", [
    (404, {"Content-Type": "text/html"}, b"<html>no</html>"),
    (200, {"Content-Type": "text/html"}, b"<html>a web site</html>"),
    (500, {}, b"oops"),
])
def test_a_url_that_is_not_a_registry(answer):
    with HostileServer(routes={"/v2/": lambda seen: answer}) as server:
        with pytest.raises(ri.NotARegistry) as caught:
            ri.Registry(server.url)
    assert server.url in str(caught.value)


def test_a_200_ping_without_header_but_json_body_is_a_registry():
    answer = (200, {"Content-Type": "application/json"}, b"{}")
    with HostileServer(routes={"/v2/": lambda seen: answer}) as server:
        ri.Registry(server.url).close()


def _manifest_answer(body, content_length=True):
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    return lambda seen: (200, headers, body if content_length else iter([body]))


def test_manifest_over_4_mib_announced_is_refused_unread():
    # Registry 2.8 refuses to store or serve such a manifest; a hostile server does.
    body = b'{"schemaVersion": 2, "x": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    routes = {"/v2/": registry_ping, "/v2/a/manifests/huge": _manifest_answer(body)}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.TooLarge, match="not read"):
            reg.manifest("a", "huge")


def test_endless_manifest_stream_stops_at_4_mib():
    routes = {"/v2/": registry_ping,
              "/v2/a/manifests/endless": lambda seen: (200, {}, endless())}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.TooLarge, match="reading stopped"):
            reg.manifest("a", "endless")
    # the client hung up: the server got no further than the limit plus socket buffers
    assert server.bytes_sent < 4 * 1024 * 1024 + 16 * 1024 * 1024


def test_endless_error_body_is_capped():
    routes = {"/v2/": registry_ping,
              "/v2/a/tags/list": lambda seen: (500, {}, endless(b'{"errors": [' * 1000))}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ResponseError) as caught:
            reg.tags("a")
    assert caught.value.status == 500
    assert len(str(caught.value)) < 500


def test_error_body_codes_are_mapped():
    body = json.dumps({"errors": [{"code": "DENIED", "message": "go away", "detail": None}]})
    routes = {"/v2/": registry_ping,
              "/v2/a/tags/list": lambda seen: (403, {}, body.encode())}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.PermissionDenied) as caught:
            reg.tags("a")
    assert caught.value.codes == ("DENIED",)
    assert "go away" in str(caught.value)


def test_catalog_link_to_another_host_is_refused_and_never_followed():
    with HostileServer(host="127.0.0.2", routes={"/v2/_catalog": registry_ping}) as canary:
        link = f'<{canary.url}/v2/_catalog?last=a&n=1>; rel="next"'
        routes = {
            "/v2/": registry_ping,
            "/v2/_catalog": lambda seen: (200, {"Link": link}, b'{"repositories": ["a"]}'),
        }
        with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
            with pytest.raises(ri.ProtocolViolation, match="another origin"):
                reg.repositories()
        assert canary.requests == []


def test_pagination_loop_is_stopped():
    link = '</v2/_catalog?last=a>; rel="next"'
    routes = {
        "/v2/": registry_ping,
        "/v2/_catalog": lambda seen: (200, {"Link": link}, b'{"repositories": ["a"]}'),
    }
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ProtocolViolation, match="loops"):
            reg.repositories()
    assert len(server.requests) <= 4


def test_paginated_tag_lists_are_followed():
    """Distribution v3 and most hosted registries paginate tags (2.8 does not)."""
    pages = {
        "": ('</v2/app/tags/list?last=b&n=2>; rel="next"', ["c", "b"]),
        "last=b&n=1000": ('</v2/app/tags/list?last=d&n=2>; rel="next"', ["d", "a"]),
        "last=d&n=1000": (None, ["e"]),
    }

    def tags_page(seen):
        query = seen.path.partition("?")[2]
        link, tags = pages[query]
        return 200, ({"Link": link} if link else {}), json.dumps(
            {"name": "app", "tags": tags}).encode()

    routes = {"/v2/": registry_ping, "/v2/app/tags/list": tags_page}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        assert reg.tags("app") == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("name", ["../etc", "UPPER", "a?b", "a#b", "x" * 300, 7])
def test_invalid_names_in_the_catalog_are_protocol_violations(name):
    body = json.dumps({"repositories": ["ok", name]}).encode()
    routes = {"/v2/": registry_ping, "/v2/_catalog": lambda seen: (200, {}, body)}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ProtocolViolation, match="invalid repository name"):
            reg.repositories()


def test_manifest_media_type_contradicting_content_type_is_refused():
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": []}).encode()
    routes = {"/v2/": registry_ping, "/v2/a/manifests/x": _manifest_answer(body)}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ManifestInvalid, match="contradicts"):
            reg.manifest("a", "x")


def test_bad_docker_content_digest_header_is_a_protocol_violation():
    body = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}'
    headers = {"Content-Type": "application/vnd.oci.image.index.v1+json",
               "Docker-Content-Digest": "md5:abc"}
    routes = {"/v2/": registry_ping, "/v2/a/manifests/x": lambda seen: (200, headers, body)}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ProtocolViolation, match="Docker-Content-Digest"):
            reg.manifest("a", "x")


def test_bad_registry_urls_are_typed():
    for url in ("", "ftp://x", "http://", "https://host/some/path", 5):
        with pytest.raises(ri.InvalidReference):
            ri.Registry(url)


def test_cookies_are_never_sent_back():
    routes = {
        "/v2/": lambda seen: (200, {"Set-Cookie": "sid=secret-session; Path=/",
                                    "Docker-Distribution-API-Version": "registry/2.0"}, b"{}"),
        "/v2/_catalog": lambda seen: (200, {}, b'{"repositories": []}'),
    }
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        reg.repositories()
    assert all("cookie" not in seen.headers for seen in server.requests)


def test_a_stalled_server_times_out_typed():
    import time

    def stall(seen):
        time.sleep(2)
        return 200, {}, b"{}"

    routes = {"/v2/": registry_ping, "/v2/a/tags/list": stall}
    with HostileServer(routes=routes) as server, \
            ri.Registry(server.url, timeout=0.3, retry=ri.NO_RETRY) as reg:
        started = time.monotonic()
        with pytest.raises(ri.RegistryUnreachable, match="Timeout"):
            reg.tags("a")
        assert time.monotonic() - started < 1.5  # not the server's 2 s: our 0.3 s


def test_no_retry_sends_once():
    routes = {"/v2/": registry_ping, "/v2/a/tags/list": lambda seen: (503, {}, b"")}
    with HostileServer(routes=routes) as server, \
            ri.Registry(server.url, retry=ri.NO_RETRY) as reg:
        with pytest.raises(ri.ResponseError):
            reg.tags("a")
    assert [s.path for s in server.requests].count("/v2/a/tags/list") == 1
