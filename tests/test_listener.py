"""The listener and its event store without a registry: what it refuses (size, JSON,
media type, secret, caller, path, a slow body), the store's folder checks, each event
once across journal segments and Parquet parts, a torn or corrupt journal line, and the
command line's secret handling. Envelopes here are shaped as Distribution sends them
(the registry tests check that against real 2.8 and 3.0)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest

import reginsight as ri
from reginsight._cli import main
from reginsight._cli._listen import read_secret
from reginsight.usage._events import client_host, parse_envelope
from reginsight.usage._listener import Listener, ListenerOptions, Secret
from reginsight.usage._store import (
    JOURNAL,
    PARTS,
    is_store,
    now_text,
    open_store,
    read_events,
    read_store,
)

SECRET = "unit-test-secret-0123456789"
V1 = "application/vnd.docker.distribution.events.v1+json"
DIGEST = "sha256:" + "ab" * 32
CHECKOUT = Path(__file__).resolve().parents[1]


def event(*, action: str = "pull", method: str = "GET", tag: str | None = "v1",
          kind: str = "manifests", time: str = "2026-12-06T10:06:47.595837556Z",
          repository: str = "team/app", id: str | None = None) -> dict:
    target = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 523,
              "digest": DIGEST, "length": 523, "repository": repository,
              "url": f"http://127.0.0.1:5000/v2/{repository}/{kind}/{DIGEST}"}
    if tag:
        target["tag"] = tag
    return {"id": id or str(uuid.uuid4()), "timestamp": time, "action": action,
            "target": target,
            "request": {"id": str(uuid.uuid4()), "addr": "10.1.2.3:35706",
                        "host": "127.0.0.1:5000", "method": method,
                        "useragent": "skopeo/1.9.3"},
            "actor": {"name": "ci"}, "source": {"addr": "reg:5000", "instanceID": "i-1"}}


def envelope(*events: dict) -> bytes:
    return json.dumps({"events": list(events)}, indent=3).encode()


def records(*events: dict) -> list[dict]:
    return parse_envelope(envelope(*events), received=now_text())


class Running:
    """A listener served in this process on a free loopback port."""

    def __init__(self, folder: Path, **options) -> None:
        self.store = open_store(folder)
        self.lines: list[str] = []
        options.setdefault("secret", Secret(SECRET))
        self.listener = Listener(self.store, ListenerOptions(host="127.0.0.1", port=0,
                                                             **options),
                                 log=self.lines.append)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()
        self.url = self.listener.url

    def _serve(self) -> None:
        try:
            self.listener.serve()
        except BaseException as exc:  # noqa: BLE001 (the test looks at it)
            self.failure = exc

    def post(self, body: bytes, *, secret: str | None = SECRET,
             content_type: str = V1, **headers: str) -> httpx.Response:
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        return httpx.post(self.url, content=body,
                          headers={"Content-Type": content_type, **headers})

    def stop(self) -> None:
        self.listener.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


@pytest.fixture
def running(tmp_path: Path):
    served = Running(tmp_path / "events")
    yield served
    if served.thread.is_alive():
        served.stop()


def test_an_envelope_is_stored_and_read_as_pulls(running: Running) -> None:
    pulled, headed, blob = (event(), event(method="HEAD", tag=None),
                            event(kind="blobs", tag=None))
    pushed, deleted = event(action="push", method="PUT"), event(action="delete", tag=None)
    assert running.post(envelope(pulled, headed, blob, pushed, deleted)).status_code == 204
    pulls = read_store(running.store.root)
    assert list(pulls["method"]) == ["GET", "HEAD", "GET", "PUT"]
    assert list(pulls["kind"]) == ["manifest", "manifest", "blob", "manifest"]
    assert list(pulls["reference"]) == ["v1", DIGEST, DIGEST, "v1"]
    assert set(pulls["digest"]) == {DIGEST}
    assert set(pulls["client"]) == {"10.1.2.3"} and set(pulls["user"]) == {"ci"}
    assert pulls["time"].iloc[0] == pd.Timestamp("2026-12-06T10:06:47.595837556Z")
    assert pulls["status"].isna().all()
    assert pulls.dtypes["time"] == "datetime64[ns, UTC]"
    events = read_events(running.store.root)
    assert list(events["action"]) == ["pull", "pull", "pull", "push", "delete"]
    assert events.loc[0, "size"] == 523 and events.loc[0, "source_instance"] == "i-1"
    running.stop()
    assert not list((running.store.root / JOURNAL).iterdir())   # compacted on stop
    assert read_store(running.store.root)["method"].tolist() == ["GET", "HEAD", "GET", "PUT"]
    assert len(read_events(running.store.root)) == 5


@pytest.mark.parametrize("content_type", [V1, V1.replace("v1", "v2"), "application/json",
                                          V1 + "; charset=utf-8"])
def test_the_media_types_of_2_8_and_3_0_and_plain_json_are_accepted(
        running: Running, content_type: str) -> None:
    assert running.post(envelope(event()), content_type=content_type).status_code == 204
    assert len(read_store(running.store.root)) == 1


@pytest.mark.parametrize(("body", "content_type", "status", "said"), [
    (b"{", V1, 400, "not JSON"),
    (b'{"events": {}}', V1, 400, "not an events envelope"),
    (b"[]", V1, 400, "not an events envelope"),
    (json.dumps({"events": [{"timestamp": "2026-12-06T10:06:47Z", "action": "pull",
                             "target": {}}]}).encode(), V1, 400, "event 0: id is missing"),
    (envelope(event(time="yesterday")), V1, 400, "timestamp is not RFC 3339"),
    (envelope({**event(), "target": "x"}), V1, 400, "target is not an object"),
    (envelope(event(repository="r" * 5000)), V1, 400, "longer than 4096"),
    (envelope(event()), "text/plain", 415, "not an events envelope"),
    (envelope(event()), "", 415, "not an events envelope"),
])
def test_what_is_not_an_events_envelope_is_refused_and_nothing_stored(
        running: Running, body: bytes, content_type: str, status: int, said: str) -> None:
    answer = running.post(body, content_type=content_type)
    assert answer.status_code == status
    assert said in answer.text
    assert read_events(running.store.root).empty
    assert any(said in line for line in running.lines)


def test_a_body_over_the_cap_is_413_without_being_read(tmp_path: Path) -> None:
    served = Running(tmp_path / "events", max_body=2048)
    try:
        big = envelope(*(event() for _ in range(10)))
        assert len(big) > 2048
        answer = served.post(big)
        assert answer.status_code == 413
        assert served.post(envelope(event())).status_code == 204
        # a chunked body (no length to check first) is refused too
        chunks = iter([envelope(event())])
        answer = httpx.post(served.url, content=chunks, headers={
            "Content-Type": V1, "Authorization": f"Bearer {SECRET}"})
        assert answer.status_code == 411
    finally:
        served.stop()
    assert len(read_events(served.store.root)) == 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {SECRET}",
                                           f"bearer {SECRET}", f"Bearer  {SECRET}",
                                           f"Bearer {SECRET}x", SECRET])
def test_a_wrong_or_missing_secret_is_401_and_nothing_stored(
        running: Running, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = running.post(envelope(event()), secret=None, **headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert SECRET not in answer.text
    assert read_events(running.store.root).empty
    assert not any(SECRET in line for line in running.lines)


def test_two_authorization_headers_are_refused(running: Running) -> None:
    with socket.create_connection(running.listener.address) as sock:
        body = envelope(event())
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: " + V1.encode()
                     + f"\r\nAuthorization: Bearer {SECRET}\r\nAuthorization: Bearer x\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert sock.recv(100).startswith(b"HTTP/1.1 401")
    assert read_events(running.store.root).empty


def test_the_secret_never_shows(tmp_path: Path) -> None:
    secret = Secret(SECRET)
    options = ListenerOptions(host="0.0.0.0", port=0, secret=secret)
    for shown in (repr(secret), str(secret), repr(options), str(options)):
        assert SECRET not in shown
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)
    with pytest.raises(ri.PullRecordsInvalid, match="printable ASCII"):
        Secret("two words")


def test_without_a_secret_only_a_loopback_address_is_served(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "10.0.0.1", "::", "example.org"):
        with pytest.raises(ri.PullRecordsInvalid, match="no secret"):
            ListenerOptions(host=host, port=0)
    for host in ("127.0.0.1", "::1", "localhost", "127.1.2.3"):
        ListenerOptions(host=host, port=0)
    served = Running(tmp_path / "events", secret=None)
    try:
        assert served.post(envelope(event()), secret=None).status_code == 204
    finally:
        served.stop()


def test_callers_outside_the_allowed_networks_are_closed_before_a_byte_is_read(
        tmp_path: Path) -> None:
    import ipaddress

    served = Running(tmp_path / "events", allow=(ipaddress.ip_network("10.0.0.0/8"),))
    try:
        with pytest.raises(httpx.TransportError):
            served.post(envelope(event()))
        with pytest.raises(httpx.TransportError):
            httpx.get(served.url.replace("/events", "/health"))
    finally:
        served.stop()
    assert read_events(served.store.root).empty
    assert any("403 the caller's address is not allowed" in line for line in served.lines)


def test_other_paths_and_methods_are_refused(running: Running) -> None:
    assert httpx.post(running.url.replace("/events", "/other"), content=b"{}").status_code \
        == 404
    assert httpx.get(running.url.replace("/events", "/health")).status_code == 200
    assert httpx.put(running.url, content=b"{}").status_code == 501
    assert read_events(running.store.root).empty


def test_one_address_cannot_hold_every_connection(tmp_path: Path) -> None:
    served = Running(tmp_path / "events", per_client=2, read_timeout=60,
                     request_deadline=60)
    held = []
    try:
        for _ in range(2):    # two slow callers from 127.0.0.1 take that address's share
            sock = socket.create_connection(served.listener.address)
            sock.sendall(b"POST /events HTTP/1.1\r\n")
            held.append(sock)
        third = socket.create_connection(served.listener.address)
        third.settimeout(30)
        assert third.recv(10) == b""            # closed at once
        third.close()
        # another address still gets in
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.connect(served.listener.address)
        body = envelope(event())
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: " + V1.encode()
                     + f"\r\nAuthorization: Bearer {SECRET}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        sock.settimeout(30)
        assert sock.recv(100).startswith(b"HTTP/1.1 204")
        sock.close()
    finally:
        for sock in held:
            sock.close()
        served.stop()
    assert len(read_events(served.store.root)) == 1
    assert any("more than 2 connections from one address" in line for line in served.lines)


def test_a_registry_refused_stops_the_coverage_until_its_events_are_stored_again(
        running: Running) -> None:
    assert running.post(envelope(event())).status_code == 204
    # a scanner's probe without the secret is no registry's events: coverage goes on
    assert running.post(b"GET / HTTP/1.0", secret=None).status_code == 401
    assert running.post(b"{}", secret="wrong").status_code == 401
    running.store.heartbeat()
    assert len(read_store(running.store.root).attrs["coverage"]) == 1
    # a registry's envelope with the wrong secret: its events wait in the registry's
    # memory (lost if it restarts), so the coverage stops at the refusal
    assert running.post(envelope(event()), secret="rotated-secret-0123456789").status_code \
        == 401
    running.store.heartbeat()
    (stopped,) = read_store(running.store.root).attrs["coverage"]
    assert running.post(envelope(event()), secret="rotated-secret-0123456789").status_code \
        == 401
    running.store.heartbeat()
    assert read_store(running.store.root).attrs["coverage"] == [stopped]
    # stored again: covered again, from then on
    assert running.post(envelope(event())).status_code == 204
    running.stop()
    first, second = read_store(running.store.root).attrs["coverage"]
    assert first == stopped and second.start > first.end


def test_a_body_that_trickles_past_the_deadline_is_dropped(tmp_path: Path) -> None:
    served = Running(tmp_path / "events", read_timeout=0.3, request_deadline=0.6)
    try:
        body = envelope(event())
        with socket.create_connection(served.listener.address) as sock:
            sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         + V1.encode() + f"\r\nAuthorization: Bearer {SECRET}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
            sock.settimeout(30)
            answer = sock.recv(100)     # no more is sent: the listener gives up
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408")
        # and it still serves the next caller
        assert served.post(envelope(event())).status_code == 204
    finally:
        served.stop()
    assert len(read_events(served.store.root)) == 1


def test_concurrent_batches_are_all_stored_while_compaction_runs(tmp_path: Path) -> None:
    store = open_store(tmp_path / "events", segment_events=7)
    sent: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send() -> None:
        for _ in range(60):
            batch = records(event(), event(kind="blobs", tag=None))
            with lock:
                sent.extend(r["id"] for r in batch)
            store.append(batch)

    def compact() -> None:
        while not stop.is_set():
            store.compact()

    compactor = threading.Thread(target=compact)
    compactor.start()
    senders = [threading.Thread(target=send) for _ in range(6)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    stop.set()
    compactor.join()
    assert sorted(read_events(store.root)["id"]) == sorted(sent)
    store.close()
    assert not list((store.root / JOURNAL).iterdir())
    assert sorted(read_events(store.root)["id"]) == sorted(sent)
    assert len(read_store(store.root)) == len(sent)


def test_duplicate_ids_across_segments_and_parts_are_read_and_compacted_once(
        tmp_path: Path) -> None:
    folder = tmp_path / "events"
    first = records(event(), event(), event(method="HEAD"))
    store = open_store(folder)
    store.append(first)
    store.close()                               # a part holds them
    store = open_store(folder, segment_events=2)
    store.append(first[1:])                     # resent after a lost answer: a journal
    store.append(first[:1] + records(event()))  # segment, then another
    store.append(first[2:])
    assert len(list((folder / JOURNAL).glob("*.jsonl"))) >= 2
    assert len(read_store(folder)) == 4
    assert read_events(folder)["id"].is_unique
    store.close()
    import pyarrow.parquet as pq

    ids = [i for part in (folder / PARTS).glob("*.parquet")
           for i in pq.read_table(part).column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == 4
    assert len(read_store(folder)) == 4


def test_a_torn_last_line_is_ignored_and_a_corrupt_line_counted(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    store = open_store(folder)
    store.append(records(event(), event()))
    segment = next((folder / JOURNAL).glob("*.jsonl"))
    wrong = {**records(event())[0], "size": "large"}
    with open(segment, "ab") as file:   # what a crash mid-write and a bad disk leave
        file.write(b"this is not json\n")
        file.write(json.dumps({**wrong, "time": "noon"}).encode() + b"\n")
        file.write(json.dumps(wrong).encode() + b"\n")
        file.write(json.dumps(records(event())[0]).encode()[:40])
    pulls = read_store(folder)
    assert len(pulls) == 2
    assert pulls.attrs["skipped"] == {str(folder): 3}
    store.close()
    # and the count survives compaction
    assert read_store(folder).attrs["skipped"] == {str(folder): 3}
    events = read_events(folder)
    assert str(events.dtypes["time"]) == str(events.dtypes["received"]) == "datetime64[ns, UTC]"
    assert str(events.dtypes["size"]) == "Int64" and str(events.dtypes["id"]) == "object"
    assert len(read_store(folder)) == 2


def test_coverage_is_each_run_from_its_start_to_its_last_heartbeat(tmp_path: Path) -> None:
    folder = tmp_path / "events"
    store = open_store(folder)
    store.heartbeat()
    store.close()
    killed = open_store(folder)
    killed.heartbeat()
    os.close(killed._lock_fd)                  # dies: no stop recorded
    spans = read_store(folder).attrs["coverage"]
    assert len(spans) == 2
    assert spans[0].start < spans[0].end <= spans[1].start <= spans[1].end
    assert all(span.source == str(folder) for span in spans)


def test_the_folder_must_be_an_event_store_or_empty(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ri.PullRecordsInvalid, match="not an event store and not empty"):
        open_store(other)
    assert sorted(os.listdir(other)) == ["notes.txt"]
    with pytest.raises(ri.PullRecordsInvalid, match="not a folder"):
        open_store(other / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    open_store(empty).close()
    assert is_store(empty)
    link = tmp_path / "link"
    link.symlink_to(empty)
    with pytest.raises(ri.PullRecordsInvalid, match="symbolic link"):
        open_store(link)
    assert is_store(link)     # read through a link (a volume mounted elsewhere), never written
    assert read_store(link).empty
    with pytest.raises(ri.PullRecordsInvalid, match="not a reginsight event store"):
        read_store(other)
    # a folder inside the store replaced by a link is refused, not written through
    os.rename(empty / "parts", tmp_path / "elsewhere")
    (empty / "parts").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ri.PullRecordsInvalid, match="parts is a symbolic link"):
        open_store(empty)


def test_a_part_that_cannot_be_read_is_named_and_the_listener_keeps_serving(
        tmp_path: Path) -> None:
    folder = tmp_path / "events"
    crashed = open_store(folder)
    crashed.append(records(event()))
    os.close(crashed._lock_fd)                  # died with a segment in the journal
    (folder / PARTS / "broken.parquet").write_bytes(b"PAR1 not really")
    served = Running(folder)
    try:
        assert served.post(envelope(event())).status_code == 204
        assert any("compacting failed" in line and "broken.parquet" in line
                   for line in served.lines)
    finally:
        served.stop()
    assert isinstance(served.failure, ri.PullRecordsInvalid)    # the stop says so too
    assert "broken.parquet" in str(served.failure)
    assert len(list((folder / JOURNAL).glob("*.jsonl"))) == 2   # kept for the next run
    with pytest.raises(ri.PullRecordsInvalid, match=r"broken\.parquet"):
        read_store(folder)
    (folder / PARTS / "broken.parquet").unlink()
    assert len(read_store(folder)) == 2


def test_a_failed_fsync_refuses_the_batch_and_the_journal_starts_a_new_segment(
        running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fsync
    failures = []

    def fsync(fd: int) -> None:
        if not failures:
            failures.append(fd)
            raise OSError(5, "Input/output error")
        real(fd)

    assert running.post(envelope(event())).status_code == 204     # a segment exists
    monkeypatch.setattr(os, "fsync", fsync)
    lost = event()
    assert running.post(envelope(lost)).status_code == 503         # the registry resends
    assert failures
    assert running.post(envelope(lost)).status_code == 204
    assert running.post(envelope(event())).status_code == 204
    assert len(list((running.store.root / JOURNAL).glob("*.jsonl"))) == 2
    assert any("503 the events could not be stored" in line for line in running.lines)
    running.stop()
    assert len(read_store(running.store.root)) == 3


def test_a_second_listener_on_the_same_store_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path / "events")
    try:
        with pytest.raises(ri.PullRecordsInvalid, match="another listener"):
            open_store(tmp_path / "events")
    finally:
        store.close()
    open_store(tmp_path / "events").close()


def test_a_remote_address_loses_its_port() -> None:
    assert client_host("10.0.0.1:5000") == "10.0.0.1"
    assert client_host("[::1]:5000") == "::1"
    assert client_host("::1") == "::1"
    assert client_host("host") == "host"


def test_the_secret_comes_from_a_file_or_the_environment_never_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("REGINSIGHT_LISTEN_SECRET", raising=False)
    assert read_secret(None) is None
    file = tmp_path / "secret"
    file.write_text(SECRET + "\n")
    file.chmod(0o600)
    assert read_secret(str(file)) == SECRET
    file.chmod(0o644)
    assert read_secret(str(file)) == SECRET
    assert "can be read by other users" in capsys.readouterr().err
    monkeypatch.setenv("REGINSIGHT_LISTEN_SECRET", SECRET)
    assert read_secret(None) == SECRET
    from reginsight._cli._output import UsageError

    with pytest.raises(UsageError, match="give one"):
        read_secret(str(file))
    monkeypatch.setenv("REGINSIGHT_LISTEN_SECRET", "short")
    with pytest.raises(UsageError, match="16 or more") as refused:
        read_secret(None)
    assert "short" not in str(refused.value)


def test_the_command_refuses_an_open_address_without_a_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("REGINSIGHT_LISTEN_SECRET", raising=False)
    assert main(["listen", "--addr", "0.0.0.0:0", "-o", str(tmp_path / "e")]) == 2
    assert "no secret" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    assert main(["listen", "--addr", "nonsense", "-o", str(tmp_path / "e")]) == 2
    assert main(["listen", "--addr", "::1:80", "-o", str(tmp_path / "e")]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["listen", "--addr", "127.0.0.1:0", "-o", str(tmp_path / "full")]) == 1
    assert "not an event store" in capsys.readouterr().err


def test_the_command_stops_on_sigterm_with_exit_0_and_never_prints_the_secret(
        tmp_path: Path) -> None:
    env = {**os.environ, "REGINSIGHT_LISTEN_SECRET": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "reginsight", "listen", "--addr", "127.0.0.1:0", "-o",
         str(tmp_path / "events")], cwd=CHECKOUT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("reginsight listen: listening on http://127.0.0.1:")
        url = first.split()[4]
        answer = httpx.post(url, content=envelope(event()), headers={
            "Content-Type": V1, "Authorization": f"Bearer {SECRET}"})
        assert answer.status_code == 204
        assert httpx.post(url, content=envelope(event()), headers={
            "Content-Type": V1, "Authorization": "Bearer nope"}).status_code == 401
        process.terminate()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert SECRET not in first + out + err
    assert "401 wrong or missing secret" in err and "stopped: 1 events" in err
    assert not list((tmp_path / "events" / JOURNAL).iterdir())
    assert len(read_store(tmp_path / "events")) == 1
