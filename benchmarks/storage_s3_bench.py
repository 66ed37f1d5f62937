"""The storage scan on S3 at a real round-trip time: reginsight (scan_storage +
gc_preview) against each registry's own ``garbage-collect --dry-run``, both reading
the S3 stand-in (benchmarks.s3_standin) through the latency proxy.

    python -m benchmarks.storage_bench --s3 [--delay-ms 20] [--s3-repositories 40]
        [--s3-churn 3] [--s3-small-revisions 300] [--s3-synthetic-revisions 10000]

1. The churned corpus (benchmarks.fill + churn + index_of_untagged, as the filesystem
   part) pushed through a real 2.8 registry whose storage is the stand-in (no proxy
   while filling). Then for each collector (2.8, 3.0; each with its own s3 driver
   configuration) and mode: the Go dry run through the proxy, and scan_storage +
   gc_preview through the proxy in a process of its own; each timed, its S3 requests
   counted by the stand-in; both must name the same blobs.
2. A small synthetic tree (``--s3-small-revisions``), written straight into the bucket
   in the registry's layout (storage_bench.synthetic_objects, the filesystem tree's
   generator; stored in the stand-in's backend as PutObject stores them, without a
   request each): the same runs, the same check; Go's seconds per request measured here.
3. The big synthetic tree (``--s3-synthetic-revisions``): Go's requests counted
   WITHOUT the proxy (its serial dry run at 20 ms would take hours), its time
   extrapolated as requests x its per-request cost on the small tree; reginsight
   run through the proxy: time, requests, peak memory.

The stand-in's CPU per request (from /proc/PID/stat) is printed for each phase, to
show it was not the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import storage_bench
from benchmarks.fill import fill
from benchmarks.s3_standin import Standin, counted, standin
from benchmarks.storage_bench import (
    COLLECTORS,
    MODES,
    churn,
    go_dry_run,
    index_of_untagged,
    synthetic_objects,
    timed,
)
from tests.registry_server import _yaml
from tests.s3_server import KEY, REGION, SECRET
from tests.versions import registry_of

BUCKET = "registry"
#: gc_preview's collector -> the registry version whose s3 driver reads the bucket
VERSION = {collector: version for collector, (version, _) in COLLECTORS.items()}


@dataclass
class Run:
    """One side's run on one tree: blobs named, seconds, the S3 requests it made."""

    named: set[str]
    seconds: float
    requests: dict[str, Any]
    cpu: float  # the stand-in's CPU seconds meanwhile
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return self.requests["requests"]


def write_objects(s3: Standin, root: str, objects: Iterable[tuple[str, bytes]],
                  workers: int = 32, *, straight: bool = True, batch: int = 16 << 20
                  ) -> int:
    """Put ``objects`` (path under ``root``, content) into the bucket, straight to the
    stand-in: by default into its backend in batches of ``batch`` bytes (as a plain
    PutObject stores them, ~50x faster than a request each), else as PutObject requests
    from ``workers`` threads; a path given twice keeps its last content. Returns the
    number of objects."""
    import boto3
    from botocore.config import Config

    above = f"{root.strip('/')}/".lstrip("/")
    latest = {above + path: data for path, data in objects}
    if straight:
        pending: list[tuple[str, bytes]] = []
        size = 0
        for item in latest.items():
            pending.append(item)
            size += len(item[0]) + len(item[1])
            if size >= batch:
                s3.server.put_objects(BUCKET, pending)
                pending, size = [], 0
        s3.server.put_objects(BUCKET, pending)
        return len(latest)
    client = boto3.client("s3", endpoint_url=s3.server.endpoint, aws_access_key_id=KEY,
                          aws_secret_access_key=SECRET, region_name=REGION,
                          config=Config(max_pool_connections=workers))
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda item: client.put_object(Bucket=BUCKET, Key=item[0],
                                                         Body=item[1]), latest.items()):
            pass
    return len(latest)


def go_config(s3: Standin, root: str, version: str, path: Path, *, proxied: bool) -> Path:
    """A garbage-collect config for ``version``'s s3 driver on ``root`` of the bucket."""
    storage = s3.registry_storage(BUCKET, root, version, proxied=proxied)
    del storage["filesystem"]
    path.write_text(_yaml({"version": "0.1", "log": {"level": "warn"},
                           "storage": {**storage, "delete": {"enabled": True}}}) + "\n")
    return path


def go_run(s3: Standin, tmp: Path, root: str, collector: str, delete_untagged: bool, *,
           proxied: bool = True) -> Run:
    config = go_config(s3, root, VERSION[collector], tmp / f"gc-{VERSION[collector]}.yml",
                       proxied=proxied)
    before, cpu = s3.server.counts(), s3.server.cpu_seconds()
    named, seconds = timed(go_dry_run, collector, config, delete_untagged)
    return Run(named, seconds, counted(before, s3.server.counts()),
               s3.server.cpu_seconds() - cpu)


def ours_run(s3: Standin, tmp: Path, root: str, collector: str, delete_untagged: bool
             ) -> Run:
    """scan_storage + gc_preview through the proxy, in a process of its own."""
    out = tmp / "measured.json"
    before, cpu = s3.server.counts(), s3.server.cpu_seconds()
    subprocess.run([sys.executable, "-m", "benchmarks.storage_s3_bench", "--measure",
                    f"s3://{BUCKET}{root}", json.dumps(s3.storage_options(proxied=True)),
                    collector, str(delete_untagged), str(out)], check=True)
    requests, cpu = counted(before, s3.server.counts()), s3.server.cpu_seconds() - cpu
    measured = json.loads(out.read_text())
    return Run(set(measured.pop("named")), measured["scan"] + measured["preview"],
               requests, cpu, measured)


def measure(url: str, options: str, collector: str, delete_untagged: str, out: str) -> None:
    """storage_bench.measure on ``url`` with these s3fs options (JSON)."""
    storage_bench.measure(url, collector, delete_untagged, out, json.loads(options))


HEADER = (f"{'version':7} {'mode':18} {'blobs':>7} {'Go s':>8} {'Go requests':>11} "
          f"{'reginsight s':>12} {'reginsight requests':>19} {'speed-up':>8}")


def line(collector: str, mode: bool, go: Run, ours: Run, *, go_seconds: float | None = None,
         note: str = "") -> str:
    seconds = go.seconds if go_seconds is None else go_seconds
    return (f"{VERSION[collector]:7} {MODES[mode]:18} {len(ours.named):7,} {seconds:8.2f} "
            f"{go.count:11,} {ours.seconds:12.2f} {ours.count:19,} "
            f"{seconds / ours.seconds:7.1f}x{note}")


def operations(run: Run) -> str:
    return ", ".join(f"{op} {n:,}" for op, n in sorted(run.requests["operations"].items()))


def cpu_note(label: str, runs: Iterable[Run]) -> str:
    runs = list(runs)
    cpu, requests = sum(r.cpu for r in runs), sum(r.count for r in runs)
    return (f"stand-in CPU ({label}): {cpu:.1f} s for {requests:,} requests = "
            f"{1000 * cpu / max(requests, 1):.2f} ms per request")


def compare(s3: Standin, tmp: Path, root: str, title: str) -> dict[tuple[str, bool], Run]:
    """Each collector and mode, Go then reginsight, through the proxy; asserts both name
    the same blobs; prints the table; returns Go's runs."""
    print(f"\n{title}\n{HEADER}", flush=True)
    gos, ours = {}, {}
    for mode in MODES:
        for collector in COLLECTORS:
            go = go_run(s3, tmp, root, collector, mode)
            mine = ours_run(s3, tmp, root, collector, mode)
            assert mine.named == go.named, (collector, MODES[mode],
                                            sorted(mine.named ^ go.named)[:5])
            gos[collector, mode], ours[collector, mode] = go, mine
            print(line(collector, mode, go, mine), flush=True)
    for (collector, mode), go in gos.items():
        print(f"  Go {VERSION[collector]} {MODES[mode]}: {operations(go)}; "
              f"{1000 * go.seconds / go.count:.1f} ms per request")
    mine = next(iter(ours.values()))
    print(f"  reginsight: {operations(mine)}; {mine.extra['revisions']:,} revisions, "
          f"peak memory {max(r.extra['peak_kib'] for r in ours.values()) / 1024:.0f} MiB")
    print("  " + cpu_note("Go runs", gos.values()))
    print("  " + cpu_note("reginsight runs", ours.values()))
    return gos


def corpus(s3: Standin, tmp: Path, args: argparse.Namespace) -> None:
    root = "/corpus"
    server = registry_of("2.8", tmp / "registry", storage=s3.registry_storage(
        BUCKET, root, "2.8", proxied=False)).start()
    start = time.perf_counter()
    try:
        counts = fill(server.url, repositories=args.s3_repositories)
        untagged = churn(server.url, args.s3_churn)
        index_of_untagged(server.url)
    finally:
        server.stop()  # the collectors run on a registry at rest
    print(f"corpus: {counts['repositories'] + 1} repositories, {counts['tags'] + 1} tags, "
          f"{untagged} manifests left untagged by churn, a tagged index of 2 untagged "
          f"platforms; pushed through Distribution 2.8 in {time.perf_counter() - start:.0f} s",
          flush=True)
    compare(s3, tmp, root, f"churned corpus, {s3.delay_ms:g} ms per S3 round trip")


def synthetic(s3: Standin, tmp: Path, args: argparse.Namespace) -> None:
    small, big = "/small", "/big"
    start = time.perf_counter()
    written = write_objects(s3, small, synthetic_objects(args.s3_small_revisions, 100))
    print(f"\nsmall synthetic tree: {args.s3_small_revisions:,} revisions, {written:,} "
          f"objects written in {time.perf_counter() - start:.0f} s", flush=True)
    gos = compare(s3, tmp, small, f"small synthetic tree, {s3.delay_ms:g} ms per S3 "
                  "round trip (Go's per-request cost measured here)")
    per_request = {key: go.seconds / go.count for key, go in gos.items()}

    start, cpu = time.perf_counter(), s3.server.cpu_seconds()
    written = write_objects(s3, big, synthetic_objects(args.s3_synthetic_revisions))
    seconds = time.perf_counter() - start
    print(f"\nbig synthetic tree: {args.s3_synthetic_revisions:,} revisions, {written:,} "
          f"objects written in {seconds:.0f} s (stand-in CPU "
          f"{1000 * (s3.server.cpu_seconds() - cpu) / written:.2f} ms per PUT)", flush=True)
    print(f"Go's time EXTRAPOLATED, not run: its requests counted on a dry run without the "
          f"proxy, x its seconds per request through the proxy on the small tree\n{HEADER}",
          flush=True)
    direct, ours = {}, {}
    for mode in MODES:
        for collector in COLLECTORS:
            go = go_run(s3, tmp, big, collector, mode, proxied=False)
            mine = ours_run(s3, tmp, big, collector, mode)
            assert mine.named == go.named, (collector, MODES[mode],
                                            sorted(mine.named ^ go.named)[:5])
            direct[collector, mode], ours[collector, mode] = go, mine
            estimate = go.count * per_request[collector, mode]
            print(line(collector, mode, go, mine, go_seconds=estimate,
                       note=f"  (Go run without proxy: {go.seconds:.0f} s)"), flush=True)
    for (collector, mode), go in direct.items():
        print(f"  Go {VERSION[collector]} {MODES[mode]}: {operations(go)}; "
              f"{go.count / args.s3_synthetic_revisions:.1f} requests per revision")
    for (collector, mode), mine in ours.items():
        print(f"  reginsight {VERSION[collector]} {MODES[mode]}: scan "
              f"{mine.extra['scan']:.1f} s, preview {mine.extra['preview']:.1f} s, peak "
              f"memory {mine.extra['peak_kib'] / 1024:.0f} MiB, {mine.count:,} requests")
    print("  " + cpu_note("Go runs without proxy", direct.values()))
    print("  " + cpu_note("reginsight runs", ours.values()))


def run(args: argparse.Namespace) -> None:
    """The S3 part of storage_bench (its --s3)."""
    with tempfile.TemporaryDirectory() as name, standin(Path(name) / "standin",
                                                        args.delay_ms, log=args.s3_log) as s3:
        tmp = Path(name)
        s3.server.client().create_bucket(Bucket=BUCKET)
        print(f"S3 stand-in {s3.server.endpoint} (pid {s3.server.process.pid}), latency "
              f"proxy {s3.proxied}: {s3.delay_ms:g} ms per request/response round trip "
              "(half each way) and one more per new connection", flush=True)
        if args.s3_repositories:
            corpus(s3, tmp, args)
        if args.s3_small_revisions:
            synthetic(s3, tmp, args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3", action="store_true",
                        help="the S3 benchmark (this module) instead of the filesystem's")
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help="S3: added per request/response round trip")
    parser.add_argument("--s3-repositories", type=int, default=40)
    parser.add_argument("--s3-churn", type=int, default=3)
    parser.add_argument("--s3-small-revisions", type=int, default=300)
    parser.add_argument("--s3-synthetic-revisions", type=int, default=10_000)
    parser.add_argument("--s3-log", type=Path, help="S3: the stand-in's request lines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", nargs=5, help=argparse.SUPPRESS,
                        metavar=("URL", "OPTIONS", "COLLECTOR", "DELETE_UNTAGGED", "OUT"))
    add_arguments(parser)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
    else:
        run(args)


if __name__ == "__main__":
    main()
