"""Tests of reginsight.registry._digest: parsing, computing and stream verification."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reginsight._errors import DigestMismatch, InvalidDigest, InvalidReference
from reginsight.registry._digest import (
    SUPPORTED_ALGORITHMS,
    Digest,
    DigestVerifier,
    parse_digest,
    validate_digest,
)

HEX64 = "0123456789abcdef" * 4
HEX128 = HEX64 * 2
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("text", "algorithm", "hex_"),
    [
        (f"sha256:{HEX64}", "sha256", HEX64),
        (f"sha512:{HEX128}", "sha512", HEX128),
        (f"sha256:{EMPTY_SHA256}", "sha256", EMPTY_SHA256),
    ],
)
def test_parse_valid(text: str, algorithm: str, hex_: str) -> None:
    digest = parse_digest(text)
    assert digest == Digest(algorithm, hex_)
    assert (digest.algorithm, digest.hex) == (algorithm, hex_)
    assert str(digest) == text
    assert Digest.parse(text) == digest
    assert validate_digest(text) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("sha256", "algorithm:hex"),
        (HEX64, "algorithm:hex"),
        ("sha256:", "empty"),
        (f":{HEX64}", "empty"),
        (f"sha256:{HEX64[:-1]}", "64 hex characters, got 63"),
        (f"sha256:{HEX64}0", "64 hex characters, got 65"),
        (f"sha256:{HEX64.upper()}", "lowercase"),
        (f"sha256:{'g' * 64}", "not hexadecimal"),
        (f"sha256:{'=' * 64}", "not hexadecimal"),
        (f"sha512:{HEX64}", "128 hex characters, got 64"),
        (f"sha512:{HEX128.upper()}", "lowercase"),
        ("md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm 'md5'"),
        (f"sha384:{HEX64}{HEX64[:32]}", "unsupported algorithm"),
        (f"SHA256:{HEX64}", "malformed algorithm"),
        (f"sha-:{HEX64}", "malformed algorithm"),
        (f"sha256+b64u:{HEX64}", "unsupported algorithm"),
        (f"sha256:{HEX64}:{HEX64}", "[a-zA-Z0-9=_-]"),
        (f"sha256:{HEX64[:-1]}/", "[a-zA-Z0-9=_-]"),
        (f" sha256:{HEX64}", "malformed algorithm"),
        (f"sha256:{HEX64}\n", "[a-zA-Z0-9=_-]"),
        (f"sha256:{HEX64[:-1]}\u0660", "[a-zA-Z0-9=_-]"),
        ("sha256:%2e%2e", "[a-zA-Z0-9=_-]"),
        ("sha256:..", "[a-zA-Z0-9=_-]"),
        (f"sha256:{HEX64}?x", "[a-zA-Z0-9=_-]"),
        (f"sha256:{HEX64}#x", "[a-zA-Z0-9=_-]"),
        ("sha256:" + "a" * 300, "got 300"),
    ],
)
def test_parse_invalid(text: str, why: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        parse_digest(text)
    assert why in str(info.value)
    # The typed error is also an InvalidReference, and never a bare ValueError.
    assert isinstance(info.value, InvalidReference)
    with pytest.raises(InvalidDigest):
        validate_digest(text)
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


def test_message_names_value_truncated() -> None:
    text = "sha256:" + "a" * 300
    with pytest.raises(InvalidDigest) as info:
        parse_digest(text)
    message = str(info.value)
    assert repr(text[:80]) in message
    assert text not in message
    assert len(message) < 200


@pytest.mark.parametrize("value", [None, 42, b"sha256:" + HEX64.encode(), ["sha256", HEX64]])
def test_non_str_input(value: object) -> None:
    with pytest.raises(InvalidDigest, match="must be a str"):
        parse_digest(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidDigest, match="must be a str"):
        validate_digest(value)  # type: ignore[arg-type]


def test_constructor_validates() -> None:
    with pytest.raises(InvalidDigest, match="unsupported"):
        Digest("md5", "d41d8cd98f00b204e9800998ecf8427e")
    with pytest.raises(InvalidDigest, match="lowercase"):
        Digest("sha256", HEX64.upper())
    with pytest.raises(InvalidDigest, match="must be str"):
        Digest("sha256", None)  # type: ignore[arg-type]


def test_digest_is_frozen_and_hashable() -> None:
    digest = parse_digest(f"sha256:{HEX64}")
    with pytest.raises(AttributeError):
        digest.hex = EMPTY_SHA256  # type: ignore[misc]
    assert {digest, parse_digest(f"sha256:{HEX64}")} == {digest}


def test_supported_algorithms() -> None:
    assert dict(SUPPORTED_ALGORITHMS) == {"sha256": 64, "sha512": 128}
    with pytest.raises(TypeError):
        SUPPORTED_ALGORITHMS["md5"] = 32  # type: ignore[index]


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_of_matches_hashlib(algorithm: str) -> None:
    data = b"hello registry"
    digest = Digest.of(data, algorithm)
    assert digest.algorithm == algorithm
    assert digest.hex == hashlib.new(algorithm, data).hexdigest()


def test_of_defaults_to_sha256() -> None:
    assert str(Digest.of(b"")) == f"sha256:{EMPTY_SHA256}"
    assert Digest.of(bytearray(b"abc")) == Digest.of(b"abc")


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", "", None, ["sha256"]])
def test_of_rejects_unsupported_algorithm(algorithm: object) -> None:
    with pytest.raises(InvalidDigest, match="unsupported"):
        Digest.of(b"x", algorithm)  # type: ignore[arg-type]


def test_hasher_is_fresh_each_time() -> None:
    digest = Digest.of(b"abc", "sha512")
    first = digest.hasher()
    first.update(b"abc")
    assert first.hexdigest() == digest.hex
    assert digest.hasher().hexdigest() == hashlib.sha512().hexdigest()
    assert digest.hasher().name == "sha512"


def test_verifier_match_in_chunks() -> None:
    data = b"x" * 10_000 + b"tail"
    verifier = DigestVerifier(str(Digest.of(data)))
    assert verifier.bytes_seen == 0
    assert verifier.actual == Digest("sha256", EMPTY_SHA256)
    for start in range(0, len(data), 4096):
        verifier.update(data[start : start + 4096])
    assert verifier.bytes_seen == len(data)
    assert verifier.actual == Digest.of(data)
    assert verifier.verify() is None
    # Checking does not finalise the hash: more data changes the result.
    verifier.update(b"!")
    with pytest.raises(DigestMismatch):
        verifier.verify()


def test_verifier_accepts_digest_object_and_memoryview() -> None:
    data = b"abc" * 7
    verifier = DigestVerifier(Digest.of(data, "sha512"))
    verifier.update(memoryview(data))
    assert verifier.bytes_seen == len(data)
    verifier.verify()


def test_verifier_mismatch() -> None:
    expected = Digest.of(b"expected content")
    verifier = DigestVerifier(expected)
    verifier.update(b"other ")
    verifier.update(b"content")
    with pytest.raises(DigestMismatch) as info:
        verifier.verify()
    error = info.value
    actual = str(Digest.of(b"other content"))
    assert error.expected == str(expected)
    assert error.actual == actual
    message = str(error)
    assert str(expected) in message
    assert actual in message
    assert "13 bytes" in message


def test_verifier_rejects_bad_expected() -> None:
    with pytest.raises(InvalidDigest):
        DigestVerifier("md5:d41d8cd98f00b204e9800998ecf8427e")
    with pytest.raises(InvalidDigest):
        DigestVerifier(None)  # type: ignore[arg-type]


def test_verifier_str_chunk_does_not_count() -> None:
    verifier = DigestVerifier(Digest.of(b""))
    with pytest.raises(TypeError):
        verifier.update("text")  # type: ignore[arg-type]
    assert verifier.bytes_seen == 0
    verifier.verify()


# --- properties -----------------------------------------------------------------

# Characters that digests are made of, plus ones that must break them.
DIGESTISH = st.text(alphabet="sha2560123456789abcdefABCDEF:+._-=/@ %\n\u00e9\u0660", max_size=140)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=300), DIGESTISH))
def test_arbitrary_text_parses_or_raises_invalid_digest(text: str) -> None:
    try:
        digest = parse_digest(text)
    except InvalidDigest:
        return
    assert str(digest) == text
    assert validate_digest(text) == text


@settings(max_examples=100)
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text()), st.floats()))
def test_arbitrary_objects_raise_invalid_digest(value: object) -> None:
    with pytest.raises(InvalidDigest):
        parse_digest(value)  # type: ignore[arg-type]


VALID_DIGESTS = st.one_of(
    st.from_regex(r"sha256:[0-9a-f]{64}", fullmatch=True),
    st.from_regex(r"sha512:[0-9a-f]{128}", fullmatch=True),
)


@settings(max_examples=200)
@given(VALID_DIGESTS)
def test_valid_digests_round_trip(text: str) -> None:
    digest = parse_digest(text)
    assert str(digest) == text
    assert parse_digest(str(digest)) == digest
    assert len(digest.hex) == SUPPORTED_ALGORITHMS[digest.algorithm]


@settings(max_examples=100)
@given(st.binary(max_size=2048), st.sampled_from(sorted(SUPPORTED_ALGORITHMS)), st.data())
def test_verifier_any_chunking_matches_of(data: bytes, algorithm: str, draw: st.DataObject) -> None:
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=6)))
    verifier = DigestVerifier(Digest.of(data, algorithm))
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        verifier.update(data[start:end])
    assert verifier.bytes_seen == len(data)
    verifier.verify()
    assert parse_digest(str(verifier.actual)) == Digest.of(data, algorithm)
