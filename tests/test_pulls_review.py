"""A second engineer's attempts to break pull activity (issue 28) before it ships.

Each test states a guarantee the feature must keep. Those that fail are findings (the
docstring says what breaks and how badly); those that pass pin a guarantee an attack
did not break. Most dangerous first: a cleanup deleting what someone still uses, then
records lost or counted twice, then unbounded time or memory on hostile input.
Registries are real (2.8 and 3.0, loopback); everything else is pure units."""

from __future__ import annotations

import gzip
import ipaddress
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import reginsight as ri
from reginsight.usage import _store
from reginsight.usage._events import parse_envelope
from reginsight.usage._frame import Span, from_frame
from reginsight.usage._listener import Listener, ListenerOptions, Secret
from reginsight.usage._store import open_store, read_events, read_store
from tests.images import Pusher
from tests.supply_chain import SupplyChain
from tests.versions import registry_of

NOW = pd.Timestamp("2026-12-06T12:00:00Z")
OLD = "2025-01-01T00:00:00Z"   # images built long before any window below
SECRET = "review-secret-0123456789"
V1 = "application/vnd.docker.distribution.events.v1+json"
CHECKOUT = Path(__file__).resolve().parents[1]


def pull_records(rows: list[tuple], *, since: pd.Timestamp, until: pd.Timestamp = NOW
                 ) -> pd.DataFrame:
    """A pull frame of (time, repository, reference, method) manifest requests whose
    records cover ``since`` .. ``until`` (a log that was on the whole time)."""
    frame = pd.DataFrame(rows, columns=["time", "repository", "reference", "method"])
    frame["kind"] = "manifest"
    frame["digest"] = [r if r.startswith("sha256:") else None for r in frame["reference"]]
    pulls = from_frame(frame)
    pulls.attrs["coverage"] = [Span("log", since, until)]
    return pulls


def deleted(plan: pd.DataFrame) -> set[str]:
    return set(plan.loc[plan["action"] == "delete", "digest"].astype(str))


# --------------------------------------------------------------------------------------
# 1. A cleanup must never delete what a kept manifest needs (data loss)


@pytest.mark.parametrize("version", ["2.8", "3.0"])
@pytest.mark.parametrize("pulled", ["index", "one child"])
def test_an_untagged_index_kept_for_its_pull_keeps_every_child(tmp_path: Path, version: str,
                                                               pulled: str) -> None:
    """CRITICAL. ``plan_cleanup(untagged=True, pulls=, unpulled_for=)`` keeps an untagged
    index someone pulls by digest (pinned in a deployment), but deletes its platform
    images that were not pulled themselves (``spare_untagged`` spares rows one by one,
    and nothing makes a kept *untagged* index keep what it references). Applied, the
    index stays and its arm64 image is gone: ``pull app@sha256:<index>`` on arm64 fails.
    Verified end to end with apply_cleanup on 3.0 while reviewing."""
    server = registry_of(version, tmp_path).start()
    try:
        push = Pusher(server.url)
        amd64 = push.image("rv/app", None, oci=True, architecture="amd64", created=OLD)
        arm64 = push.image("rv/app", None, oci=True, architecture="arm64", created=OLD)
        index = push.index("rv/app", "v1", [(amd64, {"os": "linux", "architecture": "amd64"}),
                                            (arm64, {"os": "linux", "architecture": "arm64"})])
        push.image("rv/app", "v1", oci=True, created=OLD)  # v1 moves on: the index is untagged
        push.close()
    finally:
        server.stop()
    inv = ri.scan_storage(server.storage, progress=False)
    assert not inv.manifests.set_index("digest").loc[index.digest, "tagged"]
    day = NOW - pd.Timedelta(days=1)
    rows = [(day, "rv/app", index.digest, "GET"), (day, "rv/app", amd64.digest, "GET")]
    if pulled == "one child":  # the index found through its platform image only
        rows = rows[1:]
    pulls = pull_records(rows, since=NOW - pd.Timedelta(days=200))
    plan = ri.plan_cleanup(inv, untagged=True, pulls=pulls, unpulled_for="90d", now=NOW)
    gone = deleted(plan)
    assert index.digest not in gone and amd64.digest not in gone
    assert arm64.digest not in gone, (
        "the kept index's arm64 image is deleted: "
        + plan.loc[plan["digest"] == arm64.digest, "reason"].tolist()[0])


def test_short_records_make_an_untagged_image_unknown_not_unused(tmp_path: Path) -> None:
    """MEDIUM. With ``untagged=True, pulls=, unpulled_for="90d"`` an untagged image
    pulled by digest within the window is kept ("someone pins it"), but when the
    records cover only the last 10 days, one pinned and pulled a month ago is deleted
    as "untagged": the rule's "no record is unknown, not unused" is applied to tags and
    not to the untagged manifests the same pull records decide on."""
    server = registry_of("3.0", tmp_path).start()
    try:
        push = Pusher(server.url)
        pinned = push.image("rv/app", None, oci=True, created=OLD)
        push.image("rv/app", "v1", oci=True, created=OLD)
        push.close()
    finally:
        server.stop()
    inv = ri.scan_storage(server.storage, progress=False)
    pulls = pull_records([], since=NOW - pd.Timedelta(days=10))
    plan = ri.plan_cleanup(inv, untagged=True, pulls=pulls, unpulled_for="90d", now=NOW)
    assert deleted(plan) == set(), plan.set_index("digest").loc[pinned.digest, "reason"]


def test_an_untagged_image_pulled_by_digest_keeps_its_referrers(tmp_path: Path) -> None:
    """Guarantee (holds): an untagged image pulled by digest within the window is kept,
    and so are its signature and its SBOM (no tag reaches the SBOM)."""
    server = registry_of("3.0", tmp_path).start()
    try:
        push = Pusher(server.url)
        chain = SupplyChain(push)
        pinned = push.image("rv/app", None, oci=True, created=OLD)
        sbom = chain.spdx_sbom("rv/app", pinned, fallback=False)
        signature = chain.cosign_signature("rv/app", pinned.digest)
        idle = push.image("rv/app", "idle", oci=True, created=OLD)
        push.close()
    finally:
        server.stop()
    inv = ri.scan_storage(server.storage, progress=False)
    pulls = pull_records([(NOW - pd.Timedelta(days=3), "rv/app", pinned.digest, "HEAD")],
                         since=NOW - pd.Timedelta(days=200))
    plan = ri.plan_cleanup(inv, untagged=True, pulls=pulls, unpulled_for="90d", now=NOW)
    assert deleted(plan) == {idle.digest}
    kept = plan[plan["action"] == "keep"].set_index("digest")["reason"]
    assert kept[pinned.digest] == "pulled 2026-12-03, within 90d"
    assert kept[signature.digest].startswith("referrer of ")
    assert sbom.digest not in set(plan["digest"])  # no row: nothing done to it


# --------------------------------------------------------------------------------------
# 2. "No record" must mean "unknown" wherever the records may be incomplete (data loss)


def _serve(listener: Listener) -> threading.Thread:
    thread = threading.Thread(target=listener.serve)
    thread.start()
    return thread


def _event(*, repository: str = "rv/app", tag: str | None = "v1",
           time: str = "2026-12-06T10:06:47.595837556Z", instance: str = "i-1") -> dict:
    digest = "sha256:" + "ab" * 32
    target = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 523,
              "digest": digest, "length": 523, "repository": repository,
              "url": f"http://127.0.0.1:5000/v2/{repository}/manifests/{digest}"}
    if tag:
        target["tag"] = tag
    return {"id": str(uuid.uuid4()), "timestamp": time, "action": "pull", "target": target,
            "request": {"id": str(uuid.uuid4()), "addr": "10.1.2.3:35706",
                        "host": "127.0.0.1:5000", "method": "GET", "useragent": "containerd/1.7"},
            "actor": {}, "source": {"addr": "reg:5000", "instanceID": instance}}


def _envelope(*events: dict) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_a_listener_that_refused_every_post_claims_no_coverage(tmp_path: Path) -> None:
    """HIGH. The registry is configured with another secret (a typo, a rotated secret):
    the listener answers every post 401 and logs it, but its run still counts as
    coverage (start to stop/heartbeat). A plan made meanwhile deletes every image as
    "not pulled" although the listener knows it refused the registry's events. The
    window is a second here only so the run can span it; with a 90-day stall it is 90d."""
    folder = tmp_path / "events"
    listener = Listener(open_store(folder), ListenerOptions(
        host="127.0.0.1", port=0, secret=Secret(SECRET)), log=lambda line: None)
    thread = _serve(listener)
    try:
        for _ in range(3):  # the registry retries without end; every post is refused
            answer = httpx.post(listener.url, content=_envelope(_event()),
                                headers={"Authorization": "Bearer another-secret-0123456",
                                         "Content-Type": V1})
            assert answer.status_code == 401
        time.sleep(1.5)  # the run outlasts the 1 s window (a duration, not an assertion)
    finally:
        listener.stop()
        thread.join(timeout=60)
    pulls = ri.read_pulls(folder)
    assert len(pulls) == 0
    now = pulls.attrs["coverage"][-1].end
    plan = ri.plan_cleanup(ri.sample(), pulls=pulls, unpulled_for="1s", now=now)
    assert deleted(plan) == set(), plan.loc[plan["action"] == "delete", "reason"].iloc[0]


WARN = {"level": "warn", "formatter": "json", "accesslog": {"disabled": True}}
INFO_ONLY = {"level": "info", "formatter": "json", "accesslog": {"disabled": True}}


@pytest.mark.parametrize(("version", "log"), [("2.8", WARN), ("3.0", WARN), ("3.0", INFO_ONLY)],
                         ids=["2.8-warn", "3.0-warn", "3.0-info-without-access-log"])
def test_a_log_that_cannot_show_a_pull_covers_no_time(tmp_path: Path, version: str,
                                                      log: dict) -> None:
    """HIGH. A registry logging at ``warn`` (a common production setting) without its
    access log writes only its failed requests: the 404s of scanners and typos keep
    the log's span continuous, a successful pull leaves no line, and the plan deletes
    an image pulled and one HEAD-checked within the window. Same on 3.0 at ``info``
    without the access log for the HEAD (docs/pulls.md warns, but the reader does not
    notice): a node with the image cached sends only that HEAD. Such a log covers no
    time for successful requests; ``no record`` there is unknown. (Real registries; the
    window is a second so that the registry's own run spans it.)"""
    server = registry_of(version, tmp_path, log=log).start()
    try:
        http = httpx.Client(base_url=server.url)
        assert http.get("/v2/rv/app/manifests/missing").status_code == 404
        push = Pusher(server.url)
        pulled = push.image("rv/app", "pulled", created=OLD)
        checked = push.image("rv/app", "checked", created=OLD)
        push.close()
        time.sleep(1.5)  # the pushes fall before the 1 s window (a duration, no assertion)
        accept = {"Accept": pulled.media_type}
        assert http.get("/v2/rv/app/manifests/pulled", headers=accept).status_code == 200
        assert http.head("/v2/rv/app/manifests/checked", headers=accept).status_code == 200
        assert http.get("/v2/rv/app/manifests/missing").status_code == 404
        http.close()
        now = pd.Timestamp.now(tz="UTC")
        with ri.Registry(server.url) as reg:
            inv = ri.crawl(reg, progress=False)
    finally:
        server.stop()
    pulls = ri.read_pulls(tmp_path / "registry.log")
    plan = ri.plan_cleanup(inv, pulls=pulls, unpulled_for="1s", now=now)
    used = {pulled.digest: "pulled", checked.digest: "checked"}
    gone = {used[d] for d in deleted(plan) & set(used)}
    assert not gone, f"deleted although used within the window: {sorted(gone)}"


def test_a_store_reached_through_a_symbolic_link_is_not_read_as_an_empty_log(
        tmp_path: Path) -> None:
    """LOW. ``read_pulls(LINK)`` where LINK points at the listener's folder (a volume
    mounted elsewhere, /var/lib/x -> /srv/x) is not taken for a store (is_store refuses
    links) but read as a folder of logs: zero records, two "malformed" lines, no
    error. Safe (no coverage, nothing deleted) but silently wrong: read it as the store
    or refuse it clearly."""
    store = open_store(tmp_path / "events")
    store.append(parse_envelope(_envelope(_event()), received=_store.now_text()))
    store.close()
    (tmp_path / "link").symlink_to(tmp_path / "events")
    assert len(ri.read_pulls(tmp_path / "events")) == 1
    try:
        through = ri.read_pulls(tmp_path / "link")
    except ri.PullRecordsInvalid:
        return
    assert len(through) == 1


def _stamps(times: pd.DatetimeIndex) -> list[str]:
    """A registry's own health-check lines (JSON formatter): they tell the time only."""
    return [json.dumps({"http.request.method": "GET", "http.request.remoteaddr": "10.0.0.9:1",
                        "http.request.uri": "/v2/", "http.request.useragent": "kube-probe/1.30",
                        "http.response.status": 200, "level": "info",
                        "msg": "response completed",
                        "time": t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}, sort_keys=True)
            for t in times]


def test_a_hole_inside_one_stream_is_unknown_as_between_two_files(tmp_path: Path) -> None:
    """HIGH. Two log files two months apart leave a gap: every unpulled image is kept as
    unknown. The same lines as ONE stream (``zcat registry.log.*.gz | reginsight cleanup
    --pulls -`` with one rotation missing, a journald export, a proxy's DataFrame) cover
    the whole window, and every image nobody pulled in the readable part is deleted,
    although its pulls may be in the missing two months. A source's coverage is one
    span from its first to its last line whatever lies between (RECORD_GAP's promise,
    "records further apart than this are not taken to cover the time between them",
    is not kept)."""
    before = _stamps(pd.date_range("2026-06-01", "2026-09-30", freq="6h", tz="UTC"))
    after = _stamps(pd.date_range(pd.Timestamp("2026-11-30", tz="UTC"), NOW, freq="30min"))
    inv = ri.sample()
    (tmp_path / "registry.log.2").write_text("\n".join(before) + "\n")
    (tmp_path / "registry.log.1").write_text("\n".join(after) + "\n")
    apart = ri.read_pulls([tmp_path / "registry.log.2", tmp_path / "registry.log.1"])
    assert deleted(ri.plan_cleanup(inv, pulls=apart, unpulled_for="90d", now=NOW)) == set()
    one = ri.read_pulls(iter(before + after))
    plan = ri.plan_cleanup(inv, pulls=one, unpulled_for="90d", now=NOW)
    assert deleted(plan) == set(), (f"{len(deleted(plan))} images deleted as "
                                    f"{plan.loc[plan['action'] == 'delete', 'reason'].iloc[0]!r}")


def test_a_listener_gap_across_a_registry_restart_is_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MEDIUM. Gaps of up to 24 h between listener runs are bridged as covered. While the
    listener is down the registry queues its events in memory; if the registry restarts
    meanwhile (its instanceID changes) that queue is lost (docs/listener.md says so),
    yet the plan treats the gap as covered and deletes what was pulled only then. The
    store holds each event's source instance: a registry instance that stops posting
    across a gap is a sign its queued events are gone. (A fake clock dates the runs.)"""
    clock = {"now": "2026-08-01T00:00:00Z"}
    monkeypatch.setattr(_store, "now_text", lambda: clock["now"])
    folder = tmp_path / "events"
    first = open_store(folder)
    first.append(parse_envelope(_envelope(_event(time="2026-08-02T00:00:00Z", instance="i-1")),
                                received=clock["now"]))
    clock["now"] = "2026-10-20T00:00:00Z"
    first.close()
    clock["now"] = "2026-10-20T20:00:00Z"  # 20 h later: the registry restarted meanwhile
    second = open_store(folder)
    second.append(parse_envelope(_envelope(_event(time="2026-10-20T20:00:01Z",
                                                  instance="i-2")), received=clock["now"]))
    clock["now"] = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    second.close()
    pulls = ri.read_pulls(folder)
    plan = ri.plan_cleanup(ri.sample(), pulls=pulls, unpulled_for="90d", now=NOW)
    assert deleted(plan) == set(), plan.loc[plan["action"] == "delete", "reason"].iloc[0]


# --------------------------------------------------------------------------------------
# 3. Each request once (records double counted)


def _request_lines(count: int) -> list[str]:
    """``count`` pulls of rv/app:v1, each as 2.8 logs it: the logrus line, the access line."""
    lines = []
    for n in range(count):
        end = pd.Timestamp("2026-12-06T10:00:00Z") + pd.Timedelta(seconds=10 * n, milliseconds=5)
        lines.append(json.dumps({
            "http.request.id": str(uuid.uuid4()), "http.request.method": "GET",
            "http.request.remoteaddr": f"10.0.0.{n}:4000", "http.request.uri":
            "/v2/rv/app/manifests/v1", "http.request.useragent": "containerd/1.7",
            "http.response.duration": "2ms", "http.response.status": 200, "level": "info",
            "msg": "response completed", "time": end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
            sort_keys=True))
        lines.append(f'10.0.0.{n} - - [{end:%d/%b/%Y:%H:%M:%S} +0000] '
                     '"GET /v2/rv/app/manifests/v1 HTTP/1.1" 200 523 "" "containerd/1.7"')
    return lines


def test_the_same_log_given_twice_counts_each_request_once(tmp_path: Path) -> None:
    """MEDIUM. ``read_pulls([log, log])``, ``--pulls DIR --pulls DIR/registry.log``, or a
    folder holding a log and its compressed copy (logrotate's ``copy``, a backup) count
    every request twice: pulls_30d and the report's most pulled images double. Each
    logrus line carries its http.request.id (and the listener's events the same id as
    request_id), which the reader drops."""
    log = tmp_path / "logs" / "registry.log"
    log.parent.mkdir()
    log.write_text("\n".join(_request_lines(5)) + "\n")
    with gzip.open(log.with_name("registry.log.1.gz"), "wb") as copy:
        copy.write(log.read_bytes())
    assert len(ri.read_pulls(log)) == 5
    assert len(ri.read_pulls([log, log])) == 5
    assert len(ri.read_pulls([log.parent, log])) == 5
    assert len(ri.read_pulls(log.parent)) == 5


def test_a_store_read_while_it_compacts_has_every_acknowledged_event_once(
        tmp_path: Path) -> None:
    """Guarantee (holds): read_store/read_events while the listener compacts its
    journal (segments becoming parts, then deleted) sees every event acknowledged
    before the read, each once."""
    folder = tmp_path / "events"
    store = open_store(folder, segment_events=10)
    ids = set()
    for _ in range(40):
        records = parse_envelope(_envelope(*(_event() for _ in range(10))),
                                 received=_store.now_text())
        ids.update(r["id"] for r in records)
        store.append(records)
    compaction = threading.Thread(target=store.compact)
    compaction.start()
    reads = 0
    while compaction.is_alive() or reads < 3:
        events = read_events(folder)
        assert len(events) == len(ids) and set(events["id"]) == ids
        reads += 1
    compaction.join()
    store.close()
    assert not list((folder / "journal").iterdir())
    assert len(read_store(folder)) == len(ids)


def test_a_large_batch_with_unknown_actions_is_stored_whole_and_read_once(
        tmp_path: Path) -> None:
    """Guarantee (holds): one post of 3000 events, some of actions a registry may add
    later ("frobnicate") or that are no pull (delete, mount), is acknowledged once
    stored; every event is kept, the pulls become rows, posting it again (an answer
    lost) adds nothing."""
    listener = Listener(open_store(tmp_path / "events"), ListenerOptions(
        host="127.0.0.1", port=0, secret=Secret(SECRET)), log=lambda line: None)
    thread = _serve(listener)
    events = [_event(tag=None if n % 2 else "v1") for n in range(3000)]
    for n, action in ((0, "frobnicate"), (1, "delete"), (2, "mount")):
        events[n]["action"] = action
    body = _envelope(*events)
    assert len(body) < 4 * 2 ** 20
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": V1}
    try:
        for _ in range(2):
            assert httpx.post(listener.url, content=body, headers=headers).status_code == 204
    finally:
        listener.stop()
        thread.join(timeout=60)
    assert len(read_events(tmp_path / "events")) == 3000
    pulls = ri.read_pulls(tmp_path / "events")
    assert len(pulls) == 2997 and set(pulls["method"]) == {"GET"}


# --------------------------------------------------------------------------------------
# 4. Bounded time and memory on hostile input


def test_a_line_journald_split_is_read_in_linear_time() -> None:
    """MEDIUM. Any client can send a User-Agent of 100 KB with a space in it ("x aaaa...").
    The text formatter quotes it; journald splits lines at its LineMax (48 KiB), so
    ``journalctl -o cat``/``short`` gives a first piece whose quote never closes. That
    piece fails the fast expression and falls to ``_TEXT_FIELD.findall``, which is
    quadratic on the long run of letters: about 25 s a line here, ~3 h for a 1 MiB line
    (MAX_LINE). Ten such requests keep ``read_pulls``, a report or a cleanup busy for
    minutes; a thousand for hours. The timeout is a guard that the read ends at all
    (a linear reader takes milliseconds), not a speed assertion."""
    piece = ('time="2026-12-06T10:00:00.123456789Z" level=info msg="response completed" '
             'http.request.host="reg:5000" http.request.id=1 http.request.method=GET '
             'http.request.remoteaddr="10.0.0.1:1" http.request.uri=/v2/rv/app/manifests/v1 '
             'http.request.useragent="x ')
    piece += "a" * (48 * 1024 - len(piece))
    script = ("import sys; from reginsight.usage._logs import read_lines; "
              f"print(len(read_lines(iter([{piece!r}] * 10))))")
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=30,
                       capture_output=True, env={**os.environ, "PYTHONPATH": str(CHECKOUT)})
    except subprocess.TimeoutExpired:
        pytest.fail("ten 48 KiB lines were not read in 30 s: the text-formatter fallback is "
                    "quadratic")


def test_garbage_binary_and_a_cut_gzip_are_skipped_and_delete_nothing(tmp_path: Path) -> None:
    """Guarantee (holds): binary garbage, a gzip cut mid-stream and CRLF lines are read
    without an error; what cannot be read is counted; with no timed record at all, no
    image is deleted."""
    noise = random.Random(28).randbytes(1 << 20)
    (tmp_path / "garbage.bin").write_bytes(noise)
    cut = gzip.compress(noise)
    (tmp_path / "cut.gz").write_bytes(cut[: len(cut) // 2])
    pulls = ri.read_pulls(tmp_path)
    assert len(pulls) == 0 and sum(pulls.attrs["skipped"].values()) > 0
    plan = ri.plan_cleanup(ri.sample(), pulls=pulls, unpulled_for="90d", now=NOW)
    assert deleted(plan) == set()
    assert plan["reason"].str.contains("there are no pull records").any()
    crlf = ri.read_pulls(iter(line + "\r\n" for line in _request_lines(3)))
    assert len(crlf) == 3 and list(crlf["reference"]) == ["v1"] * 3


def test_compacting_a_small_segment_holds_no_set_of_every_stored_id(tmp_path: Path) -> None:
    """MEDIUM. Compaction leaves out events already in a part by loading, into a Python
    set, the id of every stored event between the segment's first and last time. After
    a day's downtime the registry resends its queue: the next segment starts a day
    back, and compacting even 2 events loads a day of ids, ~140 MiB a million (a
    registry sending blob events makes that many from 100,000 pulls a day). Measured
    in a child process: Python's peak (tracemalloc) plus pyarrow's pool peak."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "events"
    open_store(root).close()
    count = 1_000_000
    columns = {c: pa.nulls(count, pa.string()) for c in _store.EVENT_COLUMNS}
    columns["id"] = pa.array([f"{n:032x}" for n in range(count)])
    stamps = pd.date_range("2026-12-05", "2026-12-06", periods=count, tz="UTC").as_unit("ns")
    columns["time"] = columns["received"] = pa.array(stamps, pa.timestamp("ns", tz="UTC"))
    columns["action"] = pa.array(["pull"] * count)
    pq.write_table(pa.table(columns).cast(_store._schema()), root / "parts" / "day.parquet")
    segment = root / "journal" / "later-000001.jsonl"
    segment.write_text("".join(json.dumps({"id": str(uuid.uuid4()), "time": t, "action": "pull"})
                               + "\n" for t in ("2026-12-05T00:00:01Z", "2026-12-06T00:00:00Z")))
    script = (
        "import sys, tracemalloc, pyarrow as pa; from pathlib import Path; "
        "from reginsight.usage._store import compact_segment; tracemalloc.start(); "
        f"compact_segment(Path({str(root)!r}), Path({str(segment)!r})); "
        "print(tracemalloc.get_traced_memory()[1] + pa.default_memory_pool().max_memory())")
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(CHECKOUT)})
    peak = int(done.stdout.split()[-1])
    assert pq.read_table(root / "parts" / "later-000001.parquet").num_rows == 2
    assert peak < 48 * 2 ** 20, f"compacting 2 events peaked at {peak / 2 ** 20:.0f} MiB"


def test_a_slow_caller_outside_the_allowed_networks_cannot_hold_every_slot(
        tmp_path: Path) -> None:
    """MEDIUM. ``--allow`` and the secret are checked only once a request's headers are
    read. 32 connections from an address outside ``--allow`` that trickle their
    headers (modelled by long read timeouts: one byte every 9 s does the same) hold
    every connection slot, and the registry's posts wait in the backlog until they time
    out. The registry then queues events in memory, lost if it restarts. The client
    timeout guards the test from hanging; it asserts nothing about speed."""
    store = open_store(tmp_path / "events")
    listener = Listener(store, ListenerOptions(
        host="127.0.0.1", port=0, secret=Secret(SECRET), read_timeout=120,
        request_deadline=120, allow=(ipaddress.ip_network("127.0.0.1/32"),)),
        log=lambda line: None)
    thread = _serve(listener)
    host, port = listener.address
    intruders: list[socket.socket] = []
    try:
        for _ in range(listener.options.max_connections):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))   # another loopback address, outside --allow
            sock.connect((host, port))
            sock.sendall(b"POST /events HTTP/1.1\r\n")
            intruders.append(sock)
        try:
            answer = httpx.post(listener.url, content=_envelope(_event()), timeout=10,
                                headers={"Authorization": f"Bearer {SECRET}",
                                         "Content-Type": V1})
        except httpx.TimeoutException:
            pytest.fail("the registry's post got no answer while 32 refused callers held "
                        "the listener's connections")
        assert answer.status_code == 204
    finally:
        for sock in intruders:
            sock.close()
        listener.stop()
        thread.join(timeout=60)


# --------------------------------------------------------------------------------------
# 5. Frames given by the user, windows and clocks


def test_a_pull_frame_missing_a_column_is_a_clear_error() -> None:
    """LOW. A frame that still carries read_pulls' attrs (pandas keeps them through
    ``drop``, column selection and filters) skips from_frame's checks: a missing
    optional column is a bare KeyError deep in the analysis, not PullRecordsInvalid."""
    pulls = ri.read_pulls(iter(_request_lines(2))).drop(columns=["status", "client"])
    with pytest.raises(ri.PullRecordsInvalid):
        ri.last_pulled(ri.sample(), pulls, now=NOW)
    with pytest.raises(ri.PullRecordsInvalid):
        ri.plan_cleanup(ri.sample(), pulls=pulls, unpulled_for="90d", now=NOW)


def test_a_bad_window_is_named_as_given() -> None:
    """LOW. ``unpulled_for="90"`` is refused (good) with a message about ``older_than``,
    a parameter the caller did not pass."""
    pulls = ri.read_pulls(iter(_request_lines(1)))
    with pytest.raises(ri.PlanError, match="unpulled_for"):
        ri.plan_cleanup(ri.sample(), pulls=pulls, unpulled_for="90", now=NOW)


def test_a_pull_source_with_credentials_is_not_echoed(capsys: pytest.CaptureFixture) -> None:
    """LOW. ``--pulls s3://KEY:SECRET@bucket/logs`` (the report takes fsspec URLs for a
    storage root, so users try the same here) fails as "no such file or folder" with
    the secret in the message, in the library and on the command line; TARGET's
    messages go through redact_text, --pulls's do not."""
    from reginsight._cli import main

    source = "s3://AKIDEXAMPLE:hunter2-secret@bucket/registry-logs"
    with pytest.raises(ri.PullRecordsInvalid) as raised:
        ri.read_pulls(source)
    assert "hunter2" not in str(raised.value)
    code = main(["cleanup", "http://127.0.0.1:9", "--unpulled-for", "90d", "--pulls", source])
    assert code != 0
    assert "hunter2" not in capsys.readouterr().err


def test_windows_clocks_and_zones_agree() -> None:
    """Guarantee (holds): a window as text or timedelta, ``now`` naive (UTC) or aware,
    and the same instant written with another offset (+0200 on an access line) decide
    the same."""
    inv = ri.sample()
    used = inv.tags.iloc[0]
    pulls = pull_records([(NOW - pd.Timedelta(days=10), str(used["repository"]),
                           str(used["tag"]), "HEAD")], since=NOW - pd.Timedelta(days=200))
    text = ri.plan_cleanup(inv, pulls=pulls, unpulled_for="90d", now=NOW)
    delta = ri.plan_cleanup(inv, pulls=pulls, unpulled_for=pd.Timedelta(days=90),
                            now=NOW.tz_localize(None))
    pd.testing.assert_frame_equal(text.drop(columns="reason"), delta.drop(columns="reason"))
    assert text.loc[text["digest"] == used["digest"], "action"].eq("keep").all()
    assert (text["action"] == "delete").any()
    utc = ['10.0.0.1 - - [06/Dec/2026:10:00:00 +0000] "HEAD /v2/rv/app/manifests/v1 '
           'HTTP/1.1" 200 0 "" "containerd/2"']
    shifted = [utc[0].replace("10:00:00 +0000", "12:00:00 +0200")]
    assert ri.read_pulls(iter(utc))["time"].equals(ri.read_pulls(iter(shifted))["time"])
    naive = pd.DataFrame({"time": [pd.Timestamp("2026-12-06 10:00:00")], "repository": ["a"],
                          "reference": ["v1"], "method": ["get"], "kind": ["manifest"]})
    assert ri.read_pulls(naive)["time"].iloc[0] == pd.Timestamp("2026-12-06T10:00:00Z")


def test_a_window_given_as_a_timedelta_is_written_as_the_flags_write_it() -> None:
    """LOW. With ``unpulled_for=timedelta(days=90)`` the keep reasons say "within 90d" but
    the delete reason says "not pulled for 90 days 00:00:00" (the rule's own label is
    not used for the plan's rules text)."""
    inv = ri.sample()
    pulls = pull_records([], since=NOW - pd.Timedelta(days=200))
    plan = ri.plan_cleanup(inv, pulls=pulls, unpulled_for=pd.Timedelta(days=90), now=NOW)
    reasons = set(plan.loc[plan["action"] == "delete", "reason"])
    assert reasons == {"not pulled for 90d"}


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()
            and not t.daemon]
    assert not left, f"threads left running: {left}"
