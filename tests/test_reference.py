"""Tests of reginsight.registry._reference: the reference grammar and Docker Hub rules."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reginsight._errors import InvalidDigest, InvalidReference
from reginsight.registry._digest import Digest
from reginsight.registry._reference import (
    DOCKER_HUB_REGISTRY,
    Reference,
    parse_reference,
    validate_reference,
    validate_repository,
    validate_tag,
)

HUB = "registry-1.docker.io"
D256 = "sha256:" + "0123456789abcdef" * 4
D512 = "sha512:" + "0123456789abcdef" * 8


def test_hub_constant() -> None:
    assert DOCKER_HUB_REGISTRY == HUB


# --- validate_repository ---------------------------------------------------------

VALID_REPOSITORIES = [
    "a",
    "0",
    "ubuntu",
    "library/ubuntu",
    "a/b/c/d",
    "a.b",
    "a_b",
    "a__b",
    "a-b",
    "a---b",
    "a1/2b/c3.d_e__f-g",
    "a" * 255,
    "/".join(["ab"] * 85),  # 254 chars of many components
]


@pytest.mark.parametrize("name", VALID_REPOSITORIES)
def test_validate_repository_valid(name: str) -> None:
    assert validate_repository(name) is name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("/a", "empty path component"),
        ("/", "empty path component"),
        ("..", "invalid path component '..'"),
        (".", "invalid path component"),
        ("a/../b", "invalid path component '..'"),
        ("a/./b", "invalid path component '.'"),
        ("%2e", "invalid path component '%2e'"),
        ("a/%2e%2e/b", "invalid path component"),
        ("a?b", "invalid path component"),
        ("a#b", "invalid path component"),
        ("a b", "invalid path component"),
        ("a\n", "invalid path component"),
        ("a\x00b", "invalid path component"),
        ("Ubuntu", "must be lowercase"),
        ("team/App", "must be lowercase"),
        ("-a", "invalid path component"),
        ("a-", "invalid path component"),
        ("_a", "invalid path component"),
        ("a.", "invalid path component"),
        ("a___b", "invalid path component"),
        ("a..b", "invalid path component"),
        ("a._b", "invalid path component"),
        ("localhost:5000/a", "invalid path component"),
        ("\u00fcber", "invalid path component"),
        ("\u0661", "invalid path component"),
        ("a" * 256, "256 characters long, at most 255"),
        ("a" * 300, "300 characters long, at most 255"),
    ],
)
def test_validate_repository_invalid(name: str, why: str) -> None:
    with pytest.raises(InvalidReference) as info:
        validate_repository(name)
    assert not isinstance(info.value, InvalidDigest)
    assert why in str(info.value)


def test_message_truncates_long_value() -> None:
    name = "a" * 300
    with pytest.raises(InvalidReference) as info:
        validate_repository(name)
    message = str(info.value)
    assert repr("a" * 80) in message
    assert name not in message
    assert "(300 chars)" in message


@pytest.mark.parametrize("func", [validate_repository, validate_tag, validate_reference])
@pytest.mark.parametrize("value", [None, 1, b"ubuntu", ["ubuntu"], 1.5])
def test_validators_reject_non_str(func, value: object) -> None:
    with pytest.raises(InvalidReference, match="must be a str"):
        func(value)


# --- validate_tag ----------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["latest", "v1.2.3", "1", "_x", "A", "UPPER_case", "1-2_3.4", "a--", "a" * 128]
)
def test_validate_tag_valid(tag: str) -> None:
    assert validate_tag(tag) is tag


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        ("", "empty"),
        (".x", "[A-Za-z0-9_]"),
        ("-x", "[A-Za-z0-9_]"),
        ("..", "[A-Za-z0-9_]"),
        ("%2e", "[A-Za-z0-9_]"),
        ("a b", "[A-Za-z0-9_]"),
        ("a/b", "[A-Za-z0-9_]"),
        ("a:b", "[A-Za-z0-9_]"),
        ("a?b", "[A-Za-z0-9_]"),
        ("a#b", "[A-Za-z0-9_]"),
        ("a@b", "[A-Za-z0-9_]"),
        ("a\n", "[A-Za-z0-9_]"),
        ("caf\u00e9", "[A-Za-z0-9_]"),  # \w without re.ASCII would accept it
        ("\u00e9", "[A-Za-z0-9_]"),
        ("\u0661", "[A-Za-z0-9_]"),  # an Arabic-Indic digit
        ("a" * 129, "129 characters long, at most 128"),
        ("a" * 300, "300 characters long"),
    ],
)
def test_validate_tag_invalid(tag: str, why: str) -> None:
    with pytest.raises(InvalidReference) as info:
        validate_tag(tag)
    assert why in str(info.value)


# --- validate_reference ----------------------------------------------------------


@pytest.mark.parametrize("ref", ["latest", "v1.0", "_", D256, D512])
def test_validate_reference_valid(ref: str) -> None:
    assert validate_reference(ref) is ref


@pytest.mark.parametrize(
    "ref",
    [
        "sha256:" + "a" * 63,
        "sha256:" + "A" * 64,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha512:" + "a" * 64,
        "a:b",
        ":",
        D256 + "?x",
    ],
)
def test_validate_reference_bad_digest(ref: str) -> None:
    with pytest.raises(InvalidDigest):
        validate_reference(ref)


@pytest.mark.parametrize("ref", ["", "..", "a/b", "%2e", "a?b", "a#b", "-x", "\u00e9", "a" * 200])
def test_validate_reference_bad_tag(ref: str) -> None:
    with pytest.raises(InvalidReference, match="neither a digest nor a tag") as info:
        validate_reference(ref)
    assert not isinstance(info.value, InvalidDigest)


# --- parse_reference -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("ubuntu", HUB, "library/ubuntu", "latest", None),
        ("ubuntu:22.04", HUB, "library/ubuntu", "22.04", None),
        ("user/app:1", HUB, "user/app", "1", None),
        ("docker.io/ubuntu", HUB, "library/ubuntu", "latest", None),
        ("index.docker.io/library/ubuntu:x", HUB, "library/ubuntu", "x", None),
        ("docker.io/library/foo/bar", HUB, "library/foo/bar", "latest", None),
        ("registry-1.docker.io/ubuntu", HUB, "library/ubuntu", "latest", None),
        ("localhost", HUB, "library/localhost", "latest", None),
        ("localhost/foo", "localhost", "foo", "latest", None),
        (f"localhost:5000/a/b@{D256}", "localhost:5000", "a/b", None, D256),
        ("example.com/team/app:v1.2.3-rc_1", "example.com", "team/app", "v1.2.3-rc_1", None),
        ("Example.COM/app", "Example.COM", "app", "latest", None),
        ("Foo/bar", "Foo", "bar", "latest", None),  # uppercase: a domain, as in docker
        ("foo:123/bar", "foo:123", "bar", "latest", None),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
        ("[fe80::1]/x", "[fe80::1]", "x", "latest", None),
        ("ghcr.io/a.b/c__d/e---f:TAG", "ghcr.io", "a.b/c__d/e---f", "TAG", None),
        (f"quay.io/a@{D512}", "quay.io", "a", None, D512),
        (f"ubuntu:22.04@{D256}", HUB, "library/ubuntu", "22.04", D256),
        ("example.com/" + "a" * 255, "example.com", "a" * 255, "latest", None),
        ("a" * 247, HUB, "library/" + "a" * 247, "latest", None),
    ],
)
def test_parse_valid(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert ref == Reference(registry, repository, tag, digest)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("/a", "empty path component"),
        ("example.com/", "empty"),
        ("docker.io/", "empty"),
        ("example.com//a", "empty path component"),
        ("..", "invalid path component"),
        ("a/../b", "invalid path component '..'"),
        ("example.com/a/../b", "invalid path component '..'"),
        ("%2e", "invalid path component '%2e'"),
        ("a/%2e%2e/b", "invalid path component"),
        ("a?b", "invalid path component"),
        ("a#b", "invalid path component"),
        ("ubuntu:1?x", "[A-Za-z0-9_]"),
        ("ubuntu:1#x", "[A-Za-z0-9_]"),
        ("Ubuntu", "must be lowercase"),
        ("user/App", "must be lowercase"),
        ("example.com/Team/app", "must be lowercase"),
        ("a" * 300, "at most 255"),
        ("a" * 248, "256 characters long"),  # library/ counts towards the limit
        ("-a", "invalid path component"),
        ("a/-b", "invalid path component"),
        ("ubuntu:", "tag is empty"),
        ("ubuntu:-x", "[A-Za-z0-9_]"),
        ("ubuntu:caf\u00e9", "[A-Za-z0-9_]"),
        ("ubuntu:" + "a" * 129, "at most 128"),
        ("a:b:c", "[A-Za-z0-9_]"),
        ("localhost:99999/a", "not between 1 and 65535"),
        ("localhost:0/a", "not between 1 and 65535"),
        ("localhost:" + "9" * 5000 + "/a", "longer than 1024"),
        ("localhost:" + "9" * 500 + "/a", "not between 1 and 65535"),
        ("exa_mple.com/a", "invalid registry domain"),
        ("-example.com/a", "invalid registry domain"),
        ("example..com/a", "invalid registry domain"),
        ("example.com:/a", "invalid registry domain"),
        ("[::1/a", "invalid registry domain"),
        ("http://example.com/a", "invalid registry domain"),
        ("\u00c9cole/a", "invalid registry domain"),
        ("a b", "invalid path component"),
        (" ubuntu", "invalid path component"),
        ("ubuntu\n", "invalid path component"),
        ("ubuntu\x00", "invalid path component"),
        ("x" * 2000, "longer than 1024"),
    ],
)
def test_parse_invalid(text: str, why: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert not isinstance(info.value, InvalidDigest)
    assert why in str(info.value)
    if text:
        assert repr(text[:80]) in str(info.value)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ubuntu@", "empty"),
        ("ubuntu@sha256:" + "a" * 63, "64 hex characters, got 63"),
        ("ubuntu@sha256:" + "A" * 64, "lowercase"),
        ("ubuntu@md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm"),
        ("ubuntu@latest", "algorithm:hex"),
        (f"ubuntu@{D256}@{D256}", "[a-zA-Z0-9=_-]"),
        (f"ubuntu@{D256}?x", "[a-zA-Z0-9=_-]"),
        ("user@host:5000/a", "[a-zA-Z0-9=_-]"),
    ],
)
def test_parse_invalid_digest(text: str, why: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        parse_reference(text)
    assert why in str(info.value)
    assert repr(text[:80]) in str(info.value)


@pytest.mark.parametrize("value", [None, 1, b"ubuntu", ["ubuntu"]])
def test_parse_rejects_non_str(value: object) -> None:
    with pytest.raises(InvalidReference, match="must be a str"):
        parse_reference(value)  # type: ignore[arg-type]


def test_default_tag() -> None:
    assert parse_reference("ubuntu", default_tag=None).tag is None
    assert parse_reference("ubuntu", default_tag="stable").tag == "stable"
    assert parse_reference("ubuntu:1", default_tag=None).tag == "1"
    # A digest alone pins the image; no default tag is invented next to it.
    assert parse_reference(f"ubuntu@{D256}").tag is None
    with pytest.raises(InvalidReference):
        parse_reference("ubuntu", default_tag="bad tag")


# --- Reference -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical", "familiar", "reference"),
    [
        ("ubuntu", f"{HUB}/library/ubuntu:latest", "ubuntu:latest", "latest"),
        ("docker.io/library/ubuntu:22.04", f"{HUB}/library/ubuntu:22.04", "ubuntu:22.04", "22.04"),
        ("user/app:1", f"{HUB}/user/app:1", "user/app:1", "1"),
        ("library/foo/bar", f"{HUB}/library/foo/bar:latest", "library/foo/bar:latest", "latest"),
        (
            f"localhost:5000/a/b@{D256}",
            f"localhost:5000/a/b@{D256}",
            f"localhost:5000/a/b@{D256}",
            D256,
        ),
        (f"ubuntu:1@{D256}", f"{HUB}/library/ubuntu:1@{D256}", f"ubuntu:1@{D256}", D256),
        ("ghcr.io/o/r:t", "ghcr.io/o/r:t", "ghcr.io/o/r:t", "t"),
        # Short forms that would read back with a domain keep the registry.
        ("docker.io/a.b/c", f"{HUB}/a.b/c:latest", f"{HUB}/a.b/c:latest", "latest"),
        (
            "docker.io/localhost/c",
            f"{HUB}/localhost/c:latest",
            f"{HUB}/localhost/c:latest",
            "latest",
        ),
    ],
)
def test_forms(text: str, canonical: str, familiar: str, reference: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == canonical
    assert ref.familiar == familiar
    assert ref.reference == reference
    assert parse_reference(familiar) == ref


def test_reference_without_tag_or_digest_uses_latest() -> None:
    ref = Reference("example.com", "a")
    assert ref.reference == "latest"
    assert str(ref) == "example.com/a"
    assert ref.name == "example.com/a"


def test_with_tag_and_with_digest() -> None:
    ref = parse_reference("example.com/a:1")
    assert ref.with_tag("2") == Reference("example.com", "a", "2")
    pinned = ref.with_digest(Digest.parse(D256))
    assert pinned == Reference("example.com", "a", "1", D256)
    assert pinned.reference == D256
    assert ref.with_digest(D512).digest == D512
    assert pinned.with_tag("3").digest == D256
    assert ref.tag == "1"  # the original is untouched
    with pytest.raises(InvalidReference):
        ref.with_tag("bad tag")
    with pytest.raises(InvalidDigest):
        ref.with_digest("sha256:abc")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"registry": "", "repository": "a"}, InvalidReference),
        ({"registry": "bad_host", "repository": "a"}, InvalidReference),
        ({"registry": None, "repository": "a"}, InvalidReference),
        ({"registry": "example.com", "repository": "A"}, InvalidReference),
        ({"registry": "example.com", "repository": "a/../b"}, InvalidReference),
        ({"registry": "example.com", "repository": "a", "tag": ""}, InvalidReference),
        ({"registry": "example.com", "repository": "a", "digest": "sha256:0"}, InvalidDigest),
    ],
)
def test_reference_constructor_validates(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        Reference(**kwargs)


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_reference("ubuntu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/ubuntu:latest")} == {ref}


# --- properties ------------------------------------------------------------------

# Characters references are made of, plus ones that must break them.
REFERENCE_ALPHABET = "abcAB019._-/:@[]%?# \n\u00e9\u0661\x00"
REFERENCEISH = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=REFERENCE_ALPHABET, max_size=80),
    st.from_regex(r"[a-z.:]{0,12}/[a-zA-Z0-9/._-]{0,30}(:[\w.-]{0,10})?(@[a-z0-9:]{0,80})?"),
)


@settings(max_examples=300)
@given(REFERENCEISH)
def test_arbitrary_text_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(str(ref)) == ref


@settings(max_examples=300)
@given(REFERENCEISH)
def test_arbitrary_text_validators_return_or_raise(text: str) -> None:
    for validate in (validate_repository, validate_tag, validate_reference):
        with contextlib.suppress(InvalidReference):
            assert validate(text) is text


@settings(max_examples=100)
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text()), st.floats()))
def test_arbitrary_objects_raise_invalid_reference(value: object) -> None:
    for func in (parse_reference, validate_repository, validate_tag, validate_reference):
        with pytest.raises(InvalidReference):
            func(value)


# The path-component grammar with bounded repetitions, so 4 components stay under 255.
PATH_COMPONENT = st.from_regex(
    r"[a-z0-9]{1,10}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,10}){0,3}", fullmatch=True
)
PATHS = st.lists(PATH_COMPONENT, min_size=1, max_size=4).map("/".join)
TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
DIGESTS = st.one_of(
    st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True),
    st.from_regex(r"sha512:[0-9a-f]{128}", fullmatch=True),
)
HOST_COMPONENT = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
PORTS = st.integers(1, 65535).map(lambda port: f":{port}")
# Only shapes that docker recognises as a domain: with '.', with a port, or localhost.
DOMAINS = st.one_of(
    st.lists(HOST_COMPONENT, min_size=2, max_size=4).map(".".join),
    st.tuples(HOST_COMPONENT, PORTS).map("".join),
    st.tuples(st.lists(HOST_COMPONENT, min_size=2, max_size=3).map(".".join), PORTS).map("".join),
    st.just("localhost"),
    # Bracketed IPv6 literal: it needs a ':' to be recognised as a domain at all.
    st.from_regex(r"\[[0-9a-fA-F]{0,4}:[0-9a-fA-F:]{0,16}\](?::[1-9][0-9]{0,3})?", fullmatch=True),
    st.sampled_from(["docker.io", "index.docker.io", HUB]),
)


@settings(max_examples=300)
@given(
    domain=st.none() | DOMAINS,
    path=PATHS,
    tag=st.none() | TAGS,
    digest=st.none() | DIGESTS,
)
def test_generated_valid_references(
    domain: str | None, path: str, tag: str | None, digest: str | None
) -> None:
    assert len(path) <= 247  # room for a library/ prefix, by construction of PATHS
    first, slash, _ = path.partition("/")
    if domain is None and slash:
        # Such a first component would be read as a domain, by docker as well.
        assume("." not in first and first != "localhost")
    text = (f"{domain}/" if domain else "") + path
    text += (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = parse_reference(text)

    hub = domain in (None, "docker.io", "index.docker.io", HUB)
    assert ref.registry == (HUB if hub else domain)
    assert ref.repository == (f"library/{path}" if hub and "/" not in path else path)
    assert ref.tag == (tag if tag or digest else "latest")
    assert ref.digest == digest
    assert ref.reference == (digest or tag or "latest")
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar) == ref


@settings(max_examples=200)
@given(path=PATHS, tag=TAGS, digest=DIGESTS)
def test_generated_parts_validate(path: str, tag: str, digest: str) -> None:
    assert validate_repository(path) == path
    assert validate_tag(tag) == tag
    assert validate_reference(tag) == tag
    assert validate_reference(digest) == digest


@settings(max_examples=200)
@given(path=PATHS, data=st.data())
def test_uppercase_anywhere_in_path_is_rejected(path: str, data: st.DataObject) -> None:
    index = data.draw(st.sampled_from([i for i, c in enumerate(path) if c.isalpha()] or [0]))
    assume(path[index].isalpha())
    bad = path[:index] + path[index].upper() + path[index + 1 :]
    with pytest.raises(InvalidReference, match="must be lowercase"):
        validate_repository(bad)
    with pytest.raises(InvalidReference):
        parse_reference(f"example.com/{bad}")
