"""Every verb of the protocol core as a pure build/interpret pair: no server, no I/O."""

from __future__ import annotations

import hashlib
import json

import pytest

import reginsight as ri
from reginsight import _mediatypes as mt
from reginsight.registry import protocol as proto

BASE = "http://127.0.0.1:5000"
DIGEST = "sha256:" + "a" * 64


def answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"", *,
           url: str = BASE + "/v2/x", method: str = "GET") -> proto.Answer:
    return proto.Answer.of(status, headers or {}, body, url=url, method=method)


def error_body(code: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": "m"}]}).encode()


def sha(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


IMAGE = json.dumps({
    "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
    "config": {"mediaType": mt.OCI_CONFIG, "digest": DIGEST, "size": 2},
    "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "b" * 64, "size": 5}],
}).encode()


# ------------------------------------------------------------------ manifests


def test_manifest_get_asks_every_type_with_a_cap_and_a_pull_scope():
    request = proto.get_manifest("team/app", "v1")
    assert (request.method, request.url) == ("GET", "/v2/team/app/manifests/v1")
    assert request.headers["Accept"] == mt.MANIFEST_ACCEPT
    assert request.scope == ("repository:team/app:pull",)
    assert request.limit == proto.MANIFEST_LIMIT


def test_manifest_get_is_checked_against_the_announced_digest():
    good = answer(200, {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": sha(IMAGE)},
                  IMAGE)
    manifest = proto.interpret_manifest(good, "v1")
    assert manifest.digest == sha(IMAGE) and manifest.layers[0].size == 5
    lying = answer(200, {"Docker-Content-Digest": DIGEST}, IMAGE)
    with pytest.raises(ri.DigestMismatch):
        proto.interpret_manifest(lying, "v1")
    with pytest.raises(ri.DigestMismatch):  # by digest: the digest asked for wins
        proto.interpret_manifest(answer(200, {}, IMAGE), DIGEST)
    with pytest.raises(ri.ProtocolViolation):
        proto.interpret_manifest(answer(200, {"Docker-Content-Digest": "md5:x"}, IMAGE), "v1")


def test_manifest_errors_are_typed_with_their_codes():
    with pytest.raises(ri.NotFound) as caught:
        proto.interpret_manifest(answer(404, {}, error_body("MANIFEST_UNKNOWN")), "v1")
    assert caught.value.codes == (proto.ErrorCode.MANIFEST_UNKNOWN,)
    with pytest.raises(ri.RateLimited) as limited:
        proto.interpret_manifest(answer(429, {"Retry-After": "7"}), "v1")
    assert limited.value.retry_after == 7


def test_manifest_head_gives_a_descriptor_or_asks_for_a_get():
    assert proto.head_manifest("a", "v1").limit is None  # HEAD lengths are the GET's
    found = proto.interpret_manifest_head(answer(200, {
        "Docker-Content-Digest": DIGEST, "Content-Length": "123",
        "Content-Type": f"{mt.OCI_INDEX}; charset=utf-8"}, method="HEAD"))
    assert found == ri.Descriptor(media_type=mt.OCI_INDEX, digest=DIGEST, size=123)
    assert proto.interpret_manifest_head(answer(200, {"Content-Length": "1"})) is None
    assert proto.interpret_manifest_head(answer(200, {"Docker-Content-Digest": DIGEST})) is None


def test_put_manifest_parses_once_and_checks_the_stored_digest():
    request, parsed = proto.put_manifest("a", "v1", IMAGE, None)
    assert (request.method, request.headers["Content-Type"]) == ("PUT", mt.OCI_MANIFEST)
    assert request.content == IMAGE and request.scope == ("repository:a:pull,push",)
    ok = answer(201, {"Docker-Content-Digest": parsed.digest}, method="PUT")
    assert proto.interpret_put_manifest(ok, parsed) == sha(IMAGE)
    with pytest.raises(ri.DigestMismatch):
        proto.interpret_put_manifest(answer(201, {"Docker-Content-Digest": DIGEST}), parsed)
    with pytest.raises(ri.DigestMismatch):  # by digest: refused before anything is sent
        proto.put_manifest("a", DIGEST, IMAGE, None)
    with pytest.raises(ri.TooLarge):
        proto.put_manifest("a", "v1", b" " * (proto.MANIFEST_LIMIT + 1), None)


def test_a_schema1_refused_as_an_unknown_type_says_the_registry_dropped_schema1():
    unsigned = json.dumps({"schemaVersion": 1, "name": "a", "tag": "v1",
                           "architecture": "amd64", "fsLayers": [], "history": []}).encode()
    _, schema1 = proto.put_manifest("a", "v1", unsigned, mt.DOCKER_SCHEMA1)
    _, image = proto.put_manifest("a", "v1", IMAGE, None)
    unknown_type = json.dumps({"errors": [{  # v3.0.0's answer, word for word
        "code": "MANIFEST_INVALID", "message": "manifest invalid",
        "detail": f"unsupported manifest media type and no default available: "
                  f"{mt.DOCKER_SCHEMA1}"}]}).encode()
    with pytest.raises(ri.UnsupportedOperation, match=r"Distribution 3.*dropped schema1"):
        proto.interpret_put_manifest(answer(400, {}, unknown_type, method="PUT"), schema1)
    for parsed, body in ((image, unknown_type), (schema1, error_body("MANIFEST_INVALID"))):
        with pytest.raises(ri.ResponseError) as caught:  # not a schema1 type refused
            proto.interpret_put_manifest(answer(400, {}, body, method="PUT"), parsed)
        assert not isinstance(caught.value, ri.UnsupportedOperation)


def test_delete_takes_digests_and_untag_reads_digest_invalid_as_unsupported():
    with pytest.raises(ri.InvalidReference):
        proto.delete_manifest("a", "v1")
    request = proto.delete_manifest("a", DIGEST)
    assert (request.method, request.scope) == ("DELETE", ("repository:a:delete",))
    with pytest.raises(ri.UnsupportedOperation):
        proto.interpret_delete(answer(405, {}, error_body("UNSUPPORTED"), method="DELETE"))
    assert proto.untag("a", "v1").url == "/v2/a/manifests/v1"
    with pytest.raises(ri.UnsupportedOperation) as caught:
        proto.interpret_untag(answer(400, {}, error_body("DIGEST_INVALID")), registry=BASE)
    assert caught.value.status == 400
    # the OCI spec: a registry without tag deletion answers 400 or 405 (Harbor: UNSUPPORTED)
    for status, code in ((400, "UNSUPPORTED"), (405, "UNSUPPORTED"), (405, "")):
        with pytest.raises(ri.UnsupportedOperation, match="does not delete by tag"):
            proto.interpret_untag(answer(status, {}, error_body(code) if code else b""),
                                  registry=BASE)
    with pytest.raises(ri.PermissionDenied):
        proto.interpret_untag(answer(403, {}, error_body("DENIED")), registry=BASE)
    assert proto.interpret_untag(answer(202, method="DELETE"), registry=BASE) is None


# ------------------------------------------------------------------ listings


def test_catalog_pages_follow_links_on_the_same_origin_only():
    first = proto.catalog_page(page_size=100)
    assert (first.url, first.scope) == ("/v2/_catalog?n=100", ("registry:catalog:*",))
    page = proto.interpret_catalog_page(first, answer(
        200, {"Link": '</v2/_catalog?last=b&n=100>; rel="next"'},
        b'{"repositories": ["a", "b"]}', url=BASE + first.url))
    assert page.entries == ("a", "b") and not page.again
    assert page.next.url == BASE + "/v2/_catalog?last=b&n=100"
    assert page.next.scope == first.scope
    last = proto.interpret_catalog_page(page.next, answer(200, {}, b'{"repositories": []}'))
    assert last.entries == () and last.next is None
    with pytest.raises(ri.ProtocolViolation):
        proto.interpret_catalog_page(first, answer(
            200, {"Link": '<http://127.0.0.2:5000/v2/_catalog>; rel="next"'},
            b'{"repositories": []}', url=BASE + first.url))
    with pytest.raises(ri.ProtocolViolation):  # a name no registry may hold
        proto.interpret_catalog_page(first, answer(200, {}, b'{"repositories": ["../x"]}'))


def test_a_refused_page_size_is_asked_again_smaller_down_to_ten():
    refused = answer(400, {}, error_body("PAGINATION_NUMBER_INVALID"))
    request = proto.catalog_page(page_size=100)
    page = proto.interpret_catalog_page(request, refused)
    assert page.again and page.entries == () and page.next.url == "/v2/_catalog?n=50"
    sizes = []
    while page.again:
        sizes.append(page.next.url.rsplit("=", 1)[1])
        try:
            page = proto.interpret_catalog_page(page.next, refused)
        except ri.ResponseError as exc:
            assert exc.status == 400
            break
    assert sizes == ["50", "25", "12", "10"]


def test_following_pages_are_asked_big_only_where_the_registry_pages_by_n():
    paging = proto.Paging("tags of a", page_size=1000)
    first = proto.tags_page("a")
    assert first.url == "/v2/a/tags/list" and proto.tags_page("a", page_size=7).url == \
        "/v2/a/tags/list?n=7"

    def page_linking(link: str | None, *, again: bool = False) -> proto.Page:
        following = None if link is None else proto.Request(method="GET", url=link)
        return proto.Page(("t",), following, again=again)

    own = BASE + "/v2/a/tags/list?last=t&n=100"
    bigger = paging.follow(page_linking(own))
    assert bigger.url == BASE + "/v2/a/tags/list?last=t&n=1000"  # last kept, n raised
    assert paging.follow(page_linking(BASE + "/v2/a/tags/list?last=u&n=1000")).url.endswith(
        "last=u&n=1000")  # as big already: as sent
    assert paging.follow(page_linking(BASE + "/v2/a/tags/list?cursor=x")).url.endswith(
        "?cursor=x")  # a cursor of its own, no n: as sent
    assert paging.follow(page_linking(None)) is None

    # asked bigger and refused: the registry's own page, and never bigger again
    paging.follow(page_linking(own))
    assert paging.refused(ri.ResponseError("x", status=500, url=BASE)) is None
    paging.follow(page_linking(own))
    assert paging.refused(ri.ResponseError("x", status=400, url=BASE)).url == own
    assert paging.page_size is None
    assert paging.follow(page_linking(BASE + "/v2/a/tags/list?last=v&n=100")).url.endswith(
        "last=v&n=100")
    # Distribution's refusal of the bigger size (an "again" page, halved): its own page
    halving = proto.Paging("tags of a", page_size=1000)
    halving.follow(page_linking(own))
    assert halving.follow(page_linking(BASE + "/v2/a/tags/list?last=t&n=500",
                                       again=True)).url == own
    # the caller's size refused and halved: no later page bigger than what was accepted
    callers = proto.Paging("the catalog", page_size=1500)
    assert callers.follow(page_linking("/v2/_catalog?n=750", again=True)).url.endswith("750")
    assert callers.page_size == 750
    with pytest.raises(ValueError, match="page_size"):
        proto.tags_page("a", page_size=0)
    with pytest.raises(ValueError, match="page_size"):
        proto.catalog_page(page_size=True)


def test_tag_pages_accept_null_and_refuse_a_non_list():
    request = proto.tags_page("team/app")
    assert request.url == "/v2/team/app/tags/list" and request.limit == proto.LIST_PAGE_LIMIT
    assert proto.interpret_tags_page(request, answer(200, {}, b'{"tags": null}')).entries == ()
    with pytest.raises(ri.ProtocolViolation):
        proto.interpret_tags_page(request, answer(200, {}, b'{"tags": "v1"}'))
    with pytest.raises(ri.ProtocolViolation):
        proto.interpret_tags_page(request, answer(200, {}, b"<html>"))


# ------------------------------------------------------------------ blobs


def test_blob_head_reads_presence_and_size():
    request = proto.head_blob("a", DIGEST)
    assert (request.method, request.limit) == ("HEAD", None)
    assert proto.interpret_has_blob(answer(200, method="HEAD")) is True
    assert proto.interpret_has_blob(answer(404, method="HEAD")) is False
    with pytest.raises(ri.AuthenticationError):
        proto.interpret_has_blob(answer(401, method="HEAD"))
    assert proto.interpret_blob_size(answer(200, {"Content-Length": "42"})) == 42
    with pytest.raises(ri.ProtocolViolation):
        proto.interpret_blob_size(answer(200, {}))


def test_blob_get_resumes_with_range_and_skips_when_ignored():
    assert proto.get_blob("a", DIGEST).headers == {"Accept-Encoding": "identity"}
    resumed = proto.get_blob("a", DIGEST, offset=10)
    assert resumed.headers["Range"] == "bytes=10-" and resumed.limit is None
    assert proto.resume_skip(answer(206, {"Content-Range": "bytes 10-99/100"}), 10) == 0
    assert proto.resume_skip(answer(200, {}), 10) == 10  # the whole blob again: drop 10
    assert proto.interpret_blob_start(answer(200, {"Content-Length": "100"})) == 100
    with pytest.raises(ri.NotFound):
        proto.interpret_blob_start(answer(404, {}, error_body("BLOB_UNKNOWN")))


def test_upload_session_start_patch_status_finish_cancel():
    start = proto.start_upload("a")
    assert (start.method, start.url, start.scope) == (
        "POST", "/v2/a/blobs/uploads/", ("repository:a:pull,push",))
    session = proto.interpret_start_upload(answer(
        202, {"Location": "/v2/a/blobs/uploads/u1?_state=abc%3D"},
        url=BASE + "/v2/a/blobs/uploads/", method="POST"))
    assert session == BASE + "/v2/a/blobs/uploads/u1?_state=abc%3D"
    with pytest.raises(ri.ProtocolViolation):
        proto.interpret_start_upload(answer(202, {}, method="POST"))

    patch = proto.patch_chunk("a", session, b"0123456789", 20)
    assert patch.headers["Content-Range"] == "20-29" and patch.content == b"0123456789"
    progress = proto.interpret_patch(answer(202, {"Location": session, "Range": "0-29"}))
    assert proto.accepted_offset(progress, offset=20, length=10, repository="a") == 30
    partial = proto.interpret_upload_status(answer(204, {"Location": session, "Range": "0-24"}))
    assert proto.accepted_offset(partial, offset=20, length=10, repository="a") == 25
    with pytest.raises(ri.ProtocolViolation):  # more than was ever sent
        proto.accepted_offset(proto.UploadProgress(session, 99), offset=20, length=10,
                              repository="a")

    digest = ri.Digest.of(b"data")
    finish = proto.finish_upload("a", session, digest, b"data")
    assert finish.url == (f"{session}&digest={str(digest).replace(':', '%3A')}")
    stored = answer(201, {"Docker-Content-Digest": str(digest)}, method="PUT")
    assert proto.interpret_finish_upload(stored, digest) == str(digest)
    with pytest.raises(ri.DigestMismatch):
        proto.interpret_finish_upload(answer(400, {}, error_body("DIGEST_INVALID")), digest)
    with pytest.raises(ri.DigestMismatch):
        proto.interpret_finish_upload(answer(201, {"Docker-Content-Digest": DIGEST}), digest)
    assert proto.cancel_upload("a", session).method == "DELETE"


def test_mount_is_201_or_a_session_to_cancel():
    request = proto.mount_blob("team/b", DIGEST, "team/a")
    assert request.url == f"/v2/team/b/blobs/uploads/?mount={DIGEST.replace(':', '%3A')}" \
                          "&from=team%2Fa"
    assert request.scope == ("repository:team/b:pull,push", "repository:team/a:pull")
    assert proto.interpret_mount(answer(201, method="POST")) == proto.MountResult(True)
    opened = proto.interpret_mount(answer(202, {"Location": "/v2/team/b/blobs/uploads/u2"},
                                          url=BASE + request.url, method="POST"))
    assert opened == proto.MountResult(False, BASE + "/v2/team/b/blobs/uploads/u2")


def test_a_write_whose_answer_names_another_digest_as_stored_is_a_mismatch():
    other = "sha256:" + "e" * 64
    told = {"Location": f"/v2/team/b/blobs/{other}"}
    with pytest.raises(ri.DigestMismatch, match="Location naming sha256:e") as refused:
        proto.interpret_mount(answer(201, told, method="POST"), DIGEST, what="mount into b")
    assert (refused.value.expected, refused.value.actual) == (DIGEST, other)
    with pytest.raises(ri.DigestMismatch, match="Docker-Content-Digest naming"):
        proto.interpret_finish_upload(answer(201, {"Docker-Content-Digest": other},
                                             method="PUT"), ri.parse_digest(DIGEST))
    # a Location naming its own digest, a tag or nothing says nothing against it
    for location in (f"/v2/team/b/blobs/{DIGEST}", "/v2/team/b/manifests/v1", ""):
        assert proto.interpret_mount(answer(201, {"Location": location}, method="POST"),
                                     DIGEST) == proto.MountResult(True)


# ------------------------------------------------------------------ referrers


def _index(*descriptors: dict) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                       "manifests": list(descriptors)}).encode()


def test_referrers_list_filter_and_page_or_say_unsupported():
    sbom = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "c" * 64, "size": 10,
            "artifactType": "application/spdx+json"}
    sig = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "d" * 64, "size": 11,
           "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}
    request = proto.referrers("a", DIGEST, artifact_type="application/spdx+json")
    assert request.url == f"/v2/a/referrers/{DIGEST}?artifactType=application%2Fspdx%2Bjson"
    assert request.headers["Accept"] == mt.OCI_INDEX
    found, following = proto.interpret_referrers(request, answer(
        200, {"Link": f'</v2/a/referrers/{DIGEST}?last=x>; rel="next"'}, _index(sbom, sig),
        url=BASE + request.url), artifact_type="application/spdx+json")
    assert [d.digest for d in found] == [sbom["digest"]]  # filtered here: not applied there
    assert following.url == f"{BASE}/v2/a/referrers/{DIGEST}?last=x"
    both, _ = proto.interpret_referrers(request, answer(200, {}, _index(sbom, sig)))
    assert len(both) == 2
    assert proto.interpret_referrers(request, answer(404)) is None
    assert proto.interpret_referrers(request, answer(405)) is None
    with pytest.raises(ri.ProtocolViolation):
        proto.interpret_referrers(request, answer(200, {}, b"[]"))
    assert proto.fallback_tag(DIGEST) == "sha256-" + "a" * 64


def test_ping_accepts_a_registry_and_names_what_is_not_one():
    assert proto.ping_request().url == "/v2/"
    proto.interpret_ping(answer(200, {"Docker-Distribution-API-Version": "registry/2.0"}),
                         registry=BASE, has_credentials=False)
    with pytest.raises(ri.NotARegistry):
        proto.interpret_ping(answer(200, {}, b"<html>"), registry=BASE, has_credentials=False)
    with pytest.raises(ri.AuthenticationError, match="refused the credentials"):
        proto.interpret_ping(answer(401), registry=BASE, has_credentials=True)


# ------------------------------------------------------------------ dialects


@pytest.mark.parametrize("status", [401, 403, 404, 405])
def test_a_refused_catalog_is_catalog_unavailable(status):
    first = proto.catalog_page()
    with pytest.raises(ri.CatalogUnavailable) as refused:
        proto.interpret_catalog_page(first, answer(status, {}, b"404 page not found"))
    assert refused.value.status == status and isinstance(refused.value, ri.ResponseError)
    with pytest.raises(ri.ResponseError) as other:  # not a refusal: a failure
        proto.interpret_catalog_page(first, answer(500))
    assert not isinstance(other.value, ri.CatalogUnavailable)
    page = proto.interpret_catalog_page(first, answer(
        200, {"Link": '</v2/_catalog?last=a&n=100>; rel="next"'}, b'{"repositories": ["a"]}'))
    with pytest.raises(ri.NotFound) as later:  # a broken Link, not a registry that hides
        proto.interpret_catalog_page(page.next, answer(404))
    assert not isinstance(later.value, ri.CatalogUnavailable)


def test_a_generic_content_type_is_no_media_type():
    unnamed = json.loads(IMAGE)
    del unnamed["mediaType"]
    raw = json.dumps(unnamed).encode()
    json_type = {"Content-Type": "application/json; charset=utf-8",
                 "Docker-Content-Digest": sha(raw), "Content-Length": str(len(raw))}
    assert proto.interpret_manifest(answer(200, json_type, raw), "t").media_type == (
        mt.OCI_MANIFEST)
    for served in ("text/json", "application/problem+json", "text/html", "", "x"):
        headers = {**json_type, "Content-Type": served}
        assert proto.interpret_manifest(answer(200, headers, raw), "t").media_type == (
            mt.OCI_MANIFEST), served
        head = proto.interpret_manifest_head(answer(200, headers, method="HEAD"))
        assert head is not None and head.media_type is None, served
    named = proto.interpret_manifest(answer(200, {**json_type, "Docker-Content-Digest":
                                                  sha(IMAGE)}, IMAGE), "t")
    assert named.media_type == mt.OCI_MANIFEST
    head = proto.interpret_manifest_head(answer(200, json_type, method="HEAD"))
    assert head is not None and head.media_type is None
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert ri.parse_manifest(index, content_type="text/plain").media_type == mt.OCI_INDEX
    assert ri.parse_manifest(b'{"schemaVersion": 2, "blobs": []}',
                             content_type="application/json").media_type == ""
    request, _ = proto.put_manifest("x", "t", raw, "application/json")
    assert request.headers["Content-Type"] == mt.OCI_MANIFEST


def test_pulls_and_fallbacks_are_marked():
    assert proto.get_manifest("x", "t").pull and not proto.get_manifest("x", "t").fallback
    assert proto.head_manifest("x", "t").fallback and not proto.head_manifest("x", "t").pull
    assert not proto.get_blob("x", DIGEST).pull


def test_rate_limit_headers_and_words():
    spent = proto.parse_rate_limit({"ratelimit-limit": "100;w=21600",
                                    "ratelimit-remaining": "0;w=21600"})
    assert spent == proto.RateLimit(limit=100, remaining=0, window=21600) and spent.spent
    assert spent.describe() == ("0 of 100 pulls left per 6 h window; pulls come back "
                                "within 6 h")
    reset = proto.parse_rate_limit({"ratelimit-remaining": "0", "ratelimit-reset": "90"})
    assert reset.describe() == "0 pulls left; it resets in 90 s"
    assert proto.parse_rate_limit({}) is None
    refused = proto.decipher_error(429, {"ratelimit-limit": "100;w=21600",
                                         "ratelimit-remaining": "0;w=21600"},
                                   error_body("TOOMANYREQUESTS"), method="GET", url=BASE)
    assert isinstance(refused, ri.RateLimited) and "pull budget is spent" in str(refused)
    busy = proto.decipher_error(429, {}, b"", method="GET", url=BASE)
    assert "budget" not in str(busy)


@pytest.mark.parametrize("body", [b"", b"  \n", b"{}", b"true", b'{"ok": 1}'])
def test_a_bare_or_json_200_ping_is_a_registry(body):
    proto.check_ping(200, {}, body, url=BASE, has_credentials=False)
