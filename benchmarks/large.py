"""A synthetic saved inventory of any size, written chunk by chunk (never whole in memory).

    python -m benchmarks.large PATH --layer-rows 100000000

Ten layers per image on average, so 100 million layer rows are about 10 million tags:
one ``v<N>`` tag per image plus ``latest`` on each repository's newest. Positions 0-2
are base layers from a pool of 200 (30 MB and up); the rest come from a pool of one
per 20 layer rows, so layers are shared across images and repositories as CI
rebuilds share them. Every image has its own config. Written in the layout of
``Inventory.save`` (format 2), so ``Inventory.load`` and ``Inventory.open`` read it.
The ``blobs`` counts columns (repositories, manifests) are left at 1: no figure
here reads them.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reginsight.inventory._dataset import write_frame, write_meta
from reginsight.inventory._frames import FRAME_NAMES

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
IMAGE_TYPE = "application/vnd.oci.image.manifest.v1+json"
BASE_POOL = 200
CHUNK_ROWS = 4_000_000
EPOCH = np.datetime64("2026-11-01T00:00:00", "ns")


def digests(prefix: str, ids: np.ndarray) -> pa.Array:
    """``sha256:<prefix><id, zero-padded to 64 characters>`` for each id, by Arrow."""
    text = pc.utf8_lpad(pa.array(ids).cast(pa.string()), 64 - len(prefix), "0")
    return pc.binary_join_element_wise(f"sha256:{prefix}", text, "")


def _constant(value: object, n: int, kind: pa.DataType) -> pa.Array:
    return pa.nulls(n, kind) if value is None else pa.repeat(pa.scalar(value, kind), n)


def write_large(path: Path, *, layer_rows: int = 100_000_000, repositories: int = 20_000,
                layers_per_image: int = 10, seed: int = 0) -> dict[str, int]:
    """Write the dataset into ``path`` (replaced); returns rows per frame."""
    if path.exists():
        shutil.rmtree(path)
    rng = np.random.default_rng(seed)
    manifests = max(1, layer_rows // layers_per_image)
    shared_pool = max(1, layer_rows // 20)
    names = pa.array([f"team{i % 50:02d}/app{i:06d}" for i in range(repositories)])
    manifest_repo = np.sort(rng.integers(0, repositories, manifests))
    per_manifest = rng.multinomial(layer_rows - manifests, np.full(manifests, 1 / manifests)) + 1
    pool_size = rng.integers(1_000, 5_000_000, BASE_POOL + shared_pool)
    pool_size[:BASE_POOL] += 30_000_000
    created = EPOCH - rng.integers(0, 700 * 86400, manifests).astype("m8[s]").astype("m8[ns]")
    rows = dict.fromkeys(FRAME_NAMES, 0)

    # chunks of whole repositories, about CHUNK_ROWS layer rows each
    repo_start = np.searchsorted(manifest_repo, np.arange(repositories + 1))
    layer_end = np.cumsum(per_manifest)
    bounds, last = [0], 0
    for r in range(1, repositories + 1):
        m = repo_start[r]
        if m > last and (layer_end[m - 1] - (layer_end[last - 1] if last else 0)
                         >= CHUNK_ROWS or r == repositories):
            bounds.append(m)
            last = m
    for chunk, (a, b) in enumerate(itertools.pairwise(bounds)):
        ids = np.arange(a, b)
        count = per_manifest[a:b]
        owner = np.repeat(ids, count)
        position = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
        layer_id = np.where(position < 3, rng.integers(0, BASE_POOL, len(owner)),
                            BASE_POOL + rng.integers(0, shared_pool, len(owner)))
        size = pool_size[layer_id]
        repo_of = pa.array(manifest_repo[owner])
        layers = pa.table({
            "repository": names.take(repo_of), "manifest": digests("a", owner),
            "position": pa.array(position), "digest": digests("b", layer_id),
            "size": pa.array(size), "media_type": _constant(LAYER_TYPE, len(owner), pa.string())})
        image_bytes = np.bincount(owner - a, weights=size, minlength=b - a).astype(np.int64) + 2000
        n = b - a
        repo = pa.array(manifest_repo[a:b])
        manifest_digest, config_digest = digests("a", ids), digests("c", ids)
        when = pa.array(created[a:b], type=pa.timestamp("ns", tz="UTC"))
        frame_manifests = pa.table({
            "repository": names.take(repo), "digest": manifest_digest,
            "media_type": _constant(IMAGE_TYPE, n, pa.string()),
            "kind": _constant("image", n, pa.string()),
            "parent": _constant(None, n, pa.string()),
            "os": _constant("linux", n, pa.string()),
            "architecture": _constant("amd64", n, pa.string()),
            "variant": _constant(None, n, pa.string()),
            "config_digest": config_digest, "created": when, "size": pa.array(image_bytes),
            "layers": pa.array(count.astype(np.int64)),
            "manifest_size": _constant(1000, n, pa.int64()),
            "role": _constant("image", n, pa.string()),
            "artifact_type": _constant(None, n, pa.string()),
            "subject": _constant(None, n, pa.string()),
            "subject_source": _constant(None, n, pa.string())})
        # each repository's newest image also gets "latest"
        local_repo = manifest_repo[a:b]
        order = np.lexsort((created[a:b], local_repo))
        newest = order[np.r_[local_repo[order][1:] != local_repo[order][:-1], True]]
        pick = np.concatenate([np.arange(n), newest])
        tags = pa.table({
            "repository": names.take(pa.array(local_repo[pick])),
            "tag": pa.concat_arrays([
                pc.binary_join_element_wise("v", pa.array(ids).cast(pa.string()), ""),
                _constant("latest", len(newest), pa.string())]),
            "digest": manifest_digest.take(pa.array(pick)),
            "media_type": _constant(IMAGE_TYPE, len(pick), pa.string()),
            "created": when.take(pa.array(pick)),
            "size": pa.array(image_bytes[pick])})
        blobs = pa.table({
            "digest": pa.concat_arrays([config_digest, manifest_digest]),
            "size": pa.array(np.r_[np.full(n, 2000), np.full(n, 1000)].astype(np.int64)),
            "kind": pa.concat_arrays([_constant("config", n, pa.string()),
                                      _constant("manifest", n, pa.string())]),
            "repositories": _constant(1, 2 * n, pa.int64()),
            "manifests": _constant(1, 2 * n, pa.int64()),
            "media_type": pa.concat_arrays([
                _constant("application/vnd.oci.image.config.v1+json", n, pa.string()),
                _constant(IMAGE_TYPE, n, pa.string())])})
        for name, table in (("layers", layers), ("manifests", frame_manifests),
                            ("tags", tags), ("blobs", blobs)):
            write_frame(path, name, table, part=str(chunk))
            rows[name] += len(table)
    for start in range(0, BASE_POOL + shared_pool, CHUNK_ROWS):
        ids = np.arange(start, min(start + CHUNK_ROWS, BASE_POOL + shared_pool))
        n = len(ids)
        write_frame(path, "blobs", pa.table({
            "digest": digests("b", ids), "size": pa.array(pool_size[ids]),
            "kind": _constant("layer", n, pa.string()),
            "repositories": _constant(1, n, pa.int64()),
            "manifests": _constant(1, n, pa.int64()),
            "media_type": _constant(LAYER_TYPE, n, pa.string())}), part=f"pool{start}")
        rows["blobs"] += n
    for name in FRAME_NAMES:
        (path / name).mkdir(parents=True, exist_ok=True)
    write_meta(path, registry="synthetic", taken_at="2026-11-27T00:00:00+00:00", scope=None,
               repositories=None, rows=rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--layer-rows", type=int, default=100_000_000)
    parser.add_argument("--repositories", type=int, default=20_000)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = write_large(args.path, layer_rows=args.layer_rows, repositories=args.repositories)
    print(f"wrote {rows} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
