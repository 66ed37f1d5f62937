"""A crawl sharded over Dask against one process, side by side in one run.

    PYTHONPATH=. python -m benchmarks.distributed_bench     (needs: pip install -e .[dask])

Starts the real registry, fills it as crawl_bench does (161 repositories, 643 tags),
puts the latency proxy in front (20 ms per round trip), and times the single-process
crawl and ``crawl(..., cluster=client)`` on LocalClusters of 1, 2 and 4 worker
processes (one thread each, the same ``concurrency`` per shard as the single process
has), at the usual concurrency and a low one. Every distributed result is checked
equal to the single-process one. Beside each time: the CPU the registry, the proxy
and the crawl (client and workers) used, in cores (CPU seconds / wall seconds), and
how busy the whole machine was: where the scaling stops, and which process it waits on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import reginsight as ri
from benchmarks.fill import fill
from benchmarks.latency_proxy import latency_proxy
from tests.registry_server import RegistryServer

TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / TICKS  # utime stime cutime cstime


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class Sample:
    seconds: float
    registry: float  # cores
    proxy: float
    crawl: float  # the client process and the workers
    busy: float  # share of all cores busy

    @property
    def others(self) -> float:
        """Cores busy with anything else on the machine (the OS, other jobs)."""
        return max(self.busy * CORES - self.registry - self.proxy - self.crawl, 0.0)


def measure(run: Callable[[], object], pids: dict[str, list[int]]) -> tuple[Sample, object]:
    before = {name: sum(map(cpu_seconds, ps)) for name, ps in pids.items()}
    busy0, total0 = machine_busy()
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    busy1, total1 = machine_busy()
    used = {name: (sum(map(cpu_seconds, ps)) - before[name]) / seconds
            for name, ps in pids.items()}
    return Sample(seconds, used["registry"], used["proxy"], used["crawl"],
                  (busy1 - busy0) / max(total1 - total0, 1)), result


def assert_same(got: ri.Inventory, expected: ri.Inventory) -> None:
    assert got.repositories == expected.repositories and got.scope == expected.scope
    for (name, frame), (_, other) in zip(got.frames(), expected.frames(), strict=True):
        pd.testing.assert_frame_equal(frame, other, obj=name)


@contextlib.contextmanager
def cluster(workers: int) -> Iterator[object]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as client:
        yield client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repositories", type=int, default=160)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--low-concurrency", type=int, default=4)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one way; RTT is 2x")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=3, help="median of this many runs")
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",")]

    samples: dict[tuple[str, int], list[Sample]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server = RegistryServer(Path(tmp) / "registry").start()
        stack.callback(server.stop)
        counts = fill(server.url, repositories=args.repositories)
        port, proxy_pid = stack.enter_context(latency_proxy(server.port, args.delay_ms))
        url = f"http://127.0.0.1:{port}"
        print(f"registry: {counts['repositories']} repositories, {counts['tags']} tags; "
              f"{2 * args.delay_ms:.0f} ms per round trip; {CORES} cores", flush=True)

        def crawl(concurrency: int, client: object = None) -> ri.Inventory:
            with ri.Registry(url, max_connections=concurrency) as reg:
                return ri.crawl(reg, concurrency=concurrency, progress=False, cluster=client)

        contenders: dict[str, tuple[object, list[int]]] = {"single process": (None, [])}
        for workers in sizes:  # all up at once: the rounds interleave, drift hits all alike
            client = stack.enter_context(cluster(workers))
            crawl(args.low_concurrency, client)  # the workers import reginsight once
            contenders[f"dask, {workers} worker{'s' * (workers > 1)}"] = (
                client, list(client.run(os.getpid).values()))
        expected = {c: crawl(c) for c in (args.concurrency, args.low_concurrency)}
        assert expected[args.concurrency].errors.empty
        for n in range(args.rounds):
            for c, inv in expected.items():
                for label, (client, workers) in contenders.items():
                    pids = {"registry": [server.process.pid], "proxy": [proxy_pid],
                            "crawl": [os.getpid(), *workers]}
                    sample, got = measure(lambda c=c, client=client: crawl(c, client), pids)
                    assert_same(got, inv)
                    samples.setdefault((label, c), []).append(sample)
            print(f"  round {n + 1}: " + ", ".join(
                f"{label} @{c} {runs[-1].seconds:.2f}s" for (label, c), runs in samples.items()),
                flush=True)

    rows = [(label, c, sorted(runs, key=lambda s: s.seconds)[len(runs) // 2])
            for (label, c), runs in samples.items()]
    print(f"\nmedian of {args.rounds} interleaved runs; CPU in cores (CPU seconds / wall seconds); "
          f"busy: share of the machine's {os.cpu_count()} cores")
    print("| crawl | concurrency per process | seconds | speed-up | registry CPU | "
          "proxy CPU | client + workers CPU | other CPU | machine busy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = {c: s.seconds for label, c, s in rows if label == "single process"}
    for label, c, s in sorted(rows, key=lambda r: -r[1]):
        print(f"| {label} | {c} | {s.seconds:.2f} | {base[c] / s.seconds:.2f}x | "
              f"{s.registry:.2f} | {s.proxy:.2f} | {s.crawl:.2f} | {s.others:.2f} | "
              f"{s.busy:.0%} |")


if __name__ == "__main__":
    main()
