"""A synthetic Inventory of any size, built with numpy (no registry needed).

Default: 3,000 repositories, 30,000 manifests, 1,000,000 layer rows; base layers
shared across teams, tags sharing digests, a spread of creation times. Used to
measure frame memory and the analysis functions at scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import reginsight as ri
from reginsight.inventory._frames import SCHEMAS, tidy


def _digests(prefix: str, n: int) -> np.ndarray:
    return np.array([f"sha256:{prefix}{i:0{64 - len(prefix)}x}" for i in range(n)])


def _frame(name: str, columns: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    for col, dtype in SCHEMAS[name].items():
        if col not in frame:
            frame[col] = pd.NA
        if dtype == "category":
            frame[col] = frame[col].astype("string").astype(
                pd.CategoricalDtype(sorted(frame[col].dropna().astype(str).unique())))
        else:
            frame[col] = frame[col].astype(dtype)
    return tidy(name, frame[list(SCHEMAS[name])])


def synthetic_inventory(*, repositories: int = 3000, manifests: int = 30000,
                        layer_rows: int = 1_000_000, seed: int = 0) -> ri.Inventory:
    rng = np.random.default_rng(seed)
    repo_names = np.array([f"team{i % 50:02d}/app{i:05d}" for i in range(repositories)])
    manifest_repo = np.sort(rng.integers(0, repositories, manifests))
    manifest_digest = _digests("a", manifests)
    per_manifest = rng.multinomial(layer_rows - manifests, np.full(manifests, 1 / manifests)) + 1
    layer_manifest = np.repeat(np.arange(manifests), per_manifest)
    position = np.concatenate([np.arange(n) for n in per_manifest])
    # position 0-2: shared base layers (few, big); the rest mostly unique to the image
    base_pool, shared_pool = 200, layer_rows // 4
    layer_id = np.where(position < 3, rng.integers(0, base_pool, layer_rows),
                        base_pool + rng.integers(0, shared_pool, layer_rows))
    layer_size = np.where(position < 3, 30_000_000, 0) + rng.integers(1_000, 5_000_000,
                                                                        layer_rows)
    layer_digest = _digests("b", base_pool + shared_pool)
    sizes_by_id = pd.Series(layer_size).groupby(layer_id).first()
    layers = _frame("layers", {
        "repository": repo_names[manifest_repo[layer_manifest]],
        "manifest": manifest_digest[layer_manifest], "position": position,
        "digest": layer_digest[layer_id], "size": sizes_by_id.loc[layer_id].to_numpy(),
        "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
    })
    config_digest = _digests("c", manifests)
    created = pd.Timestamp("2026-11-01", tz="UTC") - pd.to_timedelta(
        rng.integers(0, 700 * 86400, manifests), unit="s")
    image_bytes = layers.groupby("manifest", observed=True)["size"].sum()
    manifests_frame = _frame("manifests", {
        "repository": repo_names[manifest_repo], "digest": manifest_digest,
        "media_type": "application/vnd.oci.image.manifest.v1+json", "kind": "image",
        "os": "linux", "architecture": "amd64", "config_digest": config_digest,
        "created": created, "size": image_bytes.loc[manifest_digest].to_numpy() + 2000,
        "layers": per_manifest, "manifest_size": 1000, "role": "image",
    })
    # one tag per manifest, plus "latest" sharing the newest digest of each repository
    newest = manifests_frame.sort_values("created").groupby("repository", observed=True).tail(1)
    tags = _frame("tags", {
        "repository": np.concatenate([repo_names[manifest_repo],
                                      newest["repository"].astype(str)]),
        "tag": np.concatenate([[f"v{i}" for i in range(manifests)],
                               np.full(len(newest), "latest")]),
        "digest": np.concatenate([manifest_digest, newest["digest"].astype(str)]),
        "media_type": "application/vnd.oci.image.manifest.v1+json",
    })
    blob_layers = layers.drop_duplicates("digest")
    blobs = _frame("blobs", {
        "digest": np.concatenate([blob_layers["digest"].astype(str), config_digest,
                                  manifest_digest]),
        "size": np.concatenate([blob_layers["size"], np.full(manifests, 2000),
                                np.full(manifests, 1000)]),
        "kind": ["layer"] * len(blob_layers) + ["config"] * manifests + ["manifest"] * manifests,
        "repositories": 1, "manifests": 1,
    })
    empty = {name: _frame(name, {}) for name in ("children", "errors")}
    return ri.Inventory(registry="synthetic", taken_at=pd.Timestamp("2026-11-27", tz="UTC"),
                        # created and size derived from the manifests, as on load
                        tags=tags.drop(columns=["created", "size"]), manifests=manifests_frame,
                        layers=layers, blobs=blobs,
                        **empty)


def frame_memory(inv: ri.Inventory) -> dict[str, int]:
    return {name: int(frame.memory_usage(deep=True).sum()) for name, frame in inv.frames()}


if __name__ == "__main__":
    import time

    start = time.perf_counter()
    inventory = synthetic_inventory()
    print(f"built in {time.perf_counter() - start:.1f} s: {len(inventory.layers):,} layer rows")
    memory = frame_memory(inventory)
    for name, size in memory.items():
        print(f"  {name:10} {size / 2**20:8.1f} MiB")
    print(f"  {'total':10} {sum(memory.values()) / 2**20:8.1f} MiB (target < 300 MB)")
