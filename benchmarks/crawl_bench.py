"""Crawl speed, side by side in one run: reginsight, python-dxf, skopeo, and a floor.

    python -m benchmarks.crawl_bench            (needs: pip install -e .[bench])

Starts the real registry, fills it (>= 150 repositories, >= 500 tags, shared base
layers, an index), puts a 20 ms round-trip latency proxy in front, and times each
contender against the proxy. Prints figures and ratios; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import reginsight as ri
from benchmarks.fill import fill
from benchmarks.floor import floor_crawl
from benchmarks.latency_proxy import latency_proxy
from benchmarks.peers import dxf_crawl, skopeo_inspect
from tests.registry_server import RegistryServer


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def _traced_peak(fn, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repositories", type=int, default=160)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one way; RTT is 2x")
    parser.add_argument("--skopeo-tags", type=int, default=30)
    parser.add_argument("--skip-dxf", action="store_true")
    parser.add_argument("--rounds", type=int, default=5, help="median of this many runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = RegistryServer(Path(tmp) / "registry").start()
        try:
            counts = fill(server.url, repositories=args.repositories)
            with latency_proxy(server.port, args.delay_ms) as (port, _):
                url, host = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
                print(f"registry: {counts['repositories']} repositories, {counts['tags']} tags; "
                      f"{2 * args.delay_ms:.0f} ms per round trip; concurrency "
                      f"{args.concurrency}", flush=True)
                samples: dict[str, list[float]] = {}

                def crawl(since=None):
                    with ri.Registry(url, max_connections=args.concurrency) as reg:
                        return ri.crawl(reg, concurrency=args.concurrency, progress=False,
                                        since=since)

                floor_crawl(url, concurrency=args.concurrency)  # warm the registry's caches
                inv = crawl()
                assert inv.errors.empty, inv.errors
                tags = len(inv.tags)
                for _ in range(args.rounds):  # interleaved, so drift hits all alike
                    for name, fn in (("reginsight.crawl", crawl),
                                     ("reginsight recrawl (since=)", lambda: crawl(inv)),
                                     ("floor (thread pool + httpx)",
                                      lambda: floor_crawl(url, concurrency=args.concurrency))):
                        samples.setdefault(name, []).append(_timed(fn)[1])
                rows = {name: statistics.median(values) for name, values in samples.items()}
                peak = _traced_peak(crawl)
                print(f"reginsight peak traced memory during the crawl: {peak / 2**20:.1f} MiB",
                      flush=True)
                if not args.skip_dxf:
                    n, rows["python-dxf (serial)"] = _timed(dxf_crawl, host)
                    assert n == tags
                pairs = list(inv.tags[["repository", "tag"]].astype(str).itertuples(
                    index=False, name=None))[: args.skopeo_tags]
                n, elapsed = _timed(skopeo_inspect, host, pairs)
                rows[f"skopeo inspect (per tag x {tags})"] = elapsed / n * tags
        finally:
            server.stop()

    base = rows["reginsight.crawl"]
    print(f"\nmedian of {args.rounds} interleaved runs (python-dxf, skopeo: one run)")
    print(f"{'contender':38} {'seconds':>8} {'tags/s':>8} {'x reginsight':>13}")
    for name, seconds in rows.items():
        print(f"{name:38} {seconds:8.2f} {tags / seconds:8.0f} {seconds / base:13.2f}")
    floor = rows["floor (thread pool + httpx)"]
    print(f"\nreginsight / floor: {base / floor:.2f} (target <= 1.25)")
    if "python-dxf (serial)" in rows:
        print(f"python-dxf / reginsight: {rows['python-dxf (serial)'] / base:.1f}x "
              "(target >= 10x)")
    print(f"recrawl speed-up: {base / rows['reginsight recrawl (since=)']:.1f}x")


if __name__ == "__main__":
    main()
