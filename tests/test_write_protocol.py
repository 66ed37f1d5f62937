"""Upload and delete protocol details the real 2.8 registry does not exercise: a
relative upload Location, and the OCI tag DELETE of newer registries. Played by a
scripted loopback server."""

from __future__ import annotations

import hashlib
import json

import pytest

import reginsight as ri
from reginsight import _mediatypes as mt
from tests.hostile import HostileServer, registry_ping
from tests.images import Pusher


def test_relative_location_with_state_is_resolved_and_kept():
    data = b"blob" * 10
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    routes = {
        "/v2/": registry_ping,
        f"/v2/app/blobs/{digest}": lambda seen: (404, {}, b""),
        "/v2/app/blobs/uploads/": lambda seen: (
            202, {"Location": "/v2/app/blobs/uploads/u1?_state=abc%3D"}, b""),
        "/v2/app/blobs/uploads/u1": lambda seen: (
            201, {"Docker-Content-Digest": digest}, b""),
    }
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        assert reg.upload_blob("app", data) == digest
    put = server.requests[-1]
    assert put.method == "PUT" and put.body == data
    assert put.path == f"/v2/app/blobs/uploads/u1?_state=abc%3D&digest={digest.replace(':', '%3A')}"


def test_oci_tag_delete_is_used_where_the_registry_has_it():
    digest = "sha256:" + "1" * 64
    manifest_route = lambda seen: (  # noqa: E731
        (202, {}, b"") if seen.method == "DELETE" else
        (200, {"Docker-Content-Digest": digest}, b""))
    routes = {"/v2/": registry_ping, "/v2/app/manifests/v1": manifest_route}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        done = ri.delete_tag(reg, "app", "v1")
    assert (done.method, done.removed) == ("tag", ("v1",))
    # no tag listing, no digest DELETE: only the one tag went
    assert [(r.method, r.path) for r in server.requests[1:]] == [
        ("HEAD", "/v2/app/manifests/v1"), ("DELETE", "/v2/app/manifests/v1")]


def test_apply_cleanup_records_a_refused_digest_and_goes_on():
    """One digest answers 403, the next is deleted: both are in the result."""
    import pandas as pd

    # real manifests: the apply reads each one (what it is about) before deleting it
    bodies = {tag: json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                               "config": {"mediaType": mt.OCI_CONFIG, "size": 2,
                                          "digest": "sha256:" + letter * 64},
                               "layers": []}).encode()
              for tag, letter in (("a", "c"), ("b", "d"))}
    descriptor = {tag: "sha256:" + hashlib.sha256(body).hexdigest()
                  for tag, body in bodies.items()}
    first, second = descriptor["a"], descriptor["b"]
    body_of = {**bodies, first: bodies["a"], second: bodies["b"]}

    def manifest(tag_or_digest):
        def route(seen):
            if seen.method == "DELETE":
                return (403, {}, b'{"errors":[{"code":"DENIED"}]}') if tag_or_digest == first \
                    else (202, {}, b"")
            digest = descriptor.get(tag_or_digest, tag_or_digest)
            return 200, {"Docker-Content-Digest": digest,
                         "Content-Type": mt.OCI_MANIFEST}, body_of[tag_or_digest]
        return route

    routes = {"/v2/": registry_ping,
              "/v2/app/tags/list": lambda seen: (200, {}, b'{"name":"app","tags":["a","b"]}')}
    for key in ("a", "b", first, second):
        routes[f"/v2/app/manifests/{key}"] = manifest(key)
    plan = pd.DataFrame({"repository": ["app", "app"], "tag": ["a", "b"],
                         "digest": [first, second], "action": ["delete", "delete"]})
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        result = ri.apply_cleanup(reg, plan, dry_run=False).set_index("tag")
    assert result.loc["a", "status"] == "failed" and "DENIED" in result.loc["a", "detail"]
    assert result.loc["b", "status"] == "deleted"


def test_referrers_are_read_page_by_page_and_none_without_the_api(registry_server, prefix):
    """A registry with the OCI 1.1 referrers API (scripted: pages joined by Link), and
    the real 2.8, which has none: None, so a caller knows to read the fallback tag."""
    import json

    subject = "sha256:" + "5" * 64
    entries = [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + c * 64, "size": 7, "artifactType": "application/spdx+json"}
               for c in "67"]

    def page(seen):
        last = "last=" in seen.path
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [entries[1 if last else 0]]}
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if not last:
            headers["Link"] = f'</v2/app/referrers/{subject}?last=x>; rel="next"'
        return 200, headers, json.dumps(doc).encode()

    routes = {"/v2/": registry_ping, f"/v2/app/referrers/{subject}": page}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        found = reg.referrers("app", subject)
    assert [d.digest for d in found] == [e["digest"] for e in entries]
    assert found[0].artifact_type == "application/spdx+json"
    assert [r.path for r in server.requests[1:]] == [
        f"/v2/app/referrers/{subject}", f"/v2/app/referrers/{subject}?last=x"]

    pusher = Pusher(registry_server.url)
    image = pusher.image(f"{prefix}/ref", "v1")
    pusher.close()
    with ri.Registry(registry_server.url) as reg:
        assert reg.referrers(f"{prefix}/ref", image.digest) is None


def test_a_referrers_link_back_to_itself_is_refused_after_one_repeat():
    subject = "sha256:" + "5" * 64
    path = f"/v2/app/referrers/{subject}"
    index = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", ' \
            b'"manifests": []}'
    routes = {"/v2/": registry_ping,
              path: lambda seen: (200, {"Link": f'<{path}>; rel="next"'}, index)}
    with HostileServer(routes=routes) as server, ri.Registry(server.url) as reg:
        with pytest.raises(ri.ProtocolViolation, match="pagination loops"):
            reg.referrers("app", subject)
    assert len(server.requests) == 2  # the ping and one page: the repeat is never sent
