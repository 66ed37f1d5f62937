"""``reginsight listen`` fed by real registries (Distribution 2.8 and 3.0) on loopback.

Each test starts the listener as its own process (``python -m reginsight listen``, the
secret in its environment) and a registry whose ``notifications:`` posts to it, pushes
images, pulls them with skopeo (by tag, by digest, a multi-arch index) and checks with
a HEAD, and compares the store with the registry's own log: its access-log line for
every request (both versions write one) and its "response completed" line's
``http.request.id``, which is the event's ``request.id`` (3.0 writes no such line for a
HEAD of a manifest: those are counted from the access log).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import pytest

from reginsight.usage._store import JOURNAL, PARTS, SESSIONS, read_events, read_store
from tests.images import Pusher
from tests.registry_server import free_port, listening, stop_process
from tests.skopeo import skopeo
from tests.versions import registry_of

SECRET = "listener-test-secret-7f3a9c2e"
CHECKOUT = Path(__file__).resolve().parents[1]
#: how long a test waits for the registry to deliver what it queued (not a speed bound:
#: delivery normally takes milliseconds; the registry retries every `backoff` after a
#: refusal or a dead listener)
DELIVERY = 90.0
INDEX_ACCEPT = ",".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json"])
_COMBINED = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "(GET|HEAD) (/v2/(.+)/(manifests|blobs)/'
                       r'([^ ?]+))[^"]*" (\d{3}) ')


@dataclass
class ListenerProcess:
    """``reginsight listen`` running as a process of its own."""

    folder: Path
    port: int
    secret: str | None = SECRET
    process: subprocess.Popen | None = None
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self, *extra: str) -> ListenerProcess:
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if k != "REGINSIGHT_LISTEN_SECRET"}
        if self.secret is not None:
            env["REGINSIGHT_LISTEN_SECRET"] = self.secret
        log = self.folder.parent / f"listener-{self.runs}.log"
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reginsight", "listen", "--addr",
                 f"127.0.0.1:{self.port}", "-o", str(self.folder), "--heartbeat", "1", *extra],
                cwd=CHECKOUT, env=env, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        assert listening(self.process, "127.0.0.1", self.port, 30), self.output()
        return self

    def output(self) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in sorted(self.folder.parent.glob("listener-*.log")))

    def terminate(self) -> int:
        os.kill(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_registry(version: str, workdir: Path, listener: ListenerProcess, *,
                   secret: str = SECRET, **settings):
    endpoint = {"name": "reginsight", "url": listener.url,
                "headers": {"Authorization": [f"Bearer {secret}"]},
                "timeout": "2s", "threshold": 3, "backoff": "1s", **settings}
    return registry_of(version, workdir,
                       log={"level": "info", "formatter": "json",
                            "accesslog": {"disabled": False}},
                       notifications={"endpoints": [endpoint]}).start()


@pytest.fixture
def listener(tmp_path: Path):
    process = ListenerProcess(tmp_path / "events", free_port())
    yield process
    stop_process(process.process)


@pytest.fixture(params=["2.8", "3.0"])
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def reads_in_log(log: Path) -> tuple[Counter, dict[str, dict]]:
    """What the registry's log says was read: the access-log lines of GET and HEAD of
    manifests and blobs answered 200, counted by (method, repository, kind, reference);
    and the "response completed" lines of those, by request id."""
    counted: Counter = Counter()
    by_id: dict[str, dict] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            uri = entry.get("http.request.uri", "")
            match = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^?]+)", uri)
            if (entry.get("msg") == "response completed" and match
                    and entry.get("http.request.method") in ("GET", "HEAD")
                    and entry.get("http.response.status") == 200):
                by_id[entry["http.request.id"]] = entry
            continue
        match = _COMBINED.match(line)
        if match and match.group(8) == "200":
            kind = "manifest" if match.group(6) == "manifests" else "blob"
            counted[(match.group(3), match.group(5), kind, match.group(7))] += 1
    return counted, by_id


def stored_reads(folder: Path) -> Counter:
    pulls = read_store(folder)
    pulls = pulls[pulls["method"].isin(["GET", "HEAD"])]
    return Counter(zip(pulls["method"].astype(str), pulls["repository"].astype(str),
                       pulls["kind"].astype(str), pulls["reference"].astype(str),
                       strict=True))


def wait_until(check, what: str, timeout: float = DELIVERY) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:.0f} s: {what}")
        time.sleep(0.2)


def wait_for_every_read(folder: Path, log: Path) -> None:
    wait_until(lambda: stored_reads(folder) == reads_in_log(log)[0],
               "the store holding every read the registry's access log shows")


def push_images(url: str, repository: str):
    pusher = Pusher(url)
    try:
        single = pusher.image(repository, "v1", oci=True)
        amd = pusher.image(repository, None, architecture="amd64")
        arm = pusher.image(repository, None, architecture="arm64")
        index = pusher.index(repository, "multi", [
            (amd, {"architecture": "amd64", "os": "linux"}),
            (arm, {"architecture": "arm64", "os": "linux"})], oci=False)
    finally:
        pusher.close()
    return single, amd, arm, index


def pull_everything(url: str, repository: str, single, index, out: Path) -> None:
    host = url.split("://", 1)[1]
    source = f"docker://{host}/{repository}"
    out.mkdir(parents=True, exist_ok=True)
    skopeo("copy", "--src-tls-verify=false", f"{source}:v1", f"dir:{out / 'by-tag'}")
    skopeo("inspect", "--raw", "--tls-verify=false", f"{source}@{single.digest}")
    skopeo("copy", "--src-tls-verify=false", "--multi-arch", "all", f"{source}:multi",
           f"dir:{out / 'index'}")
    # a node with the image cached only checks the tag
    head = httpx.head(f"{url}/v2/{repository}/manifests/v1",
                      headers={"Accept": INDEX_ACCEPT})
    assert head.status_code == 200
    assert head.headers["docker-content-digest"] == single.digest


def test_every_pull_is_stored_with_its_time_repository_digest_and_method(
        version: str, listener: ListenerProcess, tmp_path: Path) -> None:
    started = pd.Timestamp.now(tz="UTC")
    listener.start()
    server = start_registry(version, tmp_path / "registry", listener)
    try:
        repository = "team/app"
        single, amd, arm, index = push_images(server.url, repository)
        began = pd.Timestamp.now(tz="UTC").floor("s")
        pull_everything(server.url, repository, single, index, tmp_path / "out")
        log = server.workdir / "registry.log"
        expected, by_id = reads_in_log(log)
        wait_for_every_read(listener.folder, log)
    finally:
        server.stop()
    expected, by_id = reads_in_log(log)
    assert stored_reads(listener.folder) == expected
    # as docs/listener.md warns: both versions log the endpoint's headers, secret and all
    assert f"Authorization:[Bearer {SECRET}]" in log.read_text()
    # what was pulled, as the log says: by tag, by digest, the index and both children,
    # their blobs; the HEAD by tag
    assert expected[("GET", repository, "manifest", "v1")] >= 1
    assert expected[("GET", repository, "manifest", single.digest)] == 1
    assert expected[("GET", repository, "manifest", "multi")] >= 1
    for child in (amd, arm):
        assert expected[("GET", repository, "manifest", child.digest)] >= 1
        assert expected[("GET", repository, "blob", child.layers[0])] >= 1
    assert expected[("HEAD", repository, "manifest", "v1")] == 1

    pulls = read_store(listener.folder)
    events = read_events(listener.folder)
    assert events["id"].is_unique
    reads = events[events["action"] == "pull"]
    assert reads["request_id"].is_unique     # one event per request: none doubled
    # every request the registry logged a "response completed" line for is an event
    # with that request id, its time within the request
    assert set(by_id) <= set(reads["request_id"])
    for row in reads[reads["request_id"].isin(list(by_id))].itertuples():
        entry = by_id[row.request_id]
        logged = pd.Timestamp(entry["time"])
        assert logged - pd.Timedelta(seconds=5) <= row.time <= logged
        assert row.method == entry["http.request.method"]
    # 3.0 logs no "response completed" for a HEAD of a manifest; 2.8 does
    heads = reads[reads["method"] == "HEAD"]
    assert len(heads) == 1
    assert heads["request_id"].isin(list(by_id)).all() == (version == "2.8")

    manifests = pulls[(pulls["kind"] == "manifest") & (pulls["method"] != "PUT")]
    assert (manifests["repository"] == repository).all()
    by_tag = manifests[manifests["reference"] == "v1"]
    assert set(by_tag["method"]) == {"GET", "HEAD"}
    assert (by_tag["digest"] == single.digest).all()
    assert set(manifests.loc[manifests["reference"] == "multi", "digest"]) == {index.digest}
    by_digest = manifests[manifests["reference"] == single.digest]
    assert (by_digest["digest"] == single.digest).all() and len(by_digest) == 1
    assert pulls["status"].isna().all()
    assert (pulls["client"] == "127.0.0.1").all()
    assert set(pulls["source"]) == {str(listener.folder)}
    assert pulls.loc[pulls["method"] != "PUT", "time"].min() >= began
    # the manifest pushes are PUT rows: the image, the two children, the index
    pushes = pulls[pulls["method"] == "PUT"]
    assert set(pushes["digest"]) == {single.digest, amd.digest, arm.digest, index.digest}
    assert set(pushes["kind"]) == {"manifest"}
    # and the blob pushes are kept as events, not pull rows
    assert (events["action"] == "push").sum() > len(pushes)

    assert listener.terminate() == 0
    assert not list((listener.folder / JOURNAL).iterdir())      # compacted on stop
    assert list((listener.folder / PARTS).glob("*.parquet"))
    assert stored_reads(listener.folder) == expected
    spans = read_store(listener.folder).attrs["coverage"]
    assert len(spans) == 1
    assert started <= spans[0].start <= pulls["time"].min()
    assert spans[0].end >= pulls["time"].max()
    assert f"{SECRET}" not in listener.output()


def test_the_documented_config_skips_blob_events_and_keeps_every_manifest_read(
        version: str, listener: ListenerProcess, tmp_path: Path) -> None:
    listener.start()
    server = start_registry(version, tmp_path / "registry", listener,
                            ignoredmediatypes=["application/octet-stream"])
    try:
        single, _, _, index = push_images(server.url, "team/app")
        pull_everything(server.url, "team/app", single, index, tmp_path / "out")
        log = server.workdir / "registry.log"

        def manifests() -> Counter:
            return Counter({k: n for k, n in reads_in_log(log)[0].items()
                            if k[2] == "manifest"})

        wait_until(lambda: stored_reads(listener.folder) == manifests(),
                   "every manifest read the access log shows")
        assert sum(n for k, n in reads_in_log(log)[0].items() if k[2] == "blob") >= 4
    finally:
        server.stop()
    events = read_events(listener.folder)
    assert set(events["kind"]) == {"manifest"}          # not a blob event, pushes neither
    assert stored_reads(listener.folder) == manifests()


def test_a_registry_with_the_wrong_secret_is_refused_and_nothing_is_stored(
        version: str, listener: ListenerProcess, tmp_path: Path) -> None:
    listener.start()
    server = start_registry(version, tmp_path / "registry", listener,
                            secret="not-the-listener-secret-at-all")
    try:
        push_images(server.url, "team/app")
        pulled_at = pd.Timestamp.now(tz="UTC")
        skopeo("inspect", "--raw", "--tls-verify=false",
               f"docker://{server.url.split('://')[1]}/team/app:v1")
        wait_until(lambda: "401 wrong or missing secret" in listener.output(),
                   "the listener refusing the registry's first post")
        # and the registry posting it again and again (counted at the heartbeat)
        wait_until(lambda: "x 401 wrong or missing secret" in listener.output(),
                   "the registry retrying the refused post")
        # nor does anyone without the secret get in
        envelope = json.dumps({"events": []}).encode()
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Basic {SECRET}"},
                        {"Authorization": f"bearer {SECRET}"}):
            answer = httpx.post(listener.url, content=envelope, headers={
                "Content-Type": "application/vnd.docker.distribution.events.v1+json",
                **headers})
            assert answer.status_code == 401
            assert SECRET not in answer.text
    finally:
        server.stop()
    assert read_events(listener.folder).empty
    assert read_store(listener.folder).empty
    assert listener.terminate() == 0
    assert SECRET not in listener.output()
    # the refused events wait in the registry's memory, lost if it restarts: the run
    # covers no time from the first refusal (the pushes', before the pull) on
    spans = read_store(listener.folder).attrs["coverage"]
    assert spans and all(span.end < pulled_at for span in spans)


def test_killed_mid_stream_and_restarted_it_loses_no_event_and_doubles_none(
        version: str, listener: ListenerProcess, tmp_path: Path) -> None:
    listener.start("--compact-every", "25")
    server = start_registry(version, tmp_path / "registry", listener)
    repository = "team/busy"
    try:
        single, *_ = push_images(server.url, repository)
        log = server.workdir / "registry.log"
        done = threading.Event()
        failures: list[BaseException] = []

        def pull_on() -> None:
            # pulls go on all along: before the kill, while it is down, after restart
            try:
                with httpx.Client(base_url=server.url, timeout=30) as client:
                    for round_ in range(40):
                        for reference in ("v1", single.digest):
                            answer = client.get(f"/v2/{repository}/manifests/{reference}",
                                                headers={"Accept": INDEX_ACCEPT})
                            assert answer.status_code == 200
                        assert client.get(
                            f"/v2/{repository}/blobs/{single.layers[0]}").status_code == 200
                        assert client.head(f"/v2/{repository}/manifests/multi",
                                           headers={"Accept": INDEX_ACCEPT}).status_code == 200
                        time.sleep(0.02)
                        if round_ == 30:
                            done.wait(60)   # the last rounds once the listener is back
            except BaseException as exc:  # noqa: BLE001 (reported by the test)
                failures.append(exc)

        puller = threading.Thread(target=pull_on)
        puller.start()
        wait_until(lambda: len(read_events(listener.folder)) >= 30,
                   "the first events stored")
        listener.kill()
        killed_at = len(reads_in_log(log)[1])
        wait_until(lambda: len(reads_in_log(log)[1]) >= killed_at + 8,
                   "pulls going on while the listener is dead")
        listener.start("--compact-every", "25")
        done.set()
        puller.join(timeout=300)
        assert not failures, failures
        wait_for_every_read(listener.folder, log)
    finally:
        done.set()
        server.stop()
    expected, by_id = reads_in_log(log)
    assert sum(expected.values()) == 40 * 4   # the puller's reads, nothing else read
    assert stored_reads(listener.folder) == expected
    events = read_events(listener.folder)
    reads = events[events["action"] == "pull"]
    assert reads["request_id"].is_unique and len(reads) == sum(expected.values())
    assert set(by_id) <= set(reads["request_id"])
    assert listener.terminate() == 0
    assert not list((listener.folder / JOURNAL).iterdir())
    assert len(list((listener.folder / PARTS).glob("*.parquet"))) >= 2
    assert stored_reads(listener.folder) == expected
    spans = read_store(listener.folder).attrs["coverage"]
    assert len(list((listener.folder / SESSIONS).glob("*.json"))) == 2 == len(spans)
    assert spans[0].end < spans[1].start     # the dead time is not covered


class AnswerLosingRelay:
    """Between the registry and the listener: passes every post on, and of every
    ``every``-th one the listener stored, drops the answer (the connection reset), as a
    listener killed between its write and its answer would. The registry sends that
    batch again."""

    def __init__(self, upstream: str, every: int = 3) -> None:
        self.upstream, self.every = upstream, every
        self.posts = self.lost = 0
        self.sizes: Counter = Counter()          # events per post
        self.media_types: Counter = Counter()
        self._lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                answer = httpx.post(relay.upstream, content=body, headers={
                    k: v for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type")})
                with relay._lock:
                    relay.sizes[len(json.loads(body)["events"])] += 1
                    relay.media_types[self.headers["Content-Type"]] += 1
                    relay.posts += 1
                    drop = answer.status_code == 204 and relay.posts % relay.every == 0
                    relay.lost += drop
                if drop:
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                self.send_response(answer.status_code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/events"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def journal_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for segment in sorted((folder / JOURNAL).glob("*.jsonl"))
            for line in segment.read_bytes().splitlines()]


def test_a_batch_stored_but_not_acknowledged_is_resent_and_read_once(
        version: str, listener: ListenerProcess, tmp_path: Path) -> None:
    listener.start()
    relay = AnswerLosingRelay(listener.url)
    endpoint = {"name": "reginsight", "url": relay.url,
                "headers": {"Authorization": [f"Bearer {SECRET}"]},
                "timeout": "2s", "threshold": 3, "backoff": "1s"}
    server = registry_of(version, tmp_path / "registry",
                         log={"level": "info", "formatter": "json",
                              "accesslog": {"disabled": False}},
                         notifications={"endpoints": [endpoint]}).start()
    try:
        single, _, _, index = push_images(server.url, "team/app")
        pull_everything(server.url, "team/app", single, index, tmp_path / "out")
        log = server.workdir / "registry.log"
        wait_for_every_read(listener.folder, log)
    finally:
        server.stop()
        relay.close()
    expected, _ = reads_in_log(log)
    assert relay.lost >= 5
    # what docs/listener.md says of both versions: one event a post, its media type
    assert set(relay.sizes) == {1}
    assert set(relay.media_types) == {
        f"application/vnd.docker.distribution.events.v{1 if version == '2.8' else 2}+json"}
    written = journal_lines(listener.folder)
    ids = Counter(record["id"] for record in written)
    assert sum(1 for n in ids.values() if n > 1) == relay.lost   # each lost answer: twice
    assert stored_reads(listener.folder) == expected               # read once
    assert read_events(listener.folder)["id"].is_unique
    assert listener.terminate() == 0
    import pyarrow.parquet as pq

    parts = [pq.read_table(p).column("id").to_pylist()
             for p in (listener.folder / PARTS).glob("*.parquet")]
    compacted = [i for part in parts for i in part]
    assert len(compacted) == len(set(compacted)) == len(ids)      # compacted once
    assert stored_reads(listener.folder) == expected
