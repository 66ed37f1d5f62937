"""read_pulls on generated registry logs: lines per second against the floor (a plain
``json.loads`` of every line of the same file), and peak memory on a large log.

    python -m benchmarks.pulls_bench [--mb 200] [--big-gb 1.0] [--work DIR] [--rounds 3]

The logs are what Distribution 3.0 writes at level ``info`` with its access log on
(:func:`write_log`): every request a logrus ``response completed`` line (JSON or text
formatter) and a combined access-log line, but a HEAD of a manifest only the access-log
line (as 3.0 does). The mix, per 100 requests: 41 HEADs of a manifest by tag (nodes
checking their image, and the first request of each pull), 19 GETs of a manifest (an
index by digest, its platform's manifest; 404s for tags that are not there), 20 GETs of
a blob, 9 health checks (GET /v2/ by kube-probe), 11 push requests (a blob HEAD, an
upload POST and PUT, a manifest PUT); 300 repositories, each push a new version, 200
clients; lines: 63% access log, 37% logrus. Timed in this process (CPU seconds),
rounds interleaved, best round kept; the floor reads the same file in text mode with
``json.loads`` on every line (a line that is not JSON raises and is passed over). Peak
memory: a child process reads the big JSON log and reports its peak RSS (the kernel's
VmHWM) less its RSS once pandas and reginsight are imported, and the frame's own bytes.
Prints figures and ratios; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

#: the first request's time (seconds since the epoch) and the mean gap between requests
START = datetime(2026, 9, 1, tzinfo=UTC).timestamp()
GAP = 0.05
_AGENTS = ("containerd/v1.7.22", "docker/27.3.1 go/go1.22.7 git-commit/41ca978 "
           "kernel/6.1.0-26-amd64 os/linux arch/amd64", "cri-o/1.30.4", "skopeo/1.16.1")
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class _Clock:
    """Request times: RFC 3339 with nanoseconds (logrus) and the access log's second."""

    def __init__(self, rng: random.Random) -> None:
        self.now, self.rng, self._second, self._texts = START, rng, None, ("", "")

    def tick(self) -> tuple[str, str, str]:
        """(logrus end time, access-log start second, duration text) of the next request."""
        self.now += self.rng.expovariate(1 / GAP)
        took = self.rng.uniform(0.0002, 0.02)
        second = int(self.now)
        if second != self._second:
            moment = datetime.fromtimestamp(second, UTC)
            self._second = second
            self._texts = (moment.strftime("%Y-%m-%dT%H:%M:%S"),
                           moment.strftime("%d/%b/%Y:%H:%M:%S +0000"))
        end = self.now + took
        whole, nanos = int(end), round((end % 1) * 1e9) % 1_000_000_000
        if whole != second:  # the request ended in the next second
            stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        else:
            stamp = self._texts[0]
        return f"{stamp}.{nanos:09d}Z", self._texts[1], f"{took * 1000:.6f}ms"


def _digest(rng: random.Random) -> str:
    return f"sha256:{rng.getrandbits(256):064x}"


class _Registry:
    """What the generated registry holds and who pulls from it: 300 repositories, each
    one current image (an index, one platform's manifest, a config, 3 base layers and 2
    of its own), 200 clients; a push makes a repository's next version."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.repositories = [f"team{i % 40:02d}/service-{i:04d}" for i in range(300)]
        self.base = [_digest(rng) for _ in range(3)]
        self.images = {repo: self._version(0) for repo in self.repositories}
        self.clients = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                        for _ in range(200)]

    def _version(self, number: int) -> dict:
        rng = self.rng
        return {"number": number, "tag": f"v1.{number}.{rng.randrange(10)}",
                "index": _digest(rng), "child": _digest(rng), "config": _digest(rng),
                "layers": [*self.base, _digest(rng), _digest(rng)]}

    def requests(self, count: int):
        """(method, uri, status, client, agent, repository) of ``count`` requests in the
        mix."""
        rng = self.rng
        made = 0
        while made < count:
            roll = rng.random()
            repo = rng.choice(self.repositories)
            image = self.images[repo]
            client, agent = rng.choice(self.clients), rng.choice(_AGENTS)
            base = f"/v2/{repo}"
            if roll < 0.14:  # an image pulled: 7 requests on average
                batch = [("HEAD", f"{base}/manifests/{image['tag']}", 200),
                         ("GET", f"{base}/manifests/{image['index']}", 200),
                         ("GET", f"{base}/manifests/{image['child']}", 200),
                         ("GET", f"{base}/blobs/{image['config']}", 200)]
                batch += [("GET", f"{base}/blobs/{layer}", 200)
                          for layer in rng.sample(image["layers"], rng.randrange(4))]
            elif roll < 0.73:  # a node checks its tag
                batch = [("HEAD", f"{base}/manifests/{image['tag']}", 200)]
            elif roll < 0.89:
                batch = [("GET", "/v2/", 200)]
                client, agent = "10.0.0.1", "kube-probe/1.31"
            elif roll < 0.95:
                batch = [("GET", f"{base}/manifests/v0.{rng.randrange(99)}", 404)]
            else:  # a push of the next version: two blobs, then the manifest
                image = self.images[repo] = self._version(image["number"] + 1)
                upload = f"{base}/blobs/uploads/{rng.getrandbits(128):032x}"
                batch = [("HEAD", f"{base}/blobs/{image['layers'][-1]}", 404),
                         ("POST", f"{base}/blobs/uploads/", 202),
                         ("PUT", f"{upload}?_state=x{rng.getrandbits(200):050x}&digest="
                                 f"sha256%3A{image['layers'][-1][7:]}", 201),
                         ("PUT", f"{base}/manifests/{image['tag']}", 201)]
            for method, uri, status in batch:
                yield method, uri, status, client, agent, repo
            made += len(batch)


def write_log(path: Path, *, formatter: str, size: int, seed: int = 28) -> int:
    """Write a log of about ``size`` bytes in ``formatter`` ("json" or "text"); return
    its number of lines."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    clock = _Clock(rng)
    registry = _Registry(rng)
    instance = "4e9b7a0c-5c1e-4e43-9d4c-2b7f3f0f6d11"
    lines = written = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(_logrus(formatter, clock.tick()[0], "listening on [::]:5000", instance))
        while written < size:
            batch = []
            for method, uri, status, client, agent, repo in registry.requests(1000):
                end, second, took = clock.tick()
                port = rng.randrange(30000, 61000)
                size_out = 0 if method in ("HEAD", "PUT", "POST") else rng.randrange(500, 9000)
                if not (method == "HEAD" and "/manifests/" in uri and status == 200):
                    batch.append(_completed(formatter, end, method, uri, status, client,
                                            port, agent, took, size_out, repo, instance, rng))
                batch.append(f'{client} - - [{second}] "{method} {uri} HTTP/1.1" {status} '
                             f'{size_out} "" "{agent}"\n')
            text = "".join(batch)
            out.write(text)
            written += len(text)
            lines += len(batch)
    return lines + 1


def _logrus(formatter: str, time_text: str, message: str, instance: str) -> str:
    if formatter == "json":
        return json.dumps({"go.version": "go1.23.5", "instance.id": instance, "level": "info",
                           "msg": message, "time": time_text, "version": "v3.0.0"},
                          separators=(",", ":")) + "\n"
    return (f'time="{time_text}" level=info msg="{message}" go.version=go1.23.5 '
            f"instance.id={instance} version=v3.0.0\n")


def _completed(formatter: str, end: str, method: str, uri: str, status: int, client: str,
               port: int, agent: str, took: str, written: int, repo: str, instance: str,
               rng: random.Random) -> str:
    """logrus's response completed line, as 3.0 writes it."""
    fields = {"go.version": "go1.23.5", "http.request.host": "registry.example.internal",
              "http.request.id": f"{rng.getrandbits(128):032x}",
              "http.request.method": method, "http.request.remoteaddr": f"{client}:{port}",
              "http.request.uri": uri, "http.request.useragent": agent}
    if status < 300 and method == "GET":
        fields["http.response.contenttype"] = (
            "application/json" if uri == "/v2/" else
            "application/octet-stream" if "/blobs/" in uri else _OCI_MANIFEST)
    fields.update({"http.response.duration": took, "http.response.status": status,
                   "http.response.written": written, "instance.id": instance,
                   "level": "info" if status < 400 else "error",
                   "msg": "response completed" if status < 400
                   else "response completed with error", "time": end})
    if "/blobs/" in uri and "/uploads/" not in uri:
        fields["vars.digest"] = uri.rpartition("/")[2]
    if uri != "/v2/":
        fields["vars.name"] = repo
    if "/manifests/" in uri:
        fields["vars.reference"] = uri.rpartition("/")[2]
    fields["version"] = "v3.0.0"
    if formatter == "json":
        return json.dumps(fields, separators=(",", ":"), ensure_ascii=False) + "\n"
    head = (f'time="{end}" level={fields["level"]} msg="{fields["msg"]}"')
    rest = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items()
                    if key not in ("time", "level", "msg"))
    return f"{head} {rest}\n"


def _text_value(value: object) -> str:
    text = str(value)
    if all(c.isalnum() or c in "-._/@^+" for c in text):
        return text
    return json.dumps(text)


def floor(path: Path) -> int:
    """The least any reader does: every line through json.loads."""
    count = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            count += 1
            try:  # noqa: SIM105 - the floor: contextlib.suppress would cost more than it
                json.loads(line)
            except ValueError:
                pass
    return count


def child(path: str) -> None:
    """In its own process: read ``path`` and print the memory figures as JSON."""
    import reginsight as ri

    ri.read_pulls(iter(['{"time":"2026-01-01T00:00:00Z","msg":"warm up"}']))
    base = _rss_now()
    start = time.perf_counter()
    pulls = ri.read_pulls(path)
    seconds = time.perf_counter() - start
    peak = _peak_rss()
    print(json.dumps({"rows": len(pulls), "seconds": seconds, "base_rss": base,
                      "peak_rss": peak, "frame_bytes": int(pulls.memory_usage(deep=True).sum())}))


def _peak_rss() -> int:
    """This process's peak RSS (VmHWM): ru_maxrss would carry the RSS the process had
    when forked from the benchmark, before it ran Python afresh."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _rss_now() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _best(function, path: Path, rounds: list[float]) -> None:
    # CPU time: on a shared machine, wall time also counts the waits for a core
    start = time.process_time()
    function(path)
    rounds.append(time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=200, help="size of each timed log")
    parser.add_argument("--big-gb", type=float, default=1.0,
                        help="size of the log whose peak memory is measured (0: skip)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    import reginsight as ri

    work = args.work or Path(tempfile.mkdtemp(prefix="pulls-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for formatter in ("json", "text"):
        path = work / f"registry-{formatter}.log"
        if not path.exists():
            write_log(path, formatter=formatter, size=int(args.mb * 2**20))
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.rounds):
            _best(ri.read_pulls, path, ours)
            _best(floor, path, theirs)
        lines = floor(path)
        rows = len(ri.read_pulls(path))
        print(f"{formatter}: {path.stat().st_size / 2**20:,.0f} MiB, {lines:,} lines, "
              f"{rows:,} rows")
        print(f"  read_pulls        {min(ours):6.2f} s  {lines / min(ours):>10,.0f} lines/s")
        print(f"  floor (json.loads){min(theirs):6.2f} s  {lines / min(theirs):>10,.0f} lines/s")
        print(f"  read_pulls / floor = {min(ours) / min(theirs):.2f}")
    if args.big_gb:
        big = work / "registry-big.log"
        if not big.exists():
            lines = write_log(big, formatter="json", size=int(args.big_gb * 2**30))
        result = subprocess.run([sys.executable, "-c",
                                 "import sys; from benchmarks.pulls_bench import child; "
                                 "child(sys.argv[1])", str(big)],
                                capture_output=True, text=True, check=True)
        figures = json.loads(result.stdout)
        rows, grown = figures["rows"], figures["peak_rss"] - figures["base_rss"]
        print(f"big JSON log: {big.stat().st_size / 2**30:.2f} GiB, {rows:,} rows, "
              f"{figures['seconds']:.1f} s")
        print(f"  peak RSS {figures['peak_rss'] / 2**20:,.0f} MiB (after imports "
              f"{figures['base_rss'] / 2**20:,.0f} MiB): {grown / rows:.0f} bytes a row")
        print(f"  the frame: {figures['frame_bytes'] / 2**20:,.0f} MiB, "
              f"{figures['frame_bytes'] / rows:.0f} bytes a row")


if __name__ == "__main__":
    main()
