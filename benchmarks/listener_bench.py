"""The listener's throughput: events per second ``reginsight listen`` accepts (each
batch parsed, written and fsynced before its answer), and its peak memory.

    python -m benchmarks.listener_bench [--events 20000] [--concurrency 1 8 32]
                                        [--batch 1 100] [--rounds 3] [--large 1000000]

Envelopes shaped as Distribution sends them are posted over loopback, one new
connection per post (what a registry does: it closes idle connections after each),
``--concurrency`` posts in flight at once (a registry instance has one in flight per
endpoint; several instances or a relay have more), ``--batch`` events per envelope
(Distribution sends one), one event a millisecond apart. Each run gets a fresh store
and a fresh ``reginsight listen`` process, stopped with SIGTERM, so its compaction is
inside its peak memory (the kernel's high-water mark of its resident memory, VmHWM);
every event posted is checked to be read back once. Two floors run the same posts: the
same HTTP server answering 204 without parsing or storing (what the HTTP stack costs),
and a bare write + fsync per batch on the same disk (what durability costs).
``--large`` events are then posted once (compacted every 100,000 or 32 MiB) to show
the memory does not grow with the events stored. Prints figures and ratios; not a
test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

SECRET = secrets.token_hex(16)
MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
CHECKOUT = Path(__file__).resolve().parents[1]


#: the events' times: one a millisecond from here, as a busy registry's
START = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def event(number: int) -> dict:
    """One pull event as Distribution 2.8 sends it (about 1 KiB pretty-printed)."""
    digest = "sha256:" + f"{number:064x}"
    time = (START + timedelta(milliseconds=number)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return {
        "id": str(uuid.uuid4()), "timestamp": time + "123Z",
        "action": "pull",
        "target": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                   "size": 523, "digest": digest, "length": 523,
                   "repository": f"team/app{number % 50}",
                   "url": f"http://registry.example:5000/v2/team/app{number % 50}/manifests/"
                          f"{digest}", "tag": "v1"},
        "request": {"id": str(uuid.uuid4()), "addr": "10.0.3.7:35706",
                    "host": "registry.example:5000", "method": "GET",
                    "useragent": "containerd/1.7.2"},
        "actor": {}, "source": {"addr": "registry-0:5000",
                                "instanceID": "b7d6f3c4-7f63-4c6c-8f53-2a0e6c1b3d11"},
    }


def bodies(events: int, batch: int) -> list[bytes]:
    # pretty-printed, as Distribution's json.MarshalIndent writes them
    return [json.dumps({"events": [event(n) for n in range(start, min(start + batch,
                                                                      events))]},
                       indent=3).encode() for start in range(0, events, batch)]


def post_all(port: int, posts: list[bytes], concurrency: int) -> float:
    """Post every body, ``concurrency`` at a time, a new connection each; seconds."""
    headers = {"Content-Type": MEDIA_TYPE, "Authorization": f"Bearer {SECRET}"}
    position = iter(range(len(posts)))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("POST", "/events", body=posts[index], headers=headers)
            answer = connection.getresponse()
            answer.read()
            connection.close()
            if answer.status not in (200, 204):
                failures.append(str(answer.status))
                return

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if failures:
        raise SystemExit(f"posts refused: {failures[:5]}")
    return seconds


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(command: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(command, cwd=CHECKOUT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{command[:4]} did not start: {process.stderr.read()[-2000:]!r}")


def stop(process: subprocess.Popen) -> tuple[int, float]:
    """SIGTERM, then the exit status and the peak RSS in MiB: the kernel's high-water
    mark (VmHWM), read until the process is gone. Not wait4's ru_maxrss: Linux carries
    that across exec from the forking parent, this benchmark with its posts in memory."""
    os.kill(process.pid, signal.SIGTERM)
    peak = 0
    while process.poll() is None:
        peak = max(peak, high_water(process.pid))
        time.sleep(0.01)
    return process.returncode, peak / 1024


def high_water(pid: int) -> int:
    """A process's peak resident memory so far, in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def listener_run(posts: list[bytes], events: int, concurrency: int, work: Path,
                 *extra: str) -> tuple[float, float]:
    """One fresh listener: seconds to accept every post, peak RSS (MiB) until exit."""
    from reginsight.usage._store import read_store

    folder = Path(tempfile.mkdtemp(dir=work)) / "events"
    port = free_port()
    env = {**os.environ, "REGINSIGHT_LISTEN_SECRET": SECRET}
    process = serve([sys.executable, "-m", "reginsight", "listen", "--addr",
                     f"127.0.0.1:{port}", "-o", str(folder), *extra], port, env)
    seconds = post_all(port, posts, concurrency)
    status, peak = stop(process)
    if status != 0:
        raise SystemExit(f"the listener exited {status}: {process.stderr.read()[-2000:]!r}")
    stored = len(read_store(folder))
    if stored != events:
        raise SystemExit(f"{events} events posted, {stored} read back")
    return seconds, peak


def floor_run(posts: list[bytes], concurrency: int) -> float:
    port = free_port()
    process = serve([sys.executable, "-m", "benchmarks.listener_bench", "--floor-server",
                     str(port)], port)
    try:
        return post_all(port, posts, concurrency)
    finally:
        stop(process)


def fsync_floor(posts: list[bytes], work: Path) -> float:
    """Each body written and fsynced in turn to one file: durability alone."""
    path = Path(tempfile.mkdtemp(dir=work)) / "journal"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    start = time.perf_counter()
    for body in posts:
        os.write(fd, body)
        os.fsync(fd)
    seconds = time.perf_counter() - start
    os.close(fd)
    return seconds


def floor_server(port: int) -> None:
    """The listener's HTTP stack answering 204 without parsing or storing."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

    ThreadingHTTPServer.request_queue_size = 64    # as the listener's backlog
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", type=int, default=1_000_000,
                        help="events posted once to show memory stays bounded (0: skip)")
    parser.add_argument("--work", default=None, help="folder for the stores (default: tmp)")
    parser.add_argument("--floor-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_server(args.floor_server)
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="listener-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} cores; stores under {work}; medians of {args.rounds} rounds; "
          "a new connection per post")
    print(f"\n{'batch':>5} {'in flight':>9} {'events/s':>9} {'peak MiB':>9} "
          f"{'HTTP floor ev/s':>16} {'x floor':>8} {'fsync floor ev/s':>17} {'x fsync':>8}")
    for batch in args.batch:
        posts = bodies(args.events, batch)
        fsync_rate = args.events / statistics.median(
            fsync_floor(posts, work) for _ in range(args.rounds))
        for concurrency in args.concurrency:
            timings, peaks, floors = [], [], []
            for _ in range(args.rounds):     # interleaved: the machine's drift shared
                seconds, peak = listener_run(posts, args.events, concurrency, work)
                timings.append(seconds)
                peaks.append(peak)
                floors.append(floor_run(posts, concurrency))
            rate = args.events / statistics.median(timings)
            floor = args.events / statistics.median(floors)
            print(f"{batch:>5} {concurrency:>9} {rate:>9.0f} {max(peaks):>9.1f} "
                  f"{floor:>16.0f} {rate / floor:>8.2f} {fsync_rate:>17.0f} "
                  f"{rate / fsync_rate:>8.2f}", flush=True)
    if args.large:
        posts = bodies(args.large, 100)
        seconds, peak = listener_run(posts, args.large, 8, work)
        print(f"\n{args.large} events (batches of 100, 8 in flight, compacted every "
              f"100,000 events or 32 MiB and at the stop): {args.large / seconds:.0f} "
              f"events/s, peak RSS {peak:.1f} MiB")


if __name__ == "__main__":
    main()
