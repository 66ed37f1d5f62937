"""Property tests for every parser that reads bytes from outside (issue 25).

Whatever a registry, a storage tree or a user hands over, each parser either gives a
value or raises a reginsight error (a subclass of ``ReginsightError``); a
TypeError, KeyError, AttributeError, ValueError or RecursionError never leaks out,
and nothing hangs. Valid documents, headers and names built from the grammars parse
and give back what they were built from. No network: everything here is pure.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import reginsight as ri
from reginsight import _mediatypes as mt
from reginsight import schema1
from reginsight.inventory._facts import buildx_subject, manifest_info, parse_config
from reginsight.inventory._layout import classify, link_target
from reginsight.registry import _digest, _reference
from reginsight.registry import protocol as proto
from reginsight.registry._digest import SUPPORTED_ALGORITHMS, Digest, validate_digest
from reginsight.registry._hosts import same_origin
from reginsight.registry._manifest import manifest_digest
from reginsight.registry._reference import (
    parse_reference,
    split_reference,
    validate_reference,
    validate_repository,
    validate_tag,
)
from reginsight.registry.protocol import _challenges
from reginsight.registry.protocol._blobs import range_end

# Cheap parsers get many examples, whole documents fewer; deadline=None: a shared,
# loaded machine must not turn a slow example into a failure.
CHEAP = settings(max_examples=200, deadline=None)
# generating from a grammar (from_regex) costs more than the parsers it feeds
GRAMMAR = settings(max_examples=150, deadline=None)
DOCS = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

REGISTRY = "https://registry.example"
CATALOG_URL = f"{REGISTRY}/v2/_catalog"


def typed_or_value(call: Callable[[], Any]) -> Any:
    """``call()``, or None when it raised a reginsight error; anything else propagates
    and fails the test."""
    try:
        return call()
    except ri.ReginsightError:
        return None


# ------------------------------------------------------------------ JSON, hostile


@dataclass(frozen=True)
class Raw:
    """JSON text spliced in verbatim: what json.dumps cannot (or will not) write."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object whose keys may repeat (json.loads keeps the last)."""

    items: tuple[tuple[str, Any], ...]


def dump(value: Any) -> str:
    """JSON text of a value that may hold Raw and Pairs nodes."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        value = Pairs(tuple(value.items()))
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def deep(depth: int, open_: str = "[", close: str = "]", inner: str = "1") -> Raw:
    return Raw(open_ * depth + inner + close * depth)


#: Values that break careless parsers: numbers no int() takes (over 4300 digits), or
#: that overflow a float, NaN, nesting past the recursion limit, wrong types.
HOSTILE_VALUES = st.sampled_from([
    Raw("1" + "0" * 5000), Raw("-" + "9" * 5000), Raw("1e999"), Raw("-1e999"), Raw("NaN"),
    Raw("Infinity"), Raw("-0"), Raw("1.0"), Raw("1e2"), -1, -(2**63), 2**64, 2**1000, 0.5,
    True, False, None, "", "\x00", "\ud800x", "sha256:" + "A" * 64, "sha256:" + "0" * 63,
    "md5:" + "0" * 32, "sha256:" + "0" * 64 + "\n", ["sha256:" + "0" * 64], {"digest": 1},
    deep(50), deep(900), deep(100_000), deep(3000, '{"a":', "}"),
    "[" * 5000 + "]" * 5000, '{"a":' * 2000 + "1" + "}" * 2000,
])

json_leaves = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
               | st.floats() | st.text(max_size=20) | HOSTILE_VALUES)

MANIFEST_KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "blobs",
                 "digest", "size", "platform", "urls", "annotations", "subject",
                 "artifactType", "fsLayers", "history", "blobSum", "v1Compatibility",
                 "signatures", "protected", "name", "tag", "architecture", "os",
                 "os.features", "features", "variant", "os.version"]

json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(MANIFEST_KEYS) | st.text(max_size=8), children,
                      max_size=6),
    max_leaves=25,
)


# ------------------------------------------------------------------ valid documents

# hex from bytes: from_regex draws 64 or 128 characters one by one, far slower
SHA256 = st.binary(min_size=32, max_size=32).map(lambda b: f"sha256:{b.hex()}")
SHA512 = st.binary(min_size=64, max_size=64).map(lambda b: f"sha512:{b.hex()}")
DIGESTS = SHA256 | SHA512
SIZES = st.integers(0, 2**63 - 1) | st.sampled_from([0, 1, 2**64, 10**30])
MEDIA_TYPES = st.sampled_from([
    mt.OCI_MANIFEST, mt.OCI_INDEX, mt.OCI_CONFIG, mt.OCI_LAYER_GZIP, mt.OCI_EMPTY,
    mt.DOCKER_MANIFEST, mt.DOCKER_CONFIG, mt.DOCKER_LAYER, mt.DOCKER_FOREIGN_LAYER,
    "application/vnd.dev.cosign.simplesigning.v1+json", "application/spdx+json",
    "application/vnd.in-toto+json", "application/vnd.cncf.helm.config.v1+json",
]) | st.from_regex(r"[a-z]{1,10}/[a-z0-9.+-]{1,20}", fullmatch=True) | st.text(max_size=15)
SHORT_TEXT = st.text(max_size=12)
ANNOTATIONS = st.dictionaries(SHORT_TEXT, SHORT_TEXT, max_size=3)
PLATFORMS = st.fixed_dictionaries(
    {"os": st.sampled_from(["linux", "windows"]) | SHORT_TEXT,
     "architecture": st.sampled_from(["amd64", "arm64", "arm"]) | SHORT_TEXT},
    optional={"variant": SHORT_TEXT, "os.version": SHORT_TEXT,
              "os.features": st.lists(SHORT_TEXT, max_size=2),
              "features": st.lists(SHORT_TEXT, max_size=2)},
)
_DESCRIPTOR_OPTIONAL = {"mediaType": MEDIA_TYPES, "annotations": ANNOTATIONS,
                        "urls": st.lists(SHORT_TEXT, max_size=2), "artifactType": MEDIA_TYPES}


def descriptors(*, platform: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    optional = {**_DESCRIPTOR_OPTIONAL, **({"platform": PLATFORMS} if platform else {})}
    return st.fixed_dictionaries({"digest": DIGESTS, "size": SIZES}, optional=optional)


def _doc(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(required, optional=optional)


_V2_OPTIONAL = {"annotations": ANNOTATIONS, "subject": descriptors(),
                "artifactType": MEDIA_TYPES}
IMAGES = st.one_of(
    _doc({"schemaVersion": st.just(2), "mediaType": st.just(mt.DOCKER_MANIFEST),
          "config": descriptors(), "layers": st.lists(descriptors(), max_size=4)}, {}),
    # OCI: mediaType is optional, the shape (config) says it
    _doc({"schemaVersion": st.just(2), "config": descriptors(),
          "layers": st.lists(descriptors(), max_size=4)},
         {"mediaType": st.just(mt.OCI_MANIFEST), **_V2_OPTIONAL}),
)
ARTIFACTS = st.one_of(
    # OCI 1.1 artifact: artifactType, the empty config
    _doc({"schemaVersion": st.just(2), "mediaType": st.just(mt.OCI_MANIFEST),
          "artifactType": MEDIA_TYPES,
          "config": st.builds(lambda d: {"mediaType": mt.OCI_EMPTY, "digest": d, "size": 2},
                              DIGESTS),
          "layers": st.lists(descriptors(), max_size=3)},
         {"subject": descriptors(), "annotations": ANNOTATIONS}),
    # the OCI artifact manifest of the 1.1 release candidates: "blobs", no config
    _doc({"schemaVersion": st.just(2),
          "mediaType": st.just("application/vnd.oci.artifact.manifest.v1+json"),
          "artifactType": MEDIA_TYPES, "blobs": st.lists(descriptors(), min_size=1,
                                                          max_size=3)},
         {"subject": descriptors(), "annotations": ANNOTATIONS}),
)
INDEXES = st.one_of(
    _doc({"schemaVersion": st.just(2), "mediaType": st.just(mt.DOCKER_MANIFEST_LIST),
          "manifests": st.lists(descriptors(platform=True), max_size=4)}, {}),
    _doc({"schemaVersion": st.just(2), "manifests": st.lists(descriptors(platform=True),
                                                             max_size=4)},
         {"mediaType": st.just(mt.OCI_INDEX), **_V2_OPTIONAL}),
)
V1_CONFIGS = st.fixed_dictionaries(
    {"id": st.binary(min_size=32, max_size=32).map(bytes.hex)},
    optional={"created": SHORT_TEXT, "os": SHORT_TEXT, "architecture": SHORT_TEXT,
              "parent": SHORT_TEXT})


@st.composite
def schema1_docs(draw: st.DrawFn) -> dict[str, Any]:
    blobs = draw(st.lists(DIGESTS, max_size=4))
    history = [{"v1Compatibility": json.dumps(draw(V1_CONFIGS))} for _ in blobs]
    doc = {"schemaVersion": 1, "name": draw(st.sampled_from(["app", "team/app"])),
           "tag": draw(st.sampled_from(["latest", "1.0"])),
           "architecture": draw(st.sampled_from(["amd64", "arm64"])),
           "fsLayers": [{"blobSum": b} for b in blobs]}
    if history or draw(st.booleans()):
        doc["history"] = history
    return doc


V2_DOCS = st.one_of(IMAGES, ARTIFACTS, INDEXES)
SIGNING_KEY = schema1.generate_key()


@dataclass(frozen=True)
class Served:
    """A valid document as a registry serves it: bytes, Content-Type, and the bytes
    its digest covers (for a signed schema1 manifest, the payload only)."""

    doc: dict[str, Any]
    raw: bytes
    content_type: str | None
    payload: bytes


@st.composite
def served_documents(draw: st.DrawFn) -> Served:
    if draw(st.integers(0, 4)) == 0:
        doc = draw(schema1_docs())
        pretty = json.dumps(doc, indent=3, ensure_ascii=False).encode()
        if draw(st.booleans()):
            raw = schema1.sign(doc, SIGNING_KEY)
            types = [None, mt.DOCKER_SCHEMA1_SIGNED, "application/json"]
        else:
            raw = pretty
            types = [None, mt.DOCKER_SCHEMA1, "application/json"]
        return Served(doc, raw, draw(st.sampled_from(types)), pretty)
    doc = draw(V2_DOCS)
    raw = json.dumps(doc, indent=draw(st.sampled_from([None, 2])),
                     ensure_ascii=draw(st.booleans())).encode()
    declared = doc.get("mediaType")
    types = [None, "application/json", "application/octet-stream"]
    if mt.is_manifest(declared):
        types += [declared, f"{declared}; charset=utf-8", declared.upper()]
    return Served(doc, raw, draw(st.sampled_from(types)), raw)


def b64(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sha(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def assert_descriptor(parsed: ri.Descriptor, doc: dict[str, Any]) -> None:
    assert parsed.digest == doc["digest"] and parsed.size == doc["size"]
    assert parsed.media_type == doc.get("mediaType")
    assert parsed.artifact_type == doc.get("artifactType")
    assert dict(parsed.annotations) == doc.get("annotations", {})
    assert list(parsed.urls) == doc.get("urls", [])
    platform = doc.get("platform")
    if platform is None:
        assert parsed.platform is None
    else:
        assert parsed.platform == ri.Platform(
            os=platform["os"], architecture=platform["architecture"],
            variant=platform.get("variant"), os_version=platform.get("os.version"),
            os_features=tuple(platform.get("os.features", ())),
            features=tuple(platform.get("features", ())))


def expected_media_type(served: Served) -> str:
    doc, declared = served.doc, served.doc.get("mediaType")
    if declared:
        return declared
    named = mt.manifest_type(served.content_type)
    if doc["schemaVersion"] == 1:
        if mt.is_schema1(named):
            return named
        return mt.DOCKER_SCHEMA1_SIGNED if b'"signatures"' in served.raw else mt.DOCKER_SCHEMA1
    return named or (mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST)


def assert_facts(manifest: ri.Manifest, served: Served) -> None:
    """The parsed model says what the document said: digests, sizes, media types."""
    doc = served.doc
    assert manifest.digest == sha(served.payload)
    assert manifest.size == len(served.payload)
    assert manifest.raw == served.raw and manifest.schema_version == doc["schemaVersion"]
    assert manifest.media_type == expected_media_type(served)
    assert manifest.descriptor() == ri.Descriptor(
        media_type=manifest.media_type, digest=manifest.digest, size=len(served.raw))
    if doc["schemaVersion"] == 1:
        assert isinstance(manifest, ri.Schema1Manifest)
        assert [d.digest for d in manifest.layers] == [
            entry["blobSum"] for entry in reversed(doc["fsLayers"])]
        assert all(d.size is None and d.media_type == mt.DOCKER_LAYER
                   for d in manifest.layers)
        assert [dict(h) for h in manifest.history] == [
            json.loads(h["v1Compatibility"]) for h in reversed(doc.get("history", []))]
        assert (manifest.name, manifest.tag, manifest.architecture) == (
            doc["name"], doc["tag"], doc["architecture"])
        return
    assert manifest.artifact_type == doc.get("artifactType")
    assert dict(manifest.annotations) == doc.get("annotations", {})
    if "subject" in doc:
        assert_descriptor(manifest.subject, doc["subject"])
    else:
        assert manifest.subject is None
    if "manifests" in doc:
        assert isinstance(manifest, ri.ImageIndex) and manifest.kind == "index"
        assert len(manifest.manifests) == len(doc["manifests"])
        for parsed, entry in zip(manifest.manifests, doc["manifests"], strict=True):
            assert_descriptor(parsed, entry)
        return
    assert isinstance(manifest, ri.ImageManifest) and manifest.kind == "image"
    if "config" in doc:
        assert_descriptor(manifest.config, doc["config"])
    else:
        assert manifest.config is None
    layers = doc.get("layers") or doc.get("blobs", [])
    assert len(manifest.layers) == len(layers)
    for parsed, entry in zip(manifest.layers, layers, strict=True):
        assert_descriptor(parsed, entry)


@DOCS
@given(served_documents())
def test_valid_documents_parse_and_round_trip_their_facts(served: Served) -> None:
    manifest = ri.parse_manifest(served.raw, content_type=served.content_type)
    assert_facts(manifest, served)
    # asked by digest, with either algorithm, the same bytes give the same model
    for algorithm in ("sha256", "sha512"):
        by_digest = ri.parse_manifest(served.raw, content_type=served.content_type,
                                      digest=sha(served.payload, algorithm))
        assert by_digest.digest == sha(served.payload, algorithm)
        assert (by_digest.layers, by_digest.manifests, by_digest.config) == (
            manifest.layers, manifest.manifests, manifest.config)
    # and any other digest is a mismatch, typed
    with pytest.raises(ri.DigestMismatch):
        ri.parse_manifest(served.raw, digest=sha(served.payload + b" "))
    info = manifest_info(manifest)
    assert info.digest == manifest.digest and info.manifest_size == len(served.payload)


# ------------------------------------------------------------------ hostile documents


def assert_sane(manifest: ri.Manifest) -> None:
    """What anything that parsed promises its readers: valid digests, sizes that are
    non-negative ints (None only for schema1 layers), strings where strings belong."""
    assert manifest.kind in ("image", "index", "schema1")
    assert isinstance(manifest.media_type, str)
    # one reading per document (CVE-2021-41190): the kind is what the type says, an
    # index holds no config or layers, an image manifest no manifests
    if mt.is_index(manifest.media_type):
        assert manifest.kind == "index"
    if mt.is_image_manifest(manifest.media_type):
        assert manifest.kind == "image"
    if manifest.kind == "index":
        assert not {"config", "layers", "blobs"} & set(manifest.json)
    if manifest.kind == "image":
        assert "manifests" not in manifest.json
        # and every list of blobs it holds is read: none left unseen beside another
        assert not (manifest.json.get("layers") and manifest.json.get("blobs"))
    assert validate_digest(manifest.digest) == manifest.digest
    found = [*manifest.layers, *manifest.manifests]
    found += [d for d in (manifest.config, manifest.subject) if d is not None]
    for descriptor in found:
        assert validate_digest(descriptor.digest) == descriptor.digest
        if descriptor.size is None:
            assert manifest.kind == "schema1"
        else:
            assert type(descriptor.size) is int and descriptor.size >= 0
        assert descriptor.media_type is None or isinstance(descriptor.media_type, str)
        assert all(isinstance(k, str) and isinstance(v, str)
                   for k, v in descriptor.annotations.items())
    # a model that parsed is whole: its size, its descriptor and the facts a crawl
    # takes from it are there, no error of any kind
    assert manifest.size >= 0
    assert manifest.descriptor().digest == manifest.digest
    assert manifest_info(manifest).digest == manifest.digest


def parse_any(raw: bytes, content_type: str | None = None, digest: str | None = None
              ) -> ri.Manifest | None:
    manifest = typed_or_value(lambda: ri.parse_manifest(raw, content_type=content_type,
                                                        digest=digest))
    if manifest is not None:
        assert_sane(manifest)
    return manifest


CONTENT_TYPES = st.none() | st.sampled_from(
    [*sorted(mt.MANIFEST_MEDIA_TYPES), "application/json", ""]) | st.text(max_size=20)


@CHEAP
@given(st.binary(max_size=300), CONTENT_TYPES)
@example(b"\xef\xbb\xbf{}", None)  # a UTF-8 byte order mark
def test_arbitrary_bytes_parse_or_raise_typed(data: bytes, content_type: str | None) -> None:
    parse_any(data, content_type)


@DOCS
@given(json_values, CONTENT_TYPES)
def test_arbitrary_json_parses_or_raises_typed(value: Any, content_type: str | None) -> None:
    parse_any(dump(value).encode(), content_type)


MANIFEST_SHAPED = st.fixed_dictionaries(
    {"schemaVersion": st.sampled_from([1, 2]) | json_leaves},
    optional={key: json_values for key in MANIFEST_KEYS if key != "schemaVersion"},
)


@DOCS
@given(MANIFEST_SHAPED, CONTENT_TYPES)
def test_manifest_shaped_json_parses_or_raises_typed(value: dict, content_type: str | None
                                                     ) -> None:
    parse_any(dump(value).encode(), content_type)


def _paths(node: Any, here: tuple = ()) -> list[tuple]:
    """Every path to a value inside a document (keys and list indexes)."""
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*here, index))
    return found


MUTATIONS = ("replace", "hostile", "remove", "duplicate", "negative", "wrap", "graft")
#: What another kind of document holds, to graft onto one: an index's manifests onto
#: an image manifest, a config onto an index, another media type ...
GRAFTS = {
    "manifests": st.lists(descriptors(platform=True), max_size=2),
    "config": descriptors(), "layers": st.lists(descriptors(), max_size=2),
    "blobs": st.lists(descriptors(), max_size=2), "subject": descriptors(),
    "mediaType": st.sampled_from(sorted(mt.MANIFEST_MEDIA_TYPES)) | MEDIA_TYPES,
    "schemaVersion": st.sampled_from([1, 2, 3, 0]),
    "signatures": st.just([{"protected": "e30"}]), "fsLayers": st.just([]),
}


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[bytes, Served | None]:
    """A valid document with one to three values replaced by any JSON value or a
    hostile one, removed, given a duplicate key, made negative, wrapped in a list, or
    given what another kind of document holds."""
    served = draw(served_documents())
    doc: Any = json.loads(served.raw)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        how = draw(st.sampled_from(MUTATIONS))
        if how == "graft":
            if isinstance(doc, dict):
                key = draw(st.sampled_from(sorted(GRAFTS)))
                doc[key] = draw(GRAFTS[key])
            continue
        if not path:
            if how in ("replace", "hostile"):
                doc = draw(json_values if how == "replace" else HOSTILE_VALUES)
            continue
        parent = doc  # _paths never enters a Pairs or a Raw: these are plain values
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if how == "replace":
            parent[last] = draw(json_values)
        elif how == "hostile":
            parent[last] = draw(HOSTILE_VALUES)
        elif how == "remove":
            del parent[last]
        elif how == "negative":
            parent[last] = draw(st.sampled_from([-1, -(2**63), -(2**64), Raw("-0"), -0.5]))
        elif how == "wrap":
            parent[last] = [parent[last]]
        elif isinstance(parent, dict):  # duplicate: the key again, before or after
            other = (last, draw(json_values))
            items = [(k, v) for k, v in parent.items()]
            items.insert(draw(st.integers(0, len(items))), other)
            if len(path) == 1:
                doc = Pairs(tuple(items))
            else:
                grand = doc
                for step in path[:-2]:
                    grand = grand[step]
                grand[path[-2]] = Pairs(tuple(items))
    return dump(doc).encode(), served


_D = {"digest": "sha256:" + "0" * 64, "size": 0}
#: Documents that read as two things, which parsed before (CVE-2021-41190's ambiguity):
#: what one reading holds (an index's blobs, an image's second blob list) was unseen.
AMBIGUOUS = [
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
     "blobs": [_D], "manifests": []},  # found by this test: an index, its blob unread
    {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "config": _D, "layers": [_D]},
    {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "config": _D},
    {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "manifests": [_D]},
    {"schemaVersion": 2, "config": _D, "manifests": [_D]},
    {"schemaVersion": 2, "config": _D, "layers": [_D], "blobs": [_D]},
]


def _examples(docs: list[dict]) -> Callable[[Callable], Callable]:
    def add(test: Callable) -> Callable:
        for doc in docs:
            test = example((dump(doc).encode(), None), None)(test)
        return test
    return add


@DOCS
@given(mutated_documents(), st.data())
@_examples(AMBIGUOUS)
@example((b'{"schemaVersion": 2, "config": {"digest": "sha256:' + b"0" * 64 + b'", "size": '
          + b"1" * 5000 + b"}}", None), None)
@example((b'{"schemaVersion": 2, "manifests": [' + b"[" * 5000 + b"]" * 5000 + b"]}", None),
         None)
def test_mutated_documents_parse_or_raise_typed(mutated: tuple[bytes, Served | None],
                                                data: st.DataObject | None) -> None:
    raw, served = mutated
    content_type = served.content_type if served is not None else None
    manifest = parse_any(raw, content_type)
    if manifest is not None and data is not None:
        # asked by a digest, right or wrong: the same answer, or a typed error
        digest = data.draw(st.sampled_from([manifest.digest, sha(raw), sha(raw, "sha512"),
                                            "sha256:" + "0" * 64, "nope"]))
        parse_any(raw, content_type, digest)


@DOCS
@given(st.data())
@example(None)
def test_schema1_signatures_of_any_shape_raise_typed(data: st.DataObject | None) -> None:
    """A schema1 document whose ``signatures`` (and their protected headers) are
    anything: the digest, asked or computed, is a value or a typed error, and what
    parses is whole. (Before, asked by the digest of its whole bytes, a document whose
    signatures said no payload parsed, and its ``size`` raised ManifestInvalid.)"""
    if data is None:  # the example found: a protected header without formatLength
        raw = dump({"schemaVersion": 1, "fsLayers": [], "history": [],
                    "signatures": [{"protected": b64(b"{}")}]}).encode()
        with pytest.raises(ri.ManifestInvalid, match="formatLength"):
            ri.parse_manifest(raw, digest=sha(raw))
        return
    header = data.draw(st.dictionaries(st.sampled_from(["formatLength", "formatTail"]),
                                       json_values | st.integers(-5, 400)
                                       | st.text(alphabet="AZaz09-_=!"), max_size=2))
    protected = data.draw(st.sampled_from([
        b64(dump(header).encode()), dump(header), "!!!", "é", ""]) | json_leaves)
    signature = data.draw(st.sampled_from([{"protected": protected}, protected, None]))
    doc = {"schemaVersion": 1, "fsLayers": [], "history": [],
           "signatures": data.draw(st.sampled_from([[signature], signature, [signature, 1]]))}
    raw = dump(doc).encode()
    parse_any(raw)
    parse_any(raw, digest=sha(raw))
    typed_or_value(lambda: manifest_digest(raw, schema1=True))


# ------------------------------------------------------------------ manifest answers

HEADER_TEXT = st.text(max_size=30) | st.sampled_from(["²", "١٢", "9" * 5000, "-1", " 12 ",
                                                      "1e3", "0x10", "+5"])


@CHEAP
@given(served_documents() | st.builds(lambda raw: Served({}, raw, None, raw),
                                      st.binary(max_size=200)),
       st.none() | DIGESTS | HEADER_TEXT, st.sampled_from(["latest", "digest", "wrong"]),
       st.sampled_from([200, 404, 429, 500]))
def test_manifest_answers_give_a_manifest_or_a_typed_error(
        served: Served, announced: str | None, asked: str, status: int) -> None:
    headers = {"content-type": served.content_type or "application/json"}
    if announced is not None:
        headers["docker-content-digest"] = announced
    answer = proto.Answer.of(status, headers, served.raw, url=f"{REGISTRY}/v2/a/manifests/x",
                             method="GET")
    reference = {"latest": "latest", "digest": sha(served.payload),
                 "wrong": "sha256:" + "0" * 64}[asked]
    manifest = typed_or_value(lambda: proto.interpret_manifest(answer, reference))
    if manifest is not None:
        assert_sane(manifest)
        assert status == 200


@CHEAP
@given(st.none() | DIGESTS | HEADER_TEXT, st.none() | HEADER_TEXT | st.integers(0, 2**70)
       .map(str), CONTENT_TYPES)
@example("sha256:" + "0" * 64, "²", None)  # a digit str.isdigit() knows, int() does not
@example("sha256:" + "0" * 64, "9" * 5000, None)  # past int()'s 4300 digits
@example("sha256:" + "0" * 64, " 007 ", None)
def test_manifest_heads_give_a_descriptor_none_or_a_typed_error(
        digest: str | None, length: str | None, content_type: str | None) -> None:
    headers = {name: value for name, value in (("docker-content-digest", digest),
                                               ("content-length", length),
                                               ("content-type", content_type))
               if value is not None}
    answer = proto.Answer.of(200, headers, url=f"{REGISTRY}/v2/a/manifests/x", method="HEAD")
    found = typed_or_value(lambda: proto.interpret_manifest_head(answer))
    if found is not None:
        assert validate_digest(found.digest) == found.digest
        assert type(found.size) is int and found.size >= 0
        assert found.size == int(length.strip(), 10)


ERROR_BODIES = st.one_of(
    st.binary(max_size=100), json_values.map(lambda v: dump(v).encode()),
    st.lists(st.fixed_dictionaries({}, optional={"code": json_leaves, "message": json_leaves,
                                                 "detail": json_values}), max_size=3)
    .map(lambda errors: dump({"errors": errors}).encode()),
)


@CHEAP
@given(st.integers(-1, 1000) | st.sampled_from([400, 401, 403, 404, 405, 429, 500]),
       st.dictionaries(st.sampled_from(["retry-after", "ratelimit-remaining",
                                        "ratelimit-limit"]), HEADER_TEXT), ERROR_BODIES)
def test_any_error_answer_becomes_a_typed_error(status: int, headers: dict[str, str],
                                                body: bytes) -> None:
    details = proto.parse_error_body(body)
    assert all(isinstance(d.code, str) and isinstance(d.message, str) for d in details)
    error = proto.decipher_error(status, headers, body, method="GET", url=CATALOG_URL)
    assert isinstance(error, ri.ResponseError) and error.status == status
    assert error.codes == tuple(d.code for d in details)


# ------------------------------------------------------------------ image configs, facts


@CHEAP
@given(st.binary(max_size=200) | json_values.map(lambda v: dump(v).encode()))
def test_image_configs_parse_or_raise_typed(data: bytes) -> None:
    facts = typed_or_value(lambda: parse_config(data))
    if facts is not None:
        for value in (facts.created, facts.os, facts.architecture, facts.variant):
            assert value is None or (isinstance(value, str) and value)


@CHEAP
@given(st.dictionaries(st.sampled_from(["vnd.docker.reference.type",
                                        "vnd.docker.reference.digest"]) | SHORT_TEXT,
                       st.sampled_from(["attestation-manifest"]) | DIGESTS | SHORT_TEXT,
                       max_size=3))
def test_buildx_subject_is_a_digest_or_none(annotations: dict[str, str]) -> None:
    subject = buildx_subject(annotations)
    assert subject is None or validate_digest(subject) == subject


# ------------------------------------------------------------------ storage layout

DIGEST_BYTES = DIGESTS.map(str.encode)


@st.composite
def link_contents(draw: st.DrawFn) -> bytes:
    """A digest as a link file holds it, then maybe spoilt: a newline, upper case, a
    byte cut or added, a path, a NUL."""
    content = draw(DIGEST_BYTES)
    spoil = draw(st.sampled_from(["none", "newline", "upper", "cut", "add", "path", "nul"]))
    if spoil == "newline":
        content += b"\n"
    elif spoil == "upper":
        content = content.upper()
    elif spoil == "cut":
        content = content[:-1]
    elif spoil == "add":
        content += draw(st.binary(min_size=1, max_size=2))
    elif spoil == "path":
        content = b"../../" + content
    elif spoil == "nul":
        content = content.replace(b":", b"\x00:")
    return content


@CHEAP
@given(st.binary(max_size=200) | link_contents())
def test_link_target_is_a_valid_digest_or_none(content: bytes) -> None:
    target = link_target(content)
    if target is not None:
        assert validate_digest(target) == target
        assert target.encode() == content  # only exactly a digest, nothing around it


@CHEAP
@given(DIGESTS)
def test_link_files_holding_a_digest_give_it(digest: str) -> None:
    assert link_target(digest.encode()) == digest
    assert link_target(digest.encode() + b"\n") is None  # never half-trusted
    assert link_target(b"") is None


LAYOUT_TEXT = st.text(alphabet="abcf0123_/.-:\n\x00%é", max_size=120)


@st.composite
def layout_paths(draw: st.DrawFn) -> str:
    """A path of the registry's layout, built from its parts, maybe spoilt."""
    algorithm, hexa = draw(DIGESTS).split(":")
    name = draw(st.lists(PATH_COMPONENT, min_size=1, max_size=3).map("/".join))
    tag = draw(TAGS)
    path = draw(st.sampled_from([
        f"blobs/{algorithm}/{hexa[:2]}/{hexa}/data",
        f"repositories/{name}/_manifests/revisions/{algorithm}/{hexa}/link",
        f"repositories/{name}/_manifests/tags/{tag}/current/link",
        f"repositories/{name}/_manifests/tags/{tag}/index/{algorithm}/{hexa}/link",
        f"repositories/{name}/_layers/{algorithm}/{hexa}/link",
        f"repositories/{name}/_uploads/{tag}/data",
        f"repositories/{name}/_uploads/{tag}/startedat",
    ]))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(path)))
        spoil = draw(st.sampled_from(["/", "//", "..", "_", "\n", "é", ""]))
        path = path[:at] + spoil + path[at + draw(st.integers(0, 2)):]
    return path


@CHEAP
@given(st.text(max_size=200) | LAYOUT_TEXT | layout_paths())
@example("repositories/" + "a/" * 5000 + "_manifests/x")
@example("repositories/" + "a" * 20000)
def test_classify_never_raises(relative: str) -> None:
    entry = classify(relative)
    if entry is None:
        return
    assert entry.kind in ("blob", "revision", "tag", "tag_index", "layer", "upload_data",
                          "upload_started")
    if entry.digest is not None:
        algorithm, _, hexa = entry.digest.partition(":")
        assert algorithm and re.fullmatch(r"[a-f0-9]{32,}", hexa)
        assert hexa in relative
    if entry.repository is not None:
        assert relative.startswith(f"repositories/{entry.repository}/_")


@GRAMMAR
@given(DIGESTS, st.data())
def test_classify_reads_back_what_the_layout_says(digest: str, data: st.DataObject) -> None:
    algorithm, hexa = digest.split(":")
    name = data.draw(st.lists(PATH_COMPONENT, min_size=1, max_size=3).map("/".join))
    tag = data.draw(TAGS)
    entries = {
        f"blobs/{algorithm}/{hexa[:2]}/{hexa}/data": ("blob", None, digest, None),
        f"repositories/{name}/_manifests/revisions/{algorithm}/{hexa}/link":
            ("revision", name, digest, None),
        f"repositories/{name}/_manifests/tags/{tag}/current/link": ("tag", name, None, tag),
        f"repositories/{name}/_manifests/tags/{tag}/index/{algorithm}/{hexa}/link":
            ("tag_index", name, digest, tag),
        f"repositories/{name}/_layers/{algorithm}/{hexa}/link": ("layer", name, digest, None),
    }
    for path, (kind, repository, found, found_tag) in entries.items():
        entry = classify(path)
        assert entry is not None
        assert (entry.kind, entry.repository, entry.digest, entry.tag) == (
            kind, repository, found, found_tag)


# ------------------------------------------------------------------ WWW-Authenticate

TOKEN = st.from_regex(_challenges._TCHARS, fullmatch=True).filter(lambda t: len(t) <= 20)
PARAM_NAMES = st.sampled_from(["realm", "service", "scope", "error", "Realm"]) | TOKEN
# any text a header can carry: no control characters (CR, LF, NUL), no surrogates
HEADER_VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)
OWS = st.sampled_from(["", " ", "\t", "  "])


def quoted(value: str, *, every: bool = False) -> str:
    """An RFC 7230 quoted-string: backslash and quote escaped (``every``: any char)."""
    if every:
        return '"' + "".join("\\" + c for c in value) + '"'
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def challenges(draw: st.DrawFn) -> tuple[str, list[tuple[str, dict[str, str]]]]:
    """A WWW-Authenticate header of one to three challenges, and what it says."""
    schemes = draw(st.lists(st.sampled_from(["Bearer", "Basic", "Digest"]) | TOKEN,
                            min_size=1, max_size=3))
    parts, expected = [], []
    for scheme in schemes:
        names = draw(st.lists(PARAM_NAMES, max_size=4, unique_by=str.lower))
        params, said = [], {}
        for name in names:
            if draw(st.booleans()):
                value = draw(HEADER_VALUES)
                text = quoted(value, every=draw(st.integers(0, 4)) == 0)
            else:
                value = text = draw(TOKEN)
            said[name.lower()] = value
            params.append(f"{name}{draw(OWS)}={draw(OWS)}{text}")
        separator = draw(OWS) + "," + draw(OWS)
        parts.append(scheme + (" " + separator.join(params) if params else ""))
        expected.append((scheme.lower(), said))
    return draw(OWS) + (draw(OWS) + "," + draw(OWS)).join(parts) + draw(OWS), expected


@GRAMMAR
@given(challenges())
@example(('Bearer realm="https://auth.example/token?a=1,b=2",service="r\\"q",'
          'scope="repository:a/b:pull,push"',
          [("bearer", {"realm": "https://auth.example/token?a=1,b=2", "service": 'r"q',
                       "scope": "repository:a/b:pull,push"})]))
def test_generated_challenges_round_trip(case: tuple[str, list]) -> None:
    header, expected = case
    parsed = proto.parse_challenges(header)
    assert [(c.scheme, dict(c.params)) for c in parsed] == expected


@CHEAP
@given(st.none() | st.text(max_size=200)
       | st.text(alphabet='Bb ,="\\=realm\t', max_size=200))
@example('Bearer realm="unterminated')
@example('Bearer realm="a\\')
@example("Basic " + "a" * 10000)
@example('Bearer ' + ', '.join(["a=" + '"' * 3] * 2000))
def test_any_challenge_header_parses(header: str | None) -> None:
    for challenge in proto.parse_challenges(header):
        assert challenge.scheme == challenge.scheme.lower() and challenge.scheme
        assert re.fullmatch(_challenges._TCHARS, challenge.scheme)
        assert all(name == name.lower() for name in challenge.params)
        assert all(isinstance(value, str) for value in challenge.params.values())


# ------------------------------------------------------------------ Link

LINK_TARGETS = st.from_regex(r"/v2/[A-Za-z0-9._~%/-]{0,30}(\?[A-Za-z0-9._~%=&-]{0,30})?",
                             fullmatch=True)


@st.composite
def link_values(draw: st.DrawFn, *, next_: bool) -> tuple[str, str]:
    """One link-value (``<target>; params``) and its target; rel holds next iff
    ``next_``. Other params may hold commas, semicolons and ``rel=next`` in quotes."""
    target = draw(LINK_TARGETS)
    if draw(st.booleans()):
        target = draw(st.sampled_from([REGISTRY, REGISTRY + ":443", "//registry.example",
                                       "HTTPS://Registry.Example"])) + target
    others = ["prev", "last", "first", "nextpage", "item"]
    rels = draw(st.lists(st.sampled_from(others), max_size=2))
    if next_:
        rels.insert(draw(st.integers(0, len(rels))), draw(st.sampled_from(["next", "NEXT",
                                                                             "Next"])))
    params = []
    if rels:
        rel = " ".join(rels)
        name = draw(st.sampled_from(["rel", "REL", "Rel"]))
        params.append(f"{name}={quoted(rel)}" if len(rels) > 1 or draw(st.booleans())
                      else f"{name}={rel}")
    for _ in range(draw(st.integers(0, 2))):
        value = draw(st.sampled_from(['a, b; c', 'rel=next', '; rel="next"', 'x"y', "<z>"])
                     | HEADER_VALUES)
        params.insert(draw(st.integers(0, len(params))),
                      f"{draw(st.sampled_from(['title', 'type', 'hreflang']))}={quoted(value)}")
    text = f"<{draw(OWS)}{target}{draw(OWS)}>" + "".join(
        f"{draw(OWS)};{draw(OWS)}{param}" for param in params)
    return text, target


@st.composite
def link_headers(draw: st.DrawFn) -> tuple[str, str | None]:
    """A Link header of link-values, and the target of its first rel=next (or None)."""
    values = draw(st.lists(link_values(next_=False), max_size=3))
    nexts = draw(st.lists(link_values(next_=True), max_size=2))
    for value in nexts:
        values.insert(draw(st.integers(0, len(values))), value)
    first = next((target for text, target in values if (text, target) in nexts), None)
    return (draw(OWS) + "," + draw(OWS)).join(text for text, _ in values), first


@GRAMMAR
@given(link_headers())
def test_generated_link_headers_give_their_next_page(case: tuple[str, str | None]) -> None:
    header, target = case
    found = proto.next_link(header, CATALOG_URL)
    assert found == (urljoin(CATALOG_URL, target) if target is not None else None)
    if found is not None:
        assert same_origin(found, CATALOG_URL)


@CHEAP
@given(st.sampled_from(["http://registry.example", "https://evil.example",
                        "https://registry.example:8443", "https://registry.example.evil",
                        "//evil.example", "https://registry.example@evil.example"]),
       LINK_TARGETS)
def test_a_next_page_elsewhere_is_refused(origin: str, target: str) -> None:
    with pytest.raises(ri.ProtocolViolation):
        proto.next_link(f'<{origin}{target}>; rel="next"', CATALOG_URL)


@CHEAP
@given(st.none() | st.text(max_size=200) | st.text(alphabet='<>;,="\\ rel=next:/[]@%', max_size=100)
       | link_headers().map(lambda case: case[0]))
@example('<http://[x>; rel="next"')  # urljoin: Invalid IPv6 URL (ValueError)
@example('<//[::1>; rel=next')
@example('<https://registry.example:99999/v2/_catalog>; rel=next')  # port out of range
@example('<https://registry.example:abc/v2/_catalog>; rel=next')
def test_any_link_header_gives_a_same_origin_url_none_or_a_typed_error(
        header: str | None) -> None:
    found = typed_or_value(lambda: proto.next_link(header, CATALOG_URL))
    if found is not None:
        assert same_origin(found, CATALOG_URL)


def test_a_link_header_of_many_brackets_is_read_in_linear_time() -> None:
    """Before: every ``<`` scanned to the end of the header for its ``>``, quadratic;
    16 KiB of ``<`` took a second, 100 KiB half a minute."""
    start = time.monotonic()
    assert proto.next_link("<" * 100_000, CATALOG_URL) is None
    assert proto.next_link("<a" * 50_000 + ">", CATALOG_URL) is None
    assert time.monotonic() - start < 5


# ------------------------------------------------------------------ Retry-After, RateLimit

NOW = 1_700_000_000.0
HTTP_DATE_LIKE = st.from_regex(
    r"(Mon|Tue|Sun|Xyz), ?[0-9]{1,3} (Jan|Feb|Dec|Foo) [0-9]{1,6} [0-9]{1,3}:[0-9]{1,3}"
    r"(:[0-9]{1,3})? ?(GMT|UTC|[+-][0-9]{4}|[A-Z]{1,3})?", fullmatch=True)


@CHEAP
@given(st.none() | st.text(max_size=40) | HEADER_TEXT | HTTP_DATE_LIKE)
@example("²")  # str.isdigit() says yes, float() says no: ValueError
@example("1²")
@example("9" * 5000)
@example("Mon, 01 Jan 0001 00:00:00 -0000")
@example("Mon, 01 Jan 9999 23:59:59 +0000")
@example("Mon, 01 Jan 0001 00:00:00 +9999")
def test_any_retry_after_is_seconds_or_none(value: str | None) -> None:
    seconds = proto.parse_retry_after(value, now=NOW)
    assert seconds is None or (isinstance(seconds, float) and seconds >= 0)


@CHEAP
@given(st.integers(0, 10**12), OWS, OWS)
def test_retry_after_seconds_round_trip(seconds: int, before: str, after: str) -> None:
    assert proto.parse_retry_after(f"{before}{seconds}{after}", now=NOW) == float(seconds)


@CHEAP
@given(st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9999, 1, 1)))
def test_retry_after_dates_round_trip(when: dt.datetime) -> None:
    when = when.replace(microsecond=0, tzinfo=dt.UTC)
    header = email.utils.format_datetime(when, usegmt=True)
    assert proto.parse_retry_after(header, now=NOW) == max(0.0, when.timestamp() - NOW)


RATE_TEXT = HEADER_TEXT | st.from_regex(r" ?[0-9]{1,25} ?(; ?w ?= ?[0-9]{1,25})?",
                                        fullmatch=True)


@CHEAP
@given(st.dictionaries(st.sampled_from(["ratelimit-limit", "ratelimit-remaining",
                                        "ratelimit-reset"]), RATE_TEXT))
@example({"ratelimit-remaining": "9" * 5000})  # int(): over 4300 digits, ValueError
@example({"ratelimit-remaining": "1;w=" + "9" * 5000})
@example({"ratelimit-remaining": "1", "ratelimit-limit": "9" * 5000})
def test_any_rate_limit_headers_parse_or_give_none(headers: dict[str, str]) -> None:
    rate = proto.parse_rate_limit(headers)
    if rate is not None:
        for value in (rate.limit, rate.remaining, rate.window, rate.reset):
            assert value is None or (type(value) is int and value >= 0)
        assert isinstance(rate.describe(), str)
    # and a 429 carrying them becomes the typed error
    error = proto.decipher_error(429, {**headers, "retry-after": headers.get(
        "ratelimit-reset", "")}, b"", method="GET", url=CATALOG_URL)
    assert isinstance(error, ri.RateLimited)


@CHEAP
@given(st.integers(0, 10**15), st.integers(0, 10**15), st.integers(1, 10**6))
def test_rate_limit_headers_round_trip(limit: int, remaining: int, window: int) -> None:
    rate = proto.parse_rate_limit({"ratelimit-limit": f"{limit};w={window}",
                                   "ratelimit-remaining": f"{remaining};w={window}"})
    assert (rate.limit, rate.remaining, rate.window) == (limit, remaining, window)


# ------------------------------------------------------------------ references, digests


def bounded(pattern: re.Pattern[str], plus: str = "{1,6}", star: str = "{0,2}"
            ) -> re.Pattern[str]:
    """The module's own grammar with its ``]+`` and ``)*`` repetitions bounded: words
    of the same language, only short ones (from_regex draws long ones slowly)."""
    text = pattern.pattern.replace("]+", "]" + plus).replace(")*", ")" + star)
    return re.compile(text, pattern.flags)


# Strategies built from the module's own grammar: whatever it means by a name, a tag,
# a domain and a digest.
PATH_COMPONENT = st.from_regex(bounded(_reference._PATH_COMPONENT), fullmatch=True)
PATHS = st.lists(PATH_COMPONENT, min_size=1, max_size=4).map("/".join)  # under 247 chars
TAGS = st.from_regex(_reference._TAG, fullmatch=True)
DOMAINS = st.from_regex(bounded(_reference._DOMAIN), fullmatch=True)
NAME_ALPHABET = "abz09._-/:@%AZ \n\x00\u017fİ"
NAMEISH = st.text(max_size=80) | st.text(alphabet=NAME_ALPHABET, max_size=80) | PATHS


def assert_safe_repository(name: str) -> None:
    """A valid repository name can only ever be a path below /v2/."""
    assert ".." not in name and "//" not in name
    assert not name.startswith("/") and not name.endswith("/")
    assert re.fullmatch(r"[a-z0-9._/-]+", name), name
    assert len(name) <= _reference.NAME_MAX_LENGTH


@CHEAP
@given(NAMEISH)
@example("a/../b")
@example("..")
@example("a/./b")
@example("\u017f")  # upper-cases to S, lower-cases to itself
@example("a\n")
def test_any_text_is_a_safe_repository_name_or_invalid(text: str) -> None:
    name = typed_or_value(lambda: validate_repository(text))
    if name is not None:
        assert name == text
        assert_safe_repository(name)
    tag = typed_or_value(lambda: validate_tag(text))
    if tag is not None:
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag)
    reference = typed_or_value(lambda: validate_reference(text))
    if reference is not None:
        assert reference == text and ("/" not in reference) and (".." not in reference
                                                                  or ":" not in reference)


@CHEAP
@given(st.text(max_size=120) | st.text(alphabet=NAME_ALPHABET, max_size=120)
       | st.builds(lambda d, p, t: f"{d}/{p}:{t}", DOMAINS, PATHS, TAGS))
@example("a" * 2000)
@example("localhost:" + "9" * 5000 + "/a")
@example("[::1]:0/a")
@example("a@sha256:" + "0" * 64 + "@sha256:" + "0" * 64)
def test_any_text_is_a_reference_or_invalid(text: str) -> None:
    ref = typed_or_value(lambda: parse_reference(text))
    if ref is not None:
        assert_safe_repository(ref.repository)
        assert parse_reference(str(ref)) == ref
        assert ref.tag is None or validate_tag(ref.tag) == ref.tag
        assert ref.digest is None or validate_digest(ref.digest) == ref.digest
    split = typed_or_value(lambda: split_reference(text))
    if split is not None:
        assert_safe_repository(split[0])
        assert validate_reference(split[1]) == split[1]


def looks_like_domain(first: str) -> bool:
    """docker's splitDockerDomain: what decides that the first part is a domain."""
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


@GRAMMAR
@given(DOMAINS, PATHS, st.none() | TAGS, st.none() | DIGESTS)
def test_references_from_the_grammar_round_trip(domain: str, path: str, tag: str | None,
                                               digest: str | None) -> None:
    assume(looks_like_domain(domain))
    text = f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    port = _reference._DOMAIN.fullmatch(domain)["port"]
    if port is not None and not (len(port) <= 5 and 0 < int(port) <= 65535):
        with pytest.raises(ri.InvalidReference, match="port"):
            parse_reference(text)
        return
    ref = parse_reference(text)
    hub = domain in ("docker.io", "index.docker.io", _reference.DOCKER_HUB_REGISTRY)
    assert ref.registry == (_reference.DOCKER_HUB_REGISTRY if hub else domain)
    assert ref.repository == (f"library/{path}" if hub and "/" not in path else path)
    assert (ref.tag, ref.digest) == (tag if tag or digest else "latest", digest)
    assert_safe_repository(ref.repository)
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar) == ref
    assert split_reference(f"{path}:{tag}" if tag else path) == (path, tag or "latest")


@GRAMMAR
@given(PATHS, TAGS, DIGESTS)
def test_names_from_the_grammar_validate(path: str, tag: str, digest: str) -> None:
    assert validate_repository(path) == path
    assert_safe_repository(path)
    assert validate_tag(tag) == tag and validate_reference(tag) == tag
    assert validate_reference(digest) == digest
    assert split_reference(f"{path}@{digest}") == (path, digest)


@GRAMMAR
@given(PATHS, st.data())
def test_a_name_spoilt_anywhere_is_refused_or_still_safe(path: str, data: st.DataObject
                                                         ) -> None:
    at = data.draw(st.integers(0, len(path)))
    insert = data.draw(st.sampled_from(["..", "/", "//", "%2e", "\x00", " ", "A", "?", "#",
                                        "\\", "\u017f", "İ", "\uff41", "__", "._", "-"]))
    spoilt = path[:at] + insert + path[at + data.draw(st.integers(0, 2)):]
    name = typed_or_value(lambda: validate_repository(spoilt))
    if name is not None:
        assert_safe_repository(name)


ALGORITHMS = st.from_regex(bounded(_digest._ALGORITHM), fullmatch=True)
ENCODED = st.from_regex(bounded(_digest._ENCODED, "{1,130}"), fullmatch=True) | st.from_regex(
    r"[0-9a-fA-F]{64}|[0-9a-fA-F]{128}", fullmatch=True)


@GRAMMAR
@given(st.sampled_from(sorted(SUPPORTED_ALGORITHMS)) | ALGORITHMS, ENCODED)
def test_digests_from_the_grammar_are_accepted_exactly_when_verifiable(
        algorithm: str, encoded: str) -> None:
    text = f"{algorithm}:{encoded}"
    verifiable = (SUPPORTED_ALGORITHMS.get(algorithm) == len(encoded)
                  and re.fullmatch(r"[0-9a-f]+", encoded) is not None)
    if verifiable:
        assert validate_digest(text) == text
        assert Digest.parse(text) == Digest(algorithm, encoded)
        assert str(Digest.parse(text)) == text and Digest(algorithm, encoded).hasher()
    else:
        with pytest.raises(ri.InvalidDigest):
            validate_digest(text)
        with pytest.raises(ri.InvalidDigest):
            Digest(algorithm, encoded)


@CHEAP
@given(st.text(max_size=150) | st.text(alphabet="sha256:0123456789abcdefABCDEF=_-+.\n ",
                                       max_size=150) | DIGESTS)
@example("sha256:" + "\u0660" * 64)  # Arabic-Indic zeros: \d would take them, hex must not
@example("sha256:" + "0" * 64 + "\n")
def test_any_text_is_a_digest_or_invalid(text: str) -> None:
    digest = typed_or_value(lambda: validate_digest(text))
    if digest is not None:
        assert digest == text
        assert re.fullmatch(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}", digest)
        assert ri.is_digest(digest)


# ------------------------------------------------------------------ catalog and tag pages

LIST_BODIES = st.one_of(
    st.binary(max_size=100),
    json_values.map(lambda v: dump(v).encode()),
    st.dictionaries(st.sampled_from(["repositories", "tags", "name"]),
                    json_values | st.lists(NAMEISH | json_leaves, max_size=5),
                    max_size=3).map(lambda v: dump(v).encode()),
)
LINKS = st.none() | st.text(max_size=60) | link_headers().map(lambda case: case[0])


@DOCS
@given(LIST_BODIES, LINKS, st.sampled_from([200, 200, 200, 400, 401, 404, 405, 429, 500]),
       st.booleans(), st.booleans())
@example(b'{"repositories": ["a"]}', '<http://[x>; rel="next"', 200, True, False)
def test_listing_pages_give_a_page_or_a_typed_error(
        body: bytes, link: str | None, status: int, catalog: bool, keep_invalid: bool) -> None:
    if status == 400 and keep_invalid:  # a refused page size, sometimes
        body = b'{"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]}'
    request = proto.catalog_page(page_size=100) if catalog else proto.tags_page("app")
    url = CATALOG_URL + "?n=100" if catalog else f"{REGISTRY}/v2/app/tags/list"
    headers = {"link": link} if link is not None else {}
    answer = proto.Answer.of(status, headers, body, url=url, method="GET")
    if catalog:
        page = typed_or_value(lambda: proto.interpret_catalog_page(request, answer,
                                                                   keep_invalid=keep_invalid))
    else:
        page = typed_or_value(lambda: proto.interpret_tags_page(request, answer))
    if page is None:
        return
    validate = validate_repository if catalog else validate_tag
    for name in page.entries:
        assert validate(name) == name
        if catalog:
            assert_safe_repository(name)
    for entry in page.invalid:
        assert typed_or_value(lambda e=entry: validate(e.shown)) is None
    if page.next is not None:
        assert page.again or same_origin(page.next.url, url)


@pytest.mark.parametrize("n", ["%C2%B2", "9" * 5000], ids=["superscript-two", "5000-digits"])
def test_a_followed_page_refused_for_its_size_is_a_typed_error(n: str) -> None:
    """A page URL comes from the registry's Link; when the registry then refuses its
    page size (400 PAGINATION_NUMBER_INVALID), the ``n`` it chose is read back."""
    request = proto.Request(method="GET", url=f"{CATALOG_URL}?last=a&n={n}")
    answer = proto.Answer.of(400, {}, b'{"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]}',
                             url=request.url, method="GET")
    typed_or_value(lambda: proto.interpret_catalog_page(request, answer))


@given(st.text(max_size=30) | st.sampled_from(["²", "٣", "9" * 5000, " 12 ", "-1", "1e3"]))
def test_numbers_in_headers_are_ascii_decimals_or_none(text: str) -> None:
    """Content-Length, Range ends and page sizes: a non-negative int or None, never
    ValueError (``isdigit()`` takes "²"; ``int()`` refuses over 4,300 digits)."""
    answer = proto.Answer.of(200, {"content-length": text, "range": f"0-{text}"}, b"",
                             url=CATALOG_URL, method="HEAD")
    for read in (proto.interpret_blob_start, range_end):
        value = read(answer)
        assert value is None or (isinstance(value, int) and value >= 0)
    assert typed_or_value(lambda: proto.interpret_blob_size(answer)) is None or \
        proto.interpret_blob_size(answer) >= 0
