"""Signatures, SBOMs, attestations and other artifacts: who refers to what, and what
each role stores. Pure DataFrame in, DataFrame out (roles: reginsight._artifacts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._artifacts import IMAGE_ROLES, ROLES
from ..inventory._reach import Reach
from ._storage import counts

if TYPE_CHECKING:
    from ..inventory._inventory import Inventory

REFERRER_COLUMNS = ["repository", "subject", "digest", "role", "artifact_type", "tags",
                    "orphaned"]


def _tags_on(inv: Inventory) -> pd.Series:
    """Comma-separated tag names per (repository, digest)."""
    tags = inv.tags.astype({"repository": str, "tag": str, "digest": str})
    return tags.sort_values("tag").groupby(["repository", "digest"])["tag"].agg(", ".join)


def manifest_roles(inv: Inventory) -> pd.DataFrame:
    """role, artifact_type and subject (string) indexed by (repository, digest)."""
    manifests = inv.manifests
    found = pd.DataFrame({"role": manifests["role"].astype("string").to_numpy(),
                          "artifact_type": manifests["artifact_type"].to_numpy(),
                          "subject": manifests["subject"].to_numpy()},
                         index=pd.MultiIndex.from_arrays([manifests["repository"].astype(str),
                                                          manifests["digest"].astype(str)]))
    return found[~found.index.duplicated()].astype("string")


def referrers(inv: Inventory) -> pd.DataFrame:
    """Every manifest that is about another one (``manifests.subject`` set): signatures,
    attestations, SBOMs and other referrers, one row per (repository, digest).

    Columns: repository, subject, digest, role, artifact_type (string), tags (string:
    the tags on the referrer, comma-separated, empty when none), orphaned (bool: its
    subject is not in its repository: the image it is about was deleted). Sorted by
    repository, subject, digest.
    """
    manifests = inv.manifests
    about = manifests[manifests["subject"].notna()]
    held = pd.MultiIndex.from_arrays([manifests["repository"].astype(str),
                                      manifests["digest"].astype(str)])
    subjects = pd.MultiIndex.from_arrays([about["repository"].astype(str),
                                          about["subject"].astype(str)])
    keys = pd.MultiIndex.from_arrays([about["repository"].astype(str),
                                      about["digest"].astype(str)])
    frame = pd.DataFrame({
        "repository": about["repository"].astype(str),
        "subject": about["subject"].astype(str),
        "digest": about["digest"].astype(str),
        "role": about["role"].astype(str),
        "artifact_type": about["artifact_type"],
        "tags": _tags_on(inv).reindex(keys).fillna("").to_numpy(),
        "orphaned": ~subjects.isin(held),
    }).astype({c: "string" for c in REFERRER_COLUMNS[:-1]})
    return frame.sort_values(["repository", "subject", "digest"], ignore_index=True)


def storage_by_role(inv: Inventory) -> pd.DataFrame:
    """What each role stores, in the order of ``reginsight._artifacts.ROLES`` (image,
    index, signature, attestation, sbom, artifact), roles with no manifest left out.

    Columns: role (string), manifests (int64: distinct digests), stored_bytes (int64:
    the distinct config and layer blobs its manifests reference; a blob several roles
    use counts in each), exclusive_bytes (int64: blobs no other role uses). An index
    references manifests, not blobs: its bytes are its images'.
    """
    roles = inv.manifests.drop_duplicates("digest")
    codes = pd.Categorical(roles["role"].astype(str), categories=ROLES).codes
    used = Reach.of(inv).blobs_referenced(pd.Series(codes, index=roles["digest"].astype(object)))
    role_ids = used["group"].to_numpy()
    blob_ids = used["digest"].cat.codes.to_numpy()
    holders = counts(blob_ids, len(used["digest"].cat.categories))
    size = used["size"].to_numpy(dtype=np.float64)
    frame = pd.DataFrame({
        "role": pd.array(ROLES, dtype="string"),
        "manifests": np.bincount(codes[codes >= 0], minlength=len(ROLES)).astype(np.int64),
        "stored_bytes": counts(role_ids, len(ROLES), size).astype(np.int64),
        "exclusive_bytes": counts(role_ids, len(ROLES),
                                  np.where(holders[blob_ids] == 1, size, 0.0)).astype(np.int64),
    })
    return frame[frame["manifests"] > 0].reset_index(drop=True)


def images_without(inv: Inventory, role: str = "signature") -> pd.DataFrame:
    """The tags of images and indexes that no referrer of ``role`` is about: "which
    images are unsigned" is ``ri.images_without(inv, "signature")``. A referrer about
    any manifest the tag reaches counts (cosign signs the index; buildx attests each
    platform image). Tags that are themselves referrers or artifacts are left out.

    Columns: repository, tag, digest (string), role (string: image/index). Sorted.
    """
    if role not in ROLES:
        raise ValueError(f"role={role!r}: choose one of {', '.join(ROLES)}")
    manifests = inv.manifests
    keys = pd.MultiIndex.from_arrays([inv.tags["repository"].astype(str),
                                      inv.tags["digest"].astype(str)])
    found = manifest_roles(inv).reindex(keys)
    tag_role = found["role"].to_numpy(dtype=object)
    candidates = (found["role"].isin(IMAGE_ROLES) & found["subject"].isna()).to_numpy()
    about = manifests[(manifests["role"] == role) & manifests["subject"].notna()]
    covering = Reach.of(inv).tags_reaching_placements(about["repository"].astype(str),
                                                       about["subject"].astype(str))
    has = np.zeros(len(inv.tags), dtype=bool)
    has[covering["tag"].to_numpy()] = True
    chosen = candidates & ~has
    frame = pd.DataFrame({
        "repository": inv.tags["repository"].astype(str)[chosen],
        "tag": inv.tags["tag"].astype(str)[chosen],
        "digest": inv.tags["digest"].astype(str)[chosen],
        "role": tag_role[chosen],
    }).astype("string")
    return frame.sort_values(["repository", "tag"], ignore_index=True)
