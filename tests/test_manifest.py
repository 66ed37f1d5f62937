"""Manifest models from documents: every kind, unknown media types, and bad input."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reginsight as ri
from reginsight import _mediatypes as mt

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha512:" + "3" * 128


def raw(doc) -> bytes:
    return json.dumps(doc).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image(media_type=mt.OCI_MANIFEST, **extra):
    return {"schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 10},
            "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 20},
                       {"mediaType": "application/x-something-new", "digest": D3, "size": 3,
                        "annotations": {"a": "b"}, "urls": ["https://x/y"]}],
            **extra}


@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
def test_image_manifests(media_type):
    data = raw(image(media_type))
    manifest = ri.parse_manifest(data, content_type=media_type + "; charset=utf-8")
    assert isinstance(manifest, ri.ImageManifest) and manifest.kind == "image"
    assert manifest.media_type == media_type
    assert manifest.digest == digest(data) and manifest.size == len(data)
    assert manifest.config == ri.Descriptor(media_type=mt.OCI_CONFIG, digest=D1, size=10)
    unknown = manifest.layers[1]
    assert (unknown.media_type, unknown.digest, unknown.size) == (
        "application/x-something-new", D3, 3)
    assert dict(unknown.annotations) == {"a": "b"} and unknown.urls == ("https://x/y",)
    assert manifest.manifests == ()


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_indexes(media_type):
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 5,
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7",
                      "os.features": ["x"]}},
        {"mediaType": "application/vnd.in-toto+json", "digest": D2, "size": 6},
    ]}
    manifest = ri.parse_manifest(raw(doc))
    assert isinstance(manifest, ri.ImageIndex) and manifest.kind == "index"
    first, second = manifest.manifests
    assert str(first.platform) == "linux/arm/v7" and first.platform.os_features == ("x",)
    assert second.platform is None


def test_index_without_media_type_is_recognised_by_shape():
    doc = {"schemaVersion": 2, "manifests": []}
    assert ri.parse_manifest(raw(doc), content_type=mt.OCI_INDEX).kind == "index"
    assert ri.parse_manifest(raw(doc)).kind == "index"


def test_artifact_manifest_with_subject_and_unknown_type():
    doc = image("application/vnd.example.unknown+json",
                subject={"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 1},
                artifactType="application/x-sbom")
    manifest = ri.parse_manifest(raw(doc))
    assert manifest.kind == "image" and manifest.subject.digest == D1
    assert manifest.artifact_type == "application/x-sbom"


def _sign_like_libtrust(payload_doc: dict) -> bytes:
    """A prettyjws layout (signature bytes are not checked by the parser)."""
    pretty = json.dumps(payload_doc, indent=3).encode()
    format_length = len(pretty) - 2  # cut before the closing "\n}"
    tail = pretty[format_length:]
    protected = base64.urlsafe_b64encode(json.dumps(
        {"formatLength": format_length,
         "formatTail": base64.urlsafe_b64encode(tail).decode().rstrip("=")}).encode()
    ).decode().rstrip("=")
    signature = {"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected}
    signed = pretty[:format_length] + b',\n   "signatures": ' + json.dumps(
        [signature]).encode() + tail
    return signed, pretty


def test_signed_schema1_digest_covers_the_payload_only():
    doc = {"schemaVersion": 1, "name": "a/b", "tag": "v1", "architecture": "amd64",
           "fsLayers": [{"blobSum": D2}, {"blobSum": D1}],
           "history": [{"v1Compatibility": json.dumps({"id": "top", "created": "2020-01-01"})},
                       {"v1Compatibility": json.dumps({"id": "base"})}]}
    signed, payload = _sign_like_libtrust(doc)
    manifest = ri.parse_manifest(signed, content_type=mt.DOCKER_SCHEMA1_SIGNED)
    assert isinstance(manifest, ri.Schema1Manifest) and manifest.kind == "schema1"
    assert manifest.digest == digest(payload) != digest(signed)
    assert [layer.digest for layer in manifest.layers] == [D1, D2]  # base first
    assert all(layer.size is None for layer in manifest.layers)
    assert manifest.image_config["id"] == "top"
    assert (manifest.name, manifest.tag, manifest.architecture) == ("a/b", "v1", "amd64")
    assert len(manifest.signatures) == 1
    # and the digest is verified the same way when asked by digest
    assert ri.parse_manifest(signed, digest=digest(payload)).digest == digest(payload)
    with pytest.raises(ri.DigestMismatch):
        ri.parse_manifest(signed, digest=digest(signed))


def test_unsigned_schema1():
    doc = {"schemaVersion": 1, "name": "a", "tag": "t", "architecture": "amd64",
           "fsLayers": [{"blobSum": D1}], "history": [{"v1Compatibility": "{}"}]}
    manifest = ri.parse_manifest(raw(doc))
    assert manifest.media_type == mt.DOCKER_SCHEMA1 and manifest.digest == digest(raw(doc))


def test_digest_is_verified_with_its_own_algorithm():
    data = raw(image())
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    assert ri.parse_manifest(data, digest=sha512).digest == sha512
    with pytest.raises(ri.DigestMismatch) as caught:
        ri.parse_manifest(data, digest=D1)
    assert caught.value.expected == D1 and caught.value.actual == digest(data)


@pytest.mark.parametrize(("data", "why"), [
    (b"not json", "not a JSON object"),
    (b"[]", "not a JSON object"),
    (b"\xff\xfe", "not a JSON object"),
    (b'{"schemaVersion": 1, "signatures": [{"protected": "x"}], "a": ' + b"[" * 100_000
     + b"]" * 100_000 + b"}", "not a JSON object"),
    (raw({"mediaType": mt.OCI_MANIFEST}), "schemaVersion"),
    (raw({"schemaVersion": True}), "schemaVersion"),
    (raw({**image(), "manifests": []}), "both"),
    (raw(image(config={"digest": "sha256:short", "size": 1})), "config"),
    (raw(image(config={"digest": D1, "size": -1})), "size"),
    (raw(image(config={"digest": D1, "size": "10"})), "size"),
    (raw(image(layers={"not": "a list"})), "list"),
    (raw(image(annotations={"a": 1})), "annotations"),
    (raw({"schemaVersion": 2, "manifests": [{"digest": D1, "size": 1, "platform": "x"}]}),
     "platform"),
    (raw({"schemaVersion": 1, "fsLayers": [{"blobSum": "nope"}], "history": []}), "fsLayers"),
    (raw({"schemaVersion": 1, "fsLayers": [{"blobSum": D1}],
          "history": [{"v1Compatibility": "not json"}]}), "history"),
    (raw({"schemaVersion": 1, "fsLayers": [], "history": [],
          "signatures": [{"protected": "!!!"}]}), "protected"),
    (b"[" * 100_000, "not"),
])
def test_bad_documents_raise_manifest_invalid(data, why):
    with pytest.raises(ri.ManifestInvalid, match=why):
        ri.parse_manifest(data)


def test_media_type_must_agree_with_content_type():
    with pytest.raises(ri.ManifestInvalid, match="contradicts"):
        ri.parse_manifest(raw(image()), content_type=mt.DOCKER_MANIFEST)
    # generic content types say nothing and are not held against the document
    assert ri.parse_manifest(raw(image()), content_type="application/json").kind == "image"


def test_models_are_frozen():
    manifest = ri.parse_manifest(raw(image()))
    with pytest.raises(AttributeError):
        manifest.digest = D1  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.layers[0].annotations["x"] = "y"  # type: ignore[index]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["schemaVersion", "mediaType", "config", "layers",
                                       "manifests", "digest", "size", "platform",
                                       "fsLayers", "history", "blobSum", "signatures"]),
                      children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_any_json_parses_or_raises_manifest_invalid(doc):
    try:
        manifest = ri.parse_manifest(raw(doc))
    except ri.ManifestInvalid:
        return
    assert manifest.kind in ("image", "index", "schema1")
