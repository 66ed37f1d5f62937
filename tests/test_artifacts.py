"""The role table and the subject conventions (pure), and inventories saved before
roles existed."""

from __future__ import annotations

import pandas as pd
import pytest

import reginsight as ri
from reginsight._artifacts import classify, subject_of_tag
from reginsight.inventory._facts import buildx_subject
from tests.saved import save_version_1

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
HEX = "ab" * 32


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"kind": "image", "config_media_type": OCI_CONFIG,
      "layer_media_types": ["application/vnd.oci.image.layer.v1.tar+gzip"]}, ("image", None)),
    ({"kind": "schema1"}, ("image", None)),
    ({"kind": "index"}, ("index", None)),
    ({"kind": "image", "config_media_type": OCI_CONFIG,
      "layer_media_types": ["application/vnd.dev.cosign.simplesigning.v1+json"]},
     ("signature", "application/vnd.dev.cosign.simplesigning.v1+json")),
    ({"kind": "image", "artifact_type": "application/vnd.cncf.notary.signature",
      "config_media_type": EMPTY, "layer_media_types": ["application/jose+json"]},
     ("signature", "application/vnd.cncf.notary.signature")),
    ({"kind": "image", "config_media_type": OCI_CONFIG,
      "layer_media_types": ["application/vnd.in-toto+json"] * 2},
     ("attestation", "application/vnd.in-toto+json")),
    ({"kind": "image", "config_media_type": OCI_CONFIG,
      "layer_media_types": ["application/vnd.dsse.envelope.v1+json"]},
     ("attestation", "application/vnd.dsse.envelope.v1+json")),
    ({"kind": "image", "artifact_type": "application/spdx+json", "config_media_type": EMPTY},
     ("sbom", "application/spdx+json")),
    ({"kind": "image", "config_media_type": EMPTY,
      "layer_media_types": ["application/vnd.cyclonedx+json"]},
     ("sbom", "application/vnd.cyclonedx+json")),
    ({"kind": "image", "artifact_type": "application/vnd.dev.sigstore.bundle.v0.3+json",
      "annotations": {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"}},
     ("attestation", "application/vnd.dev.sigstore.bundle.v0.3+json")),
    ({"kind": "image", "artifact_type": "application/vnd.dev.sigstore.bundle.v0.3+json",
      "annotations": {"dev.sigstore.bundle.predicateType":
                      "https://sigstore.dev/cosign/sign/v1"}},
     ("signature", "application/vnd.dev.sigstore.bundle.v0.3+json")),
    ({"kind": "image", "config_media_type": "application/vnd.cncf.helm.config.v1+json",
      "layer_media_types": ["application/vnd.cncf.helm.chart.content.v1.tar+gzip"]},
     ("artifact", "application/vnd.cncf.helm.config.v1+json")),
    ({"kind": "image", "config_media_type": EMPTY,
      "layer_media_types": ["application/wasm"]}, ("artifact", None)),
    ({"kind": "index", "artifact_type": "application/vnd.example.bundle"},
     ("artifact", "application/vnd.example.bundle")),
])
def test_classify(kwargs, expected):
    options = {"artifact_type": None, "config_media_type": None, "layer_media_types": [],
               **kwargs}
    role = classify(**options)
    assert (role.role, role.artifact_type) == expected


def test_subject_conventions():
    assert subject_of_tag(f"sha256-{HEX}") == (f"sha256:{HEX}", "fallback tag")
    assert subject_of_tag(f"sha256-{HEX}.sig") == (f"sha256:{HEX}", "cosign tag")
    assert subject_of_tag(f"sha256-{HEX}.att") == (f"sha256:{HEX}", "cosign tag")
    for tag in ("latest", f"sha256-{HEX}.txt", f"sha256-{HEX[:-2]}", f"sha256-{HEX.upper()}"):
        assert subject_of_tag(tag) is None
    marked = {"vnd.docker.reference.type": "attestation-manifest"}
    assert buildx_subject({**marked, "vnd.docker.reference.digest": f"sha256:{HEX}"}) == \
        f"sha256:{HEX}"
    assert buildx_subject({**marked, "vnd.docker.reference.digest": "<script>"}) is None
    assert buildx_subject({"vnd.docker.reference.digest": f"sha256:{HEX}"}) is None


def test_an_inventory_saved_before_roles_loads_with_them(tmp_path):
    sample = ri.Inventory.load(ri.__path__[0] + "/sample")
    dropped = {"manifests": ["role", "artifact_type", "subject", "subject_source"],
               "children": ["subject"]}
    save_version_1(sample, tmp_path / "old",
                   lambda name, frame: frame.drop(columns=dropped.get(name, [])))
    old = ri.Inventory.load(tmp_path / "old")
    pd.testing.assert_series_equal(old.manifests["role"], sample.manifests["role"])
    # subjects come back from tag names only: the manifests' own fields were not saved
    by_tag = old.manifests.dropna(subset=["subject"])
    assert set(by_tag["subject_source"]) == {"cosign tag", "fallback tag"}
    expected = sample.manifests[sample.manifests["subject_source"].isin(
        ["cosign tag", "fallback tag"])]
    assert sorted(by_tag["digest"]) == sorted(expected["digest"])
    assert old.children["subject"].isna().all()
