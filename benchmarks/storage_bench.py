"""Reading a registry's storage: reginsight (scan_storage + gc_preview) against the
registry's own ``docker-registry garbage-collect --dry-run`` on the same tree.

    python -m benchmarks.storage_bench [--repositories 160] [--churn 3] [--rounds 5]
                                       [--synthetic-manifests 100000]

1. The benchmark corpus (benchmarks.fill) plus churn: ``latest`` of every repository
   re-pushed ``--churn`` times, leaving untagged manifests, and some manifests deleted,
   leaving unreferenced blobs. Both tools run in both
   modes (plain, --delete-untagged), alternating, medians of ``--rounds``; the sets of
   blobs each names must be equal.
2. A synthetic storage tree of ``--synthetic-manifests`` manifests written straight to
   disk (1,000 repositories, a third of the manifests untagged): time and peak memory
   of scan_storage + both previews, in a child process.
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
from pathlib import Path

import reginsight as ri
from benchmarks.fill import fill
from tests.registry_server import REGISTRY_BINARY, RegistryServer, registry_environment

_ELIGIBLE = re.compile(r"blob eligible for deletion: (\S+)")


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


def go_dry_run(config: Path, delete_untagged: bool) -> set[str]:
    extra = ["--delete-untagged"] if delete_untagged else []
    out = subprocess.run([REGISTRY_BINARY, "garbage-collect", "--dry-run", *extra, str(config)],
                         capture_output=True, text=True, check=True, env=registry_environment())
    return set(_ELIGIBLE.findall(out.stdout + out.stderr))


def ours(root: Path, delete_untagged: bool) -> set[str]:
    inv = ri.scan_storage(root, progress=False)
    preview = ri.gc_preview(inv, delete_untagged=delete_untagged)
    return set(preview.loc[preview["kind"] != "revision", "digest"])


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def corpus(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RegistryServer(Path(tmp) / "registry").start()
        try:
            counts = fill(server.url, repositories=args.repositories)
            untagged = churn(server.url, args.churn)
        finally:
            server.stop()
        inv = ri.scan_storage(server.storage, progress=False)
        usage = ri.disk_usage(inv).set_index("category")
        print(f"corpus: {counts['repositories']} repositories, {counts['tags']} tags, "
              f"{untagged} manifests left untagged by churn; {len(inv.manifests)} revisions, "
              f"{int(inv.blobs['on_disk'].sum())} blobs")
        print(usage.to_string())
        samples: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for mode in (False, True):
                name = "--delete-untagged" if mode else "plain"
                theirs, go_seconds = timed(go_dry_run, server.config_path, mode)
                mine, our_seconds = timed(ours, server.storage, mode)
                assert mine == theirs, (name, mine ^ theirs)
                samples.setdefault(f"garbage-collect --dry-run ({name})", []).append(go_seconds)
                samples.setdefault(f"scan_storage + gc_preview ({name})", []).append(our_seconds)
                samples.setdefault(f"blobs named ({name})", []).append(len(mine))
    print(f"\nmedian of {args.rounds} alternating rounds; both name the same blobs")
    rows = {k: statistics.median(v) for k, v in samples.items()}
    for mode in ("plain", "--delete-untagged"):
        go, mine = rows[f"garbage-collect --dry-run ({mode})"], rows[
            f"scan_storage + gc_preview ({mode})"]
        print(f"{mode:18} blobs {rows[f'blobs named ({mode})']:6.0f}  go {go:6.2f} s  "
              f"reginsight {mine:6.2f} s  reginsight/go {mine / go:5.2f} (target <= 1.0)")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _blob(v2: Path, data: bytes) -> str:
    hexa = hashlib.sha256(data).hexdigest()
    _write(v2 / "blobs/sha256" / hexa[:2] / hexa / "data", data)
    return f"sha256:{hexa}"


def synthetic_tree(root: Path, manifests: int, repositories: int = 1000) -> None:
    """A storage tree as the registry writes it: per manifest a config, a unique layer,
    a shared base layer; two of three manifests tagged, the rest moved-off tags."""
    v2 = root / "docker/registry/v2"
    base = _blob(v2, b"base layer" * 1000)
    for n in range(manifests):
        repository = f"team{n % 10}/app{n % repositories:04d}"
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "created": f"2026-01-01T00:00:{n % 60:02d}Z", "n": n}).encode()
        layer = f"layer {n}".encode() * 20
        doc = json.dumps({"schemaVersion": 2,
                          "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": _blob(v2, config), "size": len(config)},
                          "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                      "digest": d, "size": s} for d, s in (
                                          (base, 10_000), (_blob(v2, layer), len(layer)))]})
        digest = _blob(v2, doc.encode())
        hexa = digest[7:]
        repo = v2 / "repositories" / repository
        for linked in json.loads(doc)["layers"] + [json.loads(doc)["config"]]:
            _write(repo / "_layers/sha256" / linked["digest"][7:] / "link",
                   linked["digest"].encode())
        _write(repo / "_manifests/revisions/sha256" / hexa / "link", digest.encode())
        tag = f"v{n // repositories // 3}"  # three manifests per tag: the last one stays
        _write(repo / "_manifests/tags" / tag / "index/sha256" / hexa / "link", digest.encode())
        _write(repo / "_manifests/tags" / tag / "current/link", digest.encode())


def synthetic(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthetic_tree(Path(tmp), args.synthetic_manifests)
        print(f"\nsynthetic tree of {args.synthetic_manifests:,} manifests written in "
              f"{time.perf_counter() - start:.0f} s")
        config = Path(tmp) / "config.yml"
        config.write_text("version: 0.1\nlog: {level: warn}\nstorage:\n"
                          f"  filesystem: {{rootdirectory: {tmp}}}\n  delete: {{enabled: true}}\n")
        go_dry_run(config, True)  # warm the page cache for both
        for mode in (False, True):
            _, seconds = timed(go_dry_run, config, mode)
            print(f"garbage-collect --dry-run{' --delete-untagged' if mode else ''}: "
                  f"{seconds:.1f} s")
        child = subprocess.run([sys.executable, "-m", "benchmarks.storage_bench",
                                "--measure", tmp], capture_output=True, text=True, check=True)
        print(child.stdout.strip())


def measure(root: str) -> None:
    start = time.perf_counter()
    inv = ri.scan_storage(root, progress=False)
    scanned = time.perf_counter() - start
    plain = ri.gc_preview(inv)
    risky = ri.gc_preview(inv, delete_untagged=True)
    total = time.perf_counter() - start
    print(f"scan_storage {scanned:.1f} s, + both gc_previews {total:.1f} s: "
          f"{len(inv.manifests):,} revisions ({int((~inv.manifests['tagged']).sum()):,} "
          f"untagged), {len(inv.blobs):,} blobs; plain GC frees {len(plain):,} blobs, "
          f"--delete-untagged {len(risky):,}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak memory of this process (max RSS): {peak:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=160)
    parser.add_argument("--churn", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--synthetic-manifests", type=int, default=100_000)
    parser.add_argument("--measure", metavar="ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    corpus(args)
    if args.synthetic_manifests:
        synthetic(args)


if __name__ == "__main__":
    main()
