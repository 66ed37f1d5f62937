"""Reliability figures for docs/RELIABILITY.md, against the real registry.

    python -m benchmarks.reliability [--repositories 2000]

1. Faults: crawls through the fault-injection proxy (429 with Retry-After, 503,
   resets, truncated bodies, slow answers) at 10%, several seeds; each result is
   compared frame by frame with a clean crawl. Then tampered bytes at 20%.
2. Load: a crawl of >= 2,000 repositories x 5 tags, sampling resident memory and
   open sockets while it runs.
Prints Markdown tables. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas.testing as pdt

import reginsight as ri
from tests.fault_proxy import FaultProxy
from tests.images import Pusher
from tests.registry_server import RegistryServer

PATIENT = ri.RetryPolicy(attempts=8, base=0.005, cap=0.05)


def _same(a: ri.Inventory, b: ri.Inventory) -> bool:
    try:
        for (name, x), (_, y) in zip(a.frames(), b.frames(), strict=True):
            pdt.assert_frame_equal(x, y, obj=name)
    except AssertionError:
        return False
    return True


def faults(url: str, rounds: int) -> None:
    with ri.Registry(url) as reg:
        clean = ri.crawl(reg, "faults/*", progress=False)
    injected: Counter[str] = Counter()
    requests = equal = retries = 0
    for seed in range(rounds):
        with FaultProxy(url, rate=0.1, seed=seed) as proxy, \
                ri.Registry(proxy.url, retry=PATIENT) as reg:
            faulty = ri.crawl(reg, "faults/*", progress=False, concurrency=8)
            retries += reg.retries
        injected += proxy.injected
        requests += proxy.requests
        equal += _same(faulty, clean)
    print(f"\n{rounds} crawls through 10% faults, {requests} requests, {retries} retries; "
          f"{equal}/{rounds} equal to the clean crawl frame for frame")
    print("| fault | injected |\n|---|---:|")
    for fault, count in sorted(injected.items()):
        print(f"| {fault} | {count} |")
    tampered = mismatches = wrong = 0
    for seed in range(rounds):
        with FaultProxy(url, rate=0.2, tamper=True, seed=seed) as proxy, \
                ri.Registry(proxy.url, retry=PATIENT) as reg:
            inv = ri.crawl(reg, "faults/*", progress=False, concurrency=8)
        tampered += proxy.injected["tamper"]
        mismatches += int(inv.errors["error"].str.contains("DigestMismatch").sum())
        clean_rows = clean.manifests.set_index(["repository", "digest"])
        rows = inv.manifests.set_index(["repository", "digest"])
        wrong += int((~rows.index.isin(clean_rows.index)).sum())
    print(f"\ntampered bodies: {tampered}; DigestMismatch error rows: {mismatches}; "
          f"manifest rows not in the clean crawl: {wrong}")


def _fill_faults(url: str) -> None:
    pusher = Pusher(url)
    for n in range(12):
        for t in range(3):
            pusher.image(f"faults/app{n:02d}", f"v{t}",
                         layers=(b"base" * 4000, f"{n}-{t}".encode() * 500))
    pusher.close()


def _fill_load(url: str, repositories: int) -> int:
    with ri.Registry(url, max_connections=16) as reg:
        base = reg.upload_blob("load/base", b"shared base layer" * 4096)

        def one(n: int) -> int:
            repo = f"load/r{n:05d}"
            reg.mount_blob(repo, base, "load/base")
            docs = []
            for v in range(2):
                config = json.dumps({"architecture": "amd64", "os": "linux",
                                     "created": "2026-01-01T00:00:00Z",
                                     "config": {"Labels": {"n": f"{n}-{v}"}}}).encode()
                docs.append({"schemaVersion": 2,
                             "mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                        "digest": reg.upload_blob(repo, config),
                                        "size": len(config)},
                             "layers": [{"mediaType":
                                         "application/vnd.oci.image.layer.v1.tar+gzip",
                                         "digest": base, "size": 17 * 4096}]})
            for t in range(5):
                reg.put_manifest(repo, f"t{t}", docs[t % 2])
            return 5

        with ThreadPoolExecutor(16) as pool:
            return sum(pool.map(one, range(repositories)))


def _is_socket(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:  # closed between listing and looking
        return False


def _sampler(stop: threading.Event, peaks: dict[str, int]) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    while not stop.is_set():
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * page
        sockets = sum(1 for fd in os.listdir("/proc/self/fd") if _is_socket(fd))
        peaks["rss"] = max(peaks.get("rss", 0), rss)
        peaks["sockets"] = max(peaks.get("sockets", 0), sockets)
        time.sleep(0.02)


def load(url: str, repositories: int, concurrency: int) -> None:
    start = time.perf_counter()
    tags = _fill_load(url, repositories)
    filled = time.perf_counter() - start
    with ri.Registry(url, max_connections=concurrency) as reg:
        peaks: dict[str, int] = {}
        page = os.sysconf("SC_PAGE_SIZE")
        before = int(Path("/proc/self/statm").read_text().split()[1]) * page
        stop = threading.Event()
        sampler = threading.Thread(target=_sampler, args=(stop, peaks), daemon=True)
        sampler.start()
        start = time.perf_counter()
        inv = ri.crawl(reg, "load/*", progress=False, concurrency=concurrency)
        elapsed = time.perf_counter() - start
        stop.set()
        sampler.join()
    print(f"\nload: filled {repositories} repositories x 5 = {tags} tags in {filled:.0f} s")
    print("| figure | value |\n|---|---:|")
    print(f"| repositories crawled | {inv.tags['repository'].nunique():,} |")
    print(f"| tags | {len(inv.tags):,} |")
    print(f"| crawl time | {elapsed:.1f} s ({len(inv.tags) / elapsed:.0f} tags/s) |")
    print(f"| error rows | {len(inv.errors)} |")
    print(f"| resident memory before / peak | {before / 2**20:.0f} / "
          f"{peaks['rss'] / 2**20:.0f} MiB |")
    print(f"| open sockets, peak (concurrency {concurrency}) | {peaks['sockets']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repositories", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RegistryServer(Path(tmp) / "registry").start()
        try:
            _fill_faults(server.url)
            faults(server.url, args.rounds)
            load(server.url, args.repositories, args.concurrency)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
