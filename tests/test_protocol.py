"""Pure protocol logic: no network."""

from __future__ import annotations

import email.utils

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reginsight as ri
from reginsight.registry import protocol as proto
from reginsight.registry._hosts import same_origin

BASE = "http://127.0.0.1:5000/v2/_catalog?n=100"


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("", None),
    ('</v2/_catalog?last=b&n=100>; rel="next"', "http://127.0.0.1:5000/v2/_catalog?last=b&n=100"),
    ("<?last=b>; rel=next", "http://127.0.0.1:5000/v2/_catalog?last=b"),
    ('<http://127.0.0.1:5000/v2/x?last=1>; rel="next"', "http://127.0.0.1:5000/v2/x?last=1"),
    ('</a>; rel="prev", </b>; rel="next"', "http://127.0.0.1:5000/b"),
    ('</a>; title="x, y"; rel="prev next"', "http://127.0.0.1:5000/a"),
    ('</a>; rel="prev"', None),
])
def test_next_link(header, expected):
    assert proto.next_link(header, BASE) == expected


@pytest.mark.parametrize("target", [
    "http://127.0.0.2:5000/v2/_catalog",
    "https://127.0.0.1:5000/v2/_catalog",
    "http://127.0.0.1:5001/v2/_catalog",
    "//evil.example/v2/_catalog",
    "http://169.254.169.254/latest/meta-data",
])
def test_next_link_to_another_origin_is_refused(target):
    with pytest.raises(ri.ProtocolViolation):
        proto.next_link(f'<{target}>; rel="next"', BASE)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_next_link_never_crashes(header):
    try:
        result = proto.next_link(header, BASE)
    except ri.ProtocolViolation:
        return
    assert result is None or same_origin(result, BASE)


def test_challenges():
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:a/b:pull,push", Basic realm="x\\"y"')
    bearer, basic = proto.parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert dict(bearer.params) == {"realm": "https://auth.example/token",
                                   "service": "registry.example",
                                   "scope": "repository:a/b:pull,push"}
    assert basic.scheme == "basic" and basic.params["realm"] == 'x"y'
    assert proto.parse_challenges("Basic") == [proto.Challenge("basic")]
    assert proto.parse_challenges(None) == []


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_challenges_never_crash(header):
    for challenge in proto.parse_challenges(header):
        assert challenge.scheme == challenge.scheme.lower()


def test_error_body_parsing():
    body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known",' \
           b'"detail":{"name":"x"}},{"nocode":1},"junk"]}'
    assert proto.parse_error_body(body) == (
        ri.ErrorDetail("NAME_UNKNOWN", "repository name not known", {"name": "x"}),)
    assert proto.parse_error_body(b"<html>") == ()
    assert proto.parse_error_body(b"[" * 100000) == ()


@pytest.mark.parametrize(("status", "cls"), [
    (401, ri.AuthenticationError), (403, ri.PermissionDenied), (404, ri.NotFound),
    (405, ri.UnsupportedOperation), (429, ri.RateLimited), (500, ri.ResponseError),
    (400, ri.ResponseError),
])
def test_decipher_error_maps_status(status, cls):
    error = proto.decipher_error(status, {"retry-after": "7"}, b"", method="GET",
                                 url="http://u:p@h:1/v2/a/tags/list?token=secret")
    assert type(error) is cls
    assert isinstance(error, ri.RegistryError)
    assert "secret" not in str(error) and "u:p" not in str(error)
    assert "http://h:1/v2/a/tags/list" in str(error)
    if cls is ri.RateLimited:
        assert error.retry_after == 7


def test_retry_after_forms():
    assert proto.parse_retry_after("120") == 120
    when = email.utils.formatdate(1_000_060, usegmt=True)
    assert proto.parse_retry_after(when, now=1_000_000) == pytest.approx(60)
    assert proto.parse_retry_after("soon") is None
    assert proto.parse_retry_after(None) is None


@pytest.mark.parametrize(("url", "base"), [
    ("localhost:5000", "http://localhost:5000"),
    ("127.0.0.1:5000/", "http://127.0.0.1:5000"),
    ("[::1]:5000", "http://[::1]:5000"),
    ("registry.example.com", "https://registry.example.com"),
    ("https://registry.example.com/v2/", "https://registry.example.com"),
    ("docker.io", "https://registry-1.docker.io"),
    ("index.docker.io", "https://registry-1.docker.io"),
    ("http://10.0.0.1:5000", "http://10.0.0.1:5000"),
])
def test_registry_url_normalisation(url, base):
    assert proto.parse_registry_url(url).base == base


def test_registry_url_credentials_are_split_out():
    parsed = proto.parse_registry_url("https://me:p%40ss@r.example")
    assert (parsed.base, parsed.username, parsed.password) == ("https://r.example", "me", "p@ss")
    assert "p@ss" not in repr(parsed)
    with pytest.raises(ri.InvalidReference) as caught:
        proto.parse_registry_url("https://me:topsecret@r.example/some/path")
    assert "topsecret" not in str(caught.value)


def test_check_ping():
    ok = {"docker-distribution-api-version": "registry/2.0"}
    proto.check_ping(200, ok, b"", url="u", has_credentials=False)
    bearer = {"www-authenticate": 'Bearer realm="https://a/token"'}
    with pytest.raises(ri.AuthenticationError, match="requires credentials"):
        proto.check_ping(401, bearer, b"", url="u", has_credentials=False)
    with pytest.raises(ri.AuthenticationError, match="refused the credentials"):
        proto.check_ping(401, {"www-authenticate": "Basic"}, b"", url="u", has_credentials=True)
    with pytest.raises(ri.NotARegistry):
        proto.check_ping(200, {}, b"<html>", url="u", has_credentials=False)
    with pytest.raises(ri.NotARegistry):
        proto.check_ping(302, {}, b"", url="u", has_credentials=False)


def test_paths_validate_before_building():
    assert proto.manifest_path("a/b", "latest") == "/v2/a/b/manifests/latest"
    with pytest.raises(ri.InvalidReference):
        proto.manifest_path("a/b", "../../x")
    with pytest.raises(ri.InvalidReference):
        proto.blob_path("a", "sha256:zz")


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_registry_urls_parse_or_raise_typed(text):
    try:
        parsed = proto.parse_registry_url(text)
    except ri.InvalidReference:
        return
    assert parsed.base.startswith(("http://", "https://"))
    httpx.URL(parsed.base)  # and httpx takes it: no bad URL surfaces later


@settings(max_examples=300)
@given(password=st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"),
                        max_size=30).map(lambda p: "S3cr3t" + p).filter(
                            lambda p: p.strip() == p),
       rest=st.sampled_from(["", "/", "/v2/", "/some/path", "/x?y=1", ":99999"]))
def test_a_password_in_a_url_never_reaches_a_message(password, rest):
    from urllib.parse import quote

    url = f"https://me:{quote(password, safe='')}@registry.example{rest}"
    try:
        parsed = proto.parse_registry_url(url)
    except ri.InvalidReference as exc:
        assert quote(password, safe="") not in str(exc)
        return
    assert parsed.password == password and password not in parsed.base
