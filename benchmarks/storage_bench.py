"""Reading a registry's storage: reginsight (scan_storage + gc_preview) against the
registries' own ``garbage-collect --dry-run`` on the same tree, for both collectors:
Distribution 2.8 (Debian's ``docker-registry``) against
``gc_preview(..., collector="distribution-2")``, and Distribution 3.0 (upstream v3.0.0,
found as the tests find it) against ``collector="distribution-3"``.

    python -m benchmarks.storage_bench [--repositories 160] [--churn 3] [--rounds 5]
                                       [--synthetic-manifests 100000]
    python -m benchmarks.storage_bench --s3 [--delay-ms 20] ...  (benchmarks.storage_s3_bench)

1. The benchmark corpus (benchmarks.fill) plus churn: ``latest`` of every repository
   re-pushed ``--churn`` times, leaving untagged manifests, some manifests deleted,
   leaving unreferenced blobs, and a tagged multi-arch index whose platforms were
   pushed by digest only (2.8's --delete-untagged deletes them, 3.0's keeps them). Each
   collector and reginsight's model of it run in both modes (plain, --delete-untagged),
   alternating, medians of ``--rounds``; the blobs a model names must be the blobs its
   own collector names.
2. A synthetic storage tree of ``--synthetic-manifests`` manifests written straight to
   disk (1,000 repositories, a third of the manifests untagged): each collector's dry
   run in both modes, each followed by scan_storage + that preview in a process of its
   own (time, peak memory); the blobs named compared likewise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd

import reginsight as ri
from benchmarks.fill import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, fill
from tests.registry_server import (
    REGISTRY_BINARY,
    REGISTRY_V3_BINARY,
    RegistryServer,
    registry_environment,
)

_ELIGIBLE = re.compile(r"blob eligible for deletion: (\S+)")
#: gc_preview's collector -> (the registry version, its binary)
COLLECTORS = {"distribution-2": ("2.8", REGISTRY_BINARY),
              "distribution-3": ("3.0", REGISTRY_V3_BINARY)}
MODES = {False: "plain", True: "--delete-untagged"}


def churn(url: str, times: int) -> int:
    """Re-push ``latest`` of every repository ``times`` times (the manifests pushed are
    returned), and delete the manifest of ``1.0`` in every fourth repository (its own
    blobs become unreferenced)."""
    pushed = 0
    with ri.Registry(url) as reg:
        for number, repository in enumerate(reg.repositories()):
            if not repository.startswith("team"):
                continue
            if number % 4 == 0:
                reg.delete_manifest(repository, reg.manifest_digest(repository, "1.0"))
            for n in range(times):
                manifest = reg.manifest(repository, "latest")
                doc = json.loads(manifest.raw)
                layer = f"churn {repository} {n}".encode() * 64
                doc["layers"][-1] = {**doc["layers"][-1], "digest": reg.upload_blob(
                    repository, layer), "size": len(layer)}
                reg.put_manifest(repository, "latest", doc)
                pushed += 1
    return pushed


def index_of_untagged(url: str, repository: str = "platform/by-digest") -> None:
    """A tagged multi-arch index whose two platforms were pushed by digest only: 2.8's
    --delete-untagged deletes the platforms' own blobs, 3.0's keeps what the index
    reaches (where the two collectors differ)."""
    with ri.Registry(url) as reg:
        children = []
        for arch in ("amd64", "arm64"):
            config = json.dumps({"architecture": arch, "os": "linux"}).encode()
            layer = f"{repository} {arch}".encode() * 256
            raw = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "size": len(config),
                           "digest": reg.upload_blob(repository, config)},
                "layers": [{"mediaType": OCI_LAYER, "size": len(layer),
                            "digest": reg.upload_blob(repository, layer)}]}).encode()
            digest = f"sha256:{hashlib.sha256(raw).hexdigest()}"
            reg.put_manifest(repository, digest, raw, OCI_MANIFEST)
            children.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw),
                             "platform": {"os": "linux", "architecture": arch}})
        reg.put_manifest(repository, "multi", {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": children})


def gc_config(root: Path, path: Path) -> Path:
    """A config both versions read: the filesystem driver on ``root``, delete enabled."""
    path.write_text("version: 0.1\nlog: {level: warn}\nstorage:\n"
                    f"  filesystem: {{rootdirectory: {json.dumps(str(root))}}}\n"
                    "  delete: {enabled: true}\n")
    return path


def go_dry_run(collector: str, config: Path, delete_untagged: bool) -> set[str]:
    """The blobs that version's ``garbage-collect --dry-run`` names."""
    extra = ["--delete-untagged"] if delete_untagged else []
    out = subprocess.run([COLLECTORS[collector][1], "garbage-collect", "--dry-run", *extra,
                          str(config)], capture_output=True, text=True, check=True,
                         env=registry_environment())
    return set(_ELIGIBLE.findall(out.stdout + out.stderr))


def blobs_named(preview: pd.DataFrame) -> set[str]:
    """The blobs a preview deletes (a revision row keeps its blob)."""
    return set(preview.loc[preview["kind"] != "revision", "digest"])


def ours(root: Path, collector: str, delete_untagged: bool) -> set[str]:
    inv = ri.scan_storage(root, progress=False)
    return blobs_named(ri.gc_preview(inv, delete_untagged=delete_untagged, collector=collector))


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def differences(named: dict[tuple[str, bool], set[str]]) -> None:
    """Where the two collectors name different blobs on the same tree."""
    (two, _), (three, _) = COLLECTORS.values()
    for mode, name in MODES.items():
        only2 = named["distribution-2", mode] - named["distribution-3", mode]
        only3 = named["distribution-3", mode] - named["distribution-2", mode]
        print(f"{name}: " + ("both name the same blobs" if not only2 | only3 else
                             f"{len(only2)} blobs only {two} deletes, {len(only3)} only {three}"))


def row(collector: str, mode: bool, blobs: int, go: float, mine: float) -> str:
    version = COLLECTORS[collector][0]
    return (f"{version}  {MODES[mode]:18} blobs {blobs:7,}  go {go:6.2f} s  "
            f"reginsight {mine:6.2f} s  reginsight/go {mine / go:5.2f}")


def corpus(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RegistryServer(Path(tmp) / "registry").start()
        try:
            counts = fill(server.url, repositories=args.repositories)
            untagged = churn(server.url, args.churn)
            index_of_untagged(server.url)
        finally:
            server.stop()
        config = gc_config(server.storage, Path(tmp) / "gc.yml")
        inv = ri.scan_storage(server.storage, progress=False)
        usage = ri.disk_usage(inv).set_index("category")
        print(f"corpus: {counts['repositories'] + 1} repositories, {counts['tags'] + 1} tags, "
              f"{untagged} manifests left untagged by churn, a tagged index of 2 untagged "
              f"platforms; {len(inv.manifests)} revisions, {int(inv.blobs['on_disk'].sum())} "
              "blobs")
        print(usage.to_string())
        samples: dict[tuple[str, bool, str], list[float]] = {}
        named: dict[tuple[str, bool], set[str]] = {}
        for _ in range(args.rounds):
            for mode in MODES:
                for collector in COLLECTORS:
                    theirs, go_seconds = timed(go_dry_run, collector, config, mode)
                    mine, our_seconds = timed(ours, server.storage, collector, mode)
                    assert mine == theirs, (collector, MODES[mode], sorted(mine ^ theirs)[:5])
                    samples.setdefault((collector, mode, "go"), []).append(go_seconds)
                    samples.setdefault((collector, mode, "ours"), []).append(our_seconds)
                    named[collector, mode] = mine
    print(f"\nmedian of {args.rounds} alternating rounds; each model names the blobs its "
          "own collector names (target: reginsight/go <= 1.0)")
    median = {key: statistics.median(values) for key, values in samples.items()}
    for mode in MODES:
        for collector in COLLECTORS:
            print(row(collector, mode, len(named[collector, mode]),
                      median[collector, mode, "go"], median[collector, mode, "ours"]))
    differences(named)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


V2 = "docker/registry/v2"


def synthetic_objects(manifests: int, repositories: int = 1000
                      ) -> Iterator[tuple[str, bytes]]:
    """A storage tree as the registry writes it, as (path under the storage root,
    content): per manifest a config, a unique layer, a shared base layer; two of three
    manifests tagged, the rest moved-off tags. A path comes again only for a tag's
    ``current/link``, its last content the one that stays. The same tree whether it is
    written to disk (synthetic_tree) or to an object store."""

    def blob(data: bytes) -> tuple[str, tuple[str, bytes]]:
        hexa = hashlib.sha256(data).hexdigest()
        return f"sha256:{hexa}", (f"{V2}/blobs/sha256/{hexa[:2]}/{hexa}/data", data)

    base, base_object = blob(b"base layer" * 1000)
    yield base_object
    for n in range(manifests):
        repository = f"team{n % 10}/app{n % repositories:04d}"
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "created": f"2026-01-01T00:00:{n % 60:02d}Z", "n": n}).encode()
        layer = f"layer {n}".encode() * 20
        config_digest, config_object = blob(config)
        layer_digest, layer_object = blob(layer)
        yield config_object
        yield layer_object
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": config_digest, "size": len(config)},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": d, "size": s} for d, s in (
                               (base, 10_000), (layer_digest, len(layer)))]}
        digest, manifest_object = blob(json.dumps(doc).encode())
        yield manifest_object
        hexa, repo = digest[7:], f"{V2}/repositories/{repository}"
        for linked in [*doc["layers"], doc["config"]]:
            yield (f"{repo}/_layers/sha256/{linked['digest'][7:]}/link",
                   linked["digest"].encode())
        yield f"{repo}/_manifests/revisions/sha256/{hexa}/link", digest.encode()
        tag = f"v{n // repositories // 3}"  # three manifests per tag: the last one stays
        yield f"{repo}/_manifests/tags/{tag}/index/sha256/{hexa}/link", digest.encode()
        yield f"{repo}/_manifests/tags/{tag}/current/link", digest.encode()


def synthetic_tree(root: Path, manifests: int, repositories: int = 1000) -> None:
    """synthetic_objects written to disk under ``root``."""
    for path, data in synthetic_objects(manifests, repositories):
        _write(root / path, data)


def synthetic(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, start = Path(tmp) / "storage", time.perf_counter()
        synthetic_tree(root, args.synthetic_manifests)
        print(f"\nsynthetic tree of {args.synthetic_manifests:,} manifests written in "
              f"{time.perf_counter() - start:.0f} s")
        config = gc_config(root, Path(tmp) / "gc.yml")
        # warm the page cache with what each side reads: Go's dry run does not read the
        # image configs a scan reads, and the first pair measured would pay for them
        go_dry_run("distribution-2", config, True)
        ri.scan_storage(root, progress=False)
        rows, peak = [], 0
        for mode in MODES:
            for collector in COLLECTORS:
                theirs, go_seconds = timed(go_dry_run, collector, config, mode)
                # right after its dry run, so that both see the same load; a process
                # of its own, for its peak memory
                out = Path(tmp) / "measured.json"
                subprocess.run([sys.executable, "-m", "benchmarks.storage_bench", "--measure",
                                str(root), collector, str(mode), str(out)], check=True)
                measured = json.loads(out.read_text())
                mine = set(measured["named"])
                assert mine == theirs, (collector, MODES[mode], sorted(mine ^ theirs)[:5])
                peak = max(peak, measured["peak_kib"])
                rows.append(row(collector, mode, len(mine), go_seconds, measured["scan"]
                                + measured["preview"]) + f"  (scan {measured['scan']:.1f} s, "
                            f"preview {measured['preview']:.1f} s)")
    print(f"{measured['revisions']:,} revisions ({measured['untagged']:,} untagged), "
          f"{measured['blobs']:,} blobs; reginsight = scan_storage + gc_preview in a process "
          f"of its own, peak memory (max RSS) {peak / 2**20:.2f} GiB; each model names the "
          "blobs its own collector names")
    print("\n".join(rows))


def measure(root: str, collector: str, delete_untagged: str, out: str,
            storage_options: dict | None = None) -> None:
    """scan_storage + one gc_preview, timed, for the parent to compare."""
    start = time.perf_counter()
    inv = ri.scan_storage(root, storage_options=storage_options, progress=False)
    scanned = time.perf_counter() - start
    preview, seconds = timed(partial(ri.gc_preview, inv, collector=collector,
                                     delete_untagged=delete_untagged == "True"))
    Path(out).write_text(json.dumps({
        "scan": scanned, "preview": seconds, "revisions": len(inv.manifests),
        "untagged": int((~inv.manifests["tagged"]).sum()), "blobs": len(inv.blobs),
        "errors": len(inv.errors),
        "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "named": sorted(blobs_named(preview))}))


def main() -> None:
    from benchmarks import storage_s3_bench  # it imports this module

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=160)
    parser.add_argument("--churn", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--synthetic-manifests", type=int, default=100_000)
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS,
                        metavar=("ROOT", "COLLECTOR", "DELETE_UNTAGGED", "OUT"))
    storage_s3_bench.add_arguments(parser)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return
    if args.s3:
        storage_s3_bench.run(args)
        return
    corpus(args)
    if args.synthetic_manifests:
        synthetic(args)


if __name__ == "__main__":
    main()
