"""Inventories saved by older versions: the columns added since, derived from what
the old frames hold, so every saved inventory keeps loading."""

from __future__ import annotations

import pandas as pd

from .._artifacts import classify, subject_of_tag
from ._frames import CAT, STR, with_tag_images

#: the columns :func:`upgrade` derives when a saved frame lacks them: a saved file may
#: lack these (every other column it must have)
DERIVED: dict[str, tuple[str, ...]] = {
    "tags": ("created", "size"),
    "manifests": ("role", "artifact_type", "subject", "subject_source"),
    "children": ("subject",),
}
#: columns older versions saved under another name: {frame: {old name: name}}
RENAMED: dict[str, dict[str, str]] = {"children": {"index": "parent"}}


def upgrade(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Bring a saved inventory's frames up to today's columns, from what they hold:

    - ``children.index`` is now ``children.parent`` (the name ``index`` was hidden
      behind ``DataFrame.index``): renamed;
    - ``manifests.role``, ``artifact_type``, ``subject``, ``subject_source`` and
      ``children.subject``: roles come from the media types the frames kept;
      subjects only from tag names (cosign's and the referrers fallback tag): the
      manifests' own ``subject`` fields were not saved;
    - ``tags.created`` and ``tags.size``: from ``manifests`` (see
      :func:`._frames.with_tag_images`)."""
    for name, renames in RENAMED.items():
        frame = frames[name]
        old = {before: after for before, after in renames.items()
               if before in frame.columns and after not in frame.columns}
        if old:
            frames = {**frames, name: frame.rename(columns=old)}
    manifests = frames["manifests"]
    if "role" not in manifests.columns:
        frames = {**frames, "manifests": _with_roles(manifests, frames)}
    children = frames["children"]
    if "subject" not in children.columns:
        children = children.copy()
        children.insert(8, "subject", pd.array([pd.NA] * len(children), dtype=STR))
        frames = {**frames, "children": children}
    tags = frames["tags"]
    if not {"created", "size"} <= set(tags.columns):
        frames = {**frames, "tags": with_tag_images(tags, frames["manifests"],
                                                    frames["children"])}
    return frames


def _with_roles(manifests: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    config_types = frames["blobs"].drop_duplicates("digest").set_index("digest")["media_type"]
    layer_types = (frames["layers"].drop_duplicates(["manifest", "position"])
                   .groupby("manifest", observed=True)["media_type"].agg(list))
    roles = []
    for row in manifests.itertuples(index=False):
        config = None if pd.isna(row.config_digest) else config_types.get(row.config_digest)
        found = classify(kind=str(row.kind), artifact_type=None,
                         config_media_type=None if pd.isna(config) else str(config),
                         layer_media_types=[None if pd.isna(t) else str(t)
                                            for t in layer_types.get(row.digest, [])])
        roles.append((found.role, found.artifact_type))
    named: dict[tuple[str, str], tuple[str, str]] = {}
    for repo, tag, digest in frames["tags"][["repository", "tag", "digest"]].itertuples(
            index=False):
        subject = subject_of_tag(str(tag))
        if subject is not None and subject[0] != digest:
            named[(str(repo), str(digest))] = subject
    keys = list(zip(manifests["repository"].astype(str), manifests["digest"].astype(str),
                    strict=True))
    out = manifests.copy()
    at = out.columns.get_loc("manifest_size") + 1
    out.insert(at, "role", pd.Series([r for r, _ in roles], dtype=CAT, index=out.index))
    out.insert(at + 1, "artifact_type",
               pd.array([a for _, a in roles], dtype=STR))
    out.insert(at + 2, "subject", pd.array([named.get(k, (None,))[0] for k in keys], dtype=STR))
    out.insert(at + 3, "subject_source",
               pd.Series([named.get(k, (None, None))[1] for k in keys], dtype=CAT,
                         index=out.index))
    return out
