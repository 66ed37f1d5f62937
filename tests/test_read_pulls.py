"""read_pulls on registry logs: units on lines the real registries wrote.

tests/data/pulls/ holds lines captured from Debian's Distribution 2.8 and upstream 3.0.0
at level info with the access log on (uploads cut to one, otherwise as written):
``<version>-<formatter>.log``: a push of exp/app:v1, skopeo copy by tag and inspect by
digest, a HEAD by tag and one by digest; ``odd-*.log``: a HEAD and GET of a blob, 404s,
a GET with X-Forwarded-For and a user agent holding a quote, a backslash and a byte of
invalid UTF-8, a HEAD with X-Real-Ip and a query, an invalid name, an invalid digest.
The real-registry proof is tests/test_pulls_registry.py.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

import reginsight as ri
from reginsight.usage import _logs
from reginsight.usage._events import parse_envelope
from reginsight.usage._frame import PULL_COLUMNS, pull_frame
from reginsight.usage._store import open_store

DATA = Path(__file__).parent / "data" / "pulls"
HTTPX, SKOPEO = "python-httpx/0.28.1", "skopeo/1.9.3"
LOCAL = "127.0.0.1"

#: what each capture holds: (method, kind, reference, status, user agent, time)
EXPECTED = {
    "2.8-json": [
        ("PUT", "manifest", "v1", 201, HTTPX, "2026-12-06T10:06:46.577661427"),
        ("GET", "manifest", "v1", 200, SKOPEO, "2026-12-06T10:06:47.595913919"),
        ("GET", "blob", "sha256:a1a8e8c5d76c03442e6d924aad57a1a0dd2aaf4a852449b01193164788f0fd96",
         200, SKOPEO, "2026-12-06T10:06:47.601757748"),
        ("GET", "blob", "sha256:4a0039babbce2656362ea74dee2860f2f772efed133174875ab9a87e67f0f976",
         200, SKOPEO, "2026-12-06T10:06:47.607135005"),
        ("GET", "manifest",
         "sha256:e4584e33b8f62359787ba2c3e24db852f819f9c4c49c6dda709c91f0b251f5d6", 200,
         SKOPEO, "2026-12-06T10:06:47.624100696"),
        ("HEAD", "manifest", "v1", 200, HTTPX, "2026-12-06T10:06:47.648063249"),
        ("HEAD", "manifest",
         "sha256:e4584e33b8f62359787ba2c3e24db852f819f9c4c49c6dda709c91f0b251f5d6", 200,
         HTTPX, "2026-12-06T10:06:47.670149542"),
    ],
    "2.8-text": [
        ("PUT", "manifest", "v1", 201, HTTPX, "2026-12-06T10:06:50.088108519"),
        ("GET", "manifest", "v1", 200, SKOPEO, "2026-12-06T10:06:51.111428905"),
        ("GET", "blob", "sha256:eadef262035d510ca93832bf2e103344b34171e19189332dfc0a34c9309acf6c",
         200, SKOPEO, "2026-12-06T10:06:51.118831323"),
        ("GET", "blob", "sha256:7d3af9a1c0ccd588c3161eb5ef6978277c2cb50bd65455fa1dee90fc03da9906",
         200, SKOPEO, "2026-12-06T10:06:51.124581487"),
        ("GET", "manifest",
         "sha256:e5f45e61f886c475e403fb6f29b3d0f266e6612c6722b34c94895c3aa7fae786", 200,
         SKOPEO, "2026-12-06T10:06:51.144287233"),
        ("HEAD", "manifest", "v1", 200, HTTPX, "2026-12-06T10:06:51.178535816"),
        ("HEAD", "manifest",
         "sha256:e5f45e61f886c475e403fb6f29b3d0f266e6612c6722b34c94895c3aa7fae786", 200,
         HTTPX, "2026-12-06T10:06:51.204401243"),
    ],
    # 3.0 writes no logrus line for a HEAD of a manifest: those two rows are the access
    # log's, timed to the second their request began
    "3.0-json": [
        ("PUT", "manifest", "v1", 201, HTTPX, "2026-12-06T10:06:53.600288218"),
        ("HEAD", "manifest", "v1", 200, HTTPX, "2026-12-06T10:06:54"),
        ("HEAD", "manifest",
         "sha256:b2d0c403a875998ce8cfa3e07f4bf126eb5e1e11b37d2f7176a7afb6769f6f02", 200,
         HTTPX, "2026-12-06T10:06:54"),
        ("GET", "manifest", "v1", 200, SKOPEO, "2026-12-06T10:06:54.615710658"),
        ("GET", "blob", "sha256:dd337f3a77f951b5fd04b09e1a2a9f22bb2e7dd43c1260f644257e25a2874c5e",
         200, SKOPEO, "2026-12-06T10:06:54.61986294"),
        ("GET", "blob", "sha256:62c148af23cf7ce38bbb089e94e623bbe0be6ffc262bf01f88feab305c8e238e",
         200, SKOPEO, "2026-12-06T10:06:54.623995733"),
        ("GET", "manifest",
         "sha256:b2d0c403a875998ce8cfa3e07f4bf126eb5e1e11b37d2f7176a7afb6769f6f02", 200,
         SKOPEO, "2026-12-06T10:06:54.640095441"),
    ],
    "3.0-text": [
        ("PUT", "manifest", "v1", 201, HTTPX, "2026-12-06T10:06:57.088817742"),
        ("HEAD", "manifest", "v1", 200, HTTPX, "2026-12-06T10:06:58"),
        ("HEAD", "manifest",
         "sha256:eedc0482958c23ec4a77ee67511368f4a5112f62f6a1ed333b8875995523ccaa", 200,
         HTTPX, "2026-12-06T10:06:58"),
        ("GET", "manifest", "v1", 200, SKOPEO, "2026-12-06T10:06:58.104449297"),
        ("GET", "blob", "sha256:b77c985311a2ffa60c48b1dd775acc8ae72fba19356768f6f61158df739fa798",
         200, SKOPEO, "2026-12-06T10:06:58.10815697"),
        ("GET", "blob", "sha256:cd389c412e01d42a87887c666d26cc061f53e2599457c8ce03834e1c873ef543",
         200, SKOPEO, "2026-12-06T10:06:58.112258331"),
        ("GET", "manifest",
         "sha256:eedc0482958c23ec4a77ee67511368f4a5112f62f6a1ed333b8875995523ccaa", 200,
         SKOPEO, "2026-12-06T10:06:58.132122287"),
    ],
}
#: each capture's first and last line with a time
#: first to last line showing served requests (a start-up message shows none)
SPANS = {"2.8-json": ("2026-12-06T10:06:46.557174108", "2026-12-06T10:06:47.670149542"),
         "2.8-text": ("2026-12-06T10:06:50.065536541", "2026-12-06T10:06:51.204401243"),
         "3.0-json": ("2026-12-06T10:06:53.582139359", "2026-12-06T10:06:54.640095441"),
         "3.0-text": ("2026-12-06T10:06:57.073686444", "2026-12-06T10:06:58.132122287")}
CAPTURES = list(EXPECTED)
WEIRD_AGENT = 'we"ird \\ agent \ufffd'


def lines_of(name: str) -> list[str]:
    return (DATA / f"{name}.log").read_text(encoding="utf-8").splitlines()


def table(frame: pd.DataFrame) -> list[tuple]:
    """(method, kind, reference, status, user agent, time) of each row."""
    return [(r.method, r.kind, r.reference, r.status, r.user_agent,
             r.time.tz_convert(None).isoformat()) for r in frame.itertuples()]


def expected(name: str) -> list[tuple]:
    return [(m, k, ref, s, ua, pd.Timestamp(t).isoformat())
            for m, k, ref, s, ua, t in EXPECTED[name]]


def whole(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's columns but source, as plain objects: what two readings compare."""
    return frame.drop(columns="source").astype(object).reset_index(drop=True)


# -- the formats, as the registries wrote them


@pytest.mark.parametrize("name", CAPTURES)
def test_each_request_once_with_what_its_lines_say(name: str) -> None:
    path = DATA / f"{name}.log"
    pulls = ri.read_pulls(path)
    assert table(pulls) == expected(name)
    assert list(pulls.columns) == PULL_COLUMNS
    assert str(pulls["time"].dtype) == "datetime64[ns, UTC]"
    assert str(pulls["status"].dtype) == "Int16"
    assert all(pulls[c].dtype == "category" for c in PULL_COLUMNS
               if c not in ("time", "status"))
    assert set(pulls["client"]) == {LOCAL}
    assert pulls["user"].isna().all()
    assert set(pulls["repository"]) == {"exp/app"}
    assert set(pulls["source"]) == {str(path)}
    # the digest: the reference when it is one (always for a blob), NA for a tag
    by_digest = pulls["reference"].astype(str).str.startswith("sha256:")
    assert (pulls.loc[by_digest, "digest"].astype(str)
            == pulls.loc[by_digest, "reference"].astype(str)).all()
    assert pulls.loc[~by_digest, "digest"].isna().all()
    # start-up lines and the upload are the registry's: not rows, not malformed
    assert pulls.attrs["skipped"] == {str(path): 0}
    first, last = SPANS[name]
    (span,) = pulls.attrs["coverage"]
    assert (span.source, span.start, span.end) == (
        str(path), pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC"))


def test_3_0_heads_come_from_the_access_log_2_8_heads_from_logrus() -> None:
    for name in ("3.0-json", "3.0-text"):
        lines = lines_of(name)
        heads = [line for line in lines if '"HEAD /v2/exp/app/manifests/' in line]
        assert len(heads) == 2
        assert not any("HEAD" in line and "/manifests/" in line and "response completed"
                       in line for line in lines)  # the capture shows 3.0's gap
    for name in ("2.8-json", "2.8-text"):
        assert sum("HEAD" in line and "/manifests/" in line and "response completed" in line
                   for line in lines_of(name)) == 2


def test_odd_requests_client_behind_a_proxy_quoted_agent_errors_and_invalid_names() -> None:
    for name in ("odd-2.8-text", "odd-3.0-json", "odd-2.8-logstash"):
        path = DATA / f"{name}.log"
        pulls = ri.read_pulls(path)
        rows = {(r.method, r.reference, r.status): r for r in pulls.itertuples()}
        version_3 = name.startswith("odd-3.0")
        # the GET sent X-Forwarded-For: 10.9.8.7, 10.0.0.1 through a local socket: logrus
        # names the first, the access log the socket; the logrus line is the row
        weird = rows[("GET", "v1", 200 if version_3 else 400)]
        assert (weird.client, weird.user_agent) == ("10.9.8.7", WEIRD_AGENT)
        assert str(weird.time.tz_convert(None)) != str(weird.time.floor("s").tz_convert(None))
        # the HEAD with X-Real-Ip and ?ns=docker.io: the query is not the reference
        head = rows[("HEAD", "v1", 200 if version_3 else 400)]
        assert head.client == (LOCAL if version_3 else "10.9.8.6")
        assert rows[("HEAD", "nope", 404)].kind == rows[("GET", "nope", 404)].kind == "manifest"
        blob = [r for r in pulls.itertuples() if r.kind == "blob"]
        assert [r.method for r in blob] == ["HEAD", "GET"]
        # /v2/Bad/manifests/v1 (one access line) and blobs/sha256:zz (both lines)
        assert pulls.attrs["skipped"] == {str(path): 3}
        assert len(pulls) == 7


# -- what collects the lines


def kubectl_timestamps(lines: list[str]) -> list[str]:
    return [f"2026-12-06T10:{i // 60:02d}:{i % 60:02d}.{i:09d}Z {line}"
            for i, line in enumerate(lines)]


def kubectl_prefix(lines: list[str]) -> list[str]:
    return [f"[pod/registry-7d9f8/registry] {line}" for line in lines]


def cri(lines: list[str]) -> list[str]:
    return [f"2026-12-06T10:06:51.{i:09d}+01:00 {'stdout' if line[0].isdigit() else 'stderr'}"
            f" F {line}" for i, line in enumerate(lines)]


def docker_json(lines: list[str]) -> list[str]:
    return [json.dumps({"log": line + "\n", "stream": "stderr", "time": "2026-12-06T10:06:51Z"})
            for line in lines]


def journal_json(lines: list[str]) -> list[str]:
    out = []
    for i, line in enumerate(lines):
        # journald keeps a message that is not clean text as a list of its bytes
        message = list(line.encode()) if i % 2 else line
        out.append(json.dumps({"__CURSOR": f"s=1;i={i}", "__REALTIME_TIMESTAMP": "1796551611000000",
                               "_SYSTEMD_UNIT": "docker-registry.service", "MESSAGE": message,
                               "SYSLOG_IDENTIFIER": "docker-registry"}))
    return ["-- Logs begin at Sun 2026-12-06 10:00:00 UTC. --", *out]


def journal_short(lines: list[str]) -> list[str]:
    return ["-- Boot 3c1e0a4f1b0a4b0e9a0d9f3c2b1a0f9e --",
            *[f"Dec 06 10:06:51 node-1 docker-registry[812]: {line}" for line in lines]]


def journal_short_precise(lines: list[str]) -> list[str]:
    return [f"Dec  6 10:06:51.123456 node-1 docker-registry[812]: {line}" for line in lines]


def journal_short_iso(lines: list[str]) -> list[str]:
    return [f"2026-12-06T10:06:51+0000 node-1 docker-registry[812]: {line}" for line in lines]


def journal_short_iso_precise(lines: list[str]) -> list[str]:
    return [f"2026-12-06T10:06:51.123456+00:00 node-1 registry[1]: {line}" for line in lines]


def journal_short_full(lines: list[str]) -> list[str]:
    return [f"Sun 2026-12-06 10:06:51 UTC node-1 docker-registry[812]: {line}" for line in lines]


WRAPPERS = [kubectl_timestamps, kubectl_prefix,
            lambda lines: kubectl_prefix(kubectl_timestamps(lines)), cri, docker_json,
            journal_json, journal_short, journal_short_precise, journal_short_iso,
            journal_short_iso_precise, journal_short_full]


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("wrap", WRAPPERS, ids=lambda w: getattr(w, "__name__", "both"))
def test_lines_as_kubectl_the_runtime_or_journalctl_collect_them(name: str, wrap) -> None:
    pulls = ri.read_pulls(iter(wrap(lines_of(name))))
    assert table(pulls) == expected(name)
    assert pulls.attrs["skipped"] == {"<lines>": 0}
    assert set(pulls["source"]) == {"<lines>"}


def test_a_line_the_runtime_split_is_joined() -> None:
    lines = lines_of("2.8-json")
    get = next(i for i, line in enumerate(lines) if '"http.request.method":"GET"' in line
               and "/manifests/v1" in line)
    split = []
    for i, line in enumerate(lines):
        stream = "stdout" if line[0].isdigit() else "stderr"
        if i == get:  # containerd cuts a long line in pieces (P), the last one F
            split += [f"2026-12-06T10:06:51Z {stream} P {line[:100]}",
                      "2026-12-06T10:06:51Z stdout F 10.1.1.1 - - [06/Dec/2026:10:06:47 +0000]"
                      ' "GET /v2/other/manifests/v9 HTTP/1.1" 200 1 "" "x"',
                      f"2026-12-06T10:06:51Z {stream} P {line[100:300]}",
                      f"2026-12-06T10:06:51Z {stream} F {line[300:]}"]
        else:
            split.append(f"2026-12-06T10:06:51Z {stream} F {line}")
    pulls = ri.read_pulls(iter(split))
    assert table(pulls.query("repository == 'exp/app'")) == expected("2.8-json")
    assert list(pulls.loc[pulls["repository"] == "other", "reference"]) == ["v9"]
    assert pulls.attrs["skipped"] == {"<lines>": 0}
    entries = []
    for line in lines:  # docker's json-file: an entry without its newline is a piece
        entries += [json.dumps({"log": line[:50], "stream": "stderr"}),
                    json.dumps({"log": line[50:] + "\n", "stream": "stderr"})]
    assert table(ri.read_pulls(iter(entries))) == expected("2.8-json")
    # a piece whose line never ends is one malformed line
    cut = ri.read_pulls(iter([*split, "2026-12-06T10:06:52Z stderr P {\"go.version\":"]))
    assert cut.attrs["skipped"] == {"<lines>": 1}


# -- files, folders, streams


def test_gzip_is_known_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    raw = (DATA / "3.0-json.log").read_bytes()
    squeezed = tmp_path / "registry.log"  # compressed, without .gz
    squeezed.write_bytes(gzip.compress(raw))
    plain = tmp_path / "registry.log.gz"  # plain, named .gz
    plain.write_bytes(raw)
    for path in (squeezed, plain):
        pulls = ri.read_pulls(path)
        assert table(pulls) == expected("3.0-json")
        assert pulls.attrs["skipped"] == {str(path): 0}


def test_a_gzip_file_cut_short_keeps_what_it_held(tmp_path: Path) -> None:
    path = tmp_path / "registry.log.2.gz"
    data = gzip.compress((DATA / "2.8-json.log").read_bytes() * 50)
    path.write_bytes(data[:len(data) // 2])
    pulls = ri.read_pulls(path)
    assert 0 < len(pulls) < 50 * 7
    assert pulls.attrs["skipped"] == {str(path): 1}


def test_a_rotated_set_and_a_folder(tmp_path: Path) -> None:
    lines = lines_of("2.8-text")
    half = len(lines) // 2
    while not lines[half - 1][0].isdigit():  # cut between requests, not inside one
        half += 1
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "registry.log").write_text("\n".join(lines[half:]) + "\n")
    (folder / "registry.log.1.gz").write_bytes(gzip.compress(
        ("\n".join(lines[:half]) + "\n").encode()))
    (folder / "old").mkdir()  # a subfolder is not read
    (folder / "old" / "registry.log").write_text("\n".join(lines) + "\n")
    (folder / "current").symlink_to("registry.log")  # the same file again: read once
    pulls = ri.read_pulls(folder)
    assert table(pulls) == expected("2.8-text")
    names = {str(folder / "registry.log"), str(folder / "registry.log.1.gz")}
    assert set(pulls.attrs["skipped"]) == names == {s.source for s in pulls.attrs["coverage"]}
    assert sorted(s.start for s in pulls.attrs["coverage"])[0] == pd.Timestamp(
        SPANS["2.8-text"][0], tz="UTC")
    # the same as the two files given in a list, and as their lines
    assert whole(pulls).equals(whole(ri.read_pulls(sorted(folder.glob("registry.log*")))))
    assert whole(pulls).equals(whole(ri.read_pulls(iter(lines))))


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "registry.log").write_text("\n".join(lines_of("2.8-json")) + "\n")
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not a log\n")
    (folder / "escape").symlink_to(secret)
    with pytest.raises(ri.PullRecordsInvalid, match="leads out of"):
        ri.read_pulls(folder)
    (folder / "escape").unlink()
    (folder / "dir-link").symlink_to(tmp_path)  # a link to a folder out: refused too
    with pytest.raises(ri.PullRecordsInvalid, match="leads out of"):
        ri.read_pulls(folder)


def test_open_files_and_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    path = DATA / "3.0-text.log"
    with path.open(encoding="utf-8") as text, path.open("rb") as binary:
        for stream in (text, binary):
            pulls = ri.read_pulls(stream)
            assert table(pulls) == expected("3.0-text")
            assert set(pulls["source"]) == {str(path)}
    data = path.read_bytes() + b"\xff\xfe broken bytes\n"
    stdin = io.TextIOWrapper(io.BytesIO(data), encoding="ascii")  # a strict locale
    monkeypatch.setattr(sys, "stdin", stdin)
    pulls = ri.read_pulls(sys.stdin)  # read as bytes: the bad line is one malformed line
    assert table(pulls) == expected("3.0-text")
    assert pulls.attrs["skipped"] == {"<lines>": 1}
    strict = io.TextIOWrapper(io.BytesIO(data), encoding="ascii")
    with pytest.raises(ri.PullRecordsInvalid, match="not UTF-8 text"):
        ri.read_pulls(strict)
    # bytes lines, a generator
    generated = (line.encode() for line in lines_of("3.0-text"))
    assert table(ri.read_pulls(generated)) == expected("3.0-text")


def test_sources_combined_in_a_list(tmp_path: Path) -> None:
    frame = ri.read_pulls(DATA / "2.8-json.log")
    combined = ri.read_pulls([frame, str(DATA / "3.0-json.log"),
                              (iter(lines_of("3.0-text")),)])
    assert len(combined) == 21
    assert combined["time"].is_monotonic_increasing
    assert set(combined["source"]) == {str(DATA / "2.8-json.log"), str(DATA / "3.0-json.log"),
                                       "<lines>"}
    assert len(combined.attrs["coverage"]) == 3
    # with a user in one source only (its column all NA elsewhere), and an empty one
    user = lines_of("2.8-json")
    user = [line.replace('{"go.version"', '{"auth.user.name":"ci-bot","go.version"', 1)
            if '"http.request.uri":"/v2/exp/app/manifests/v1"' in line else line for line in user]
    empty = tmp_path / "empty.log"
    empty.write_text("")
    joined = ri.read_pulls([iter(user), DATA / "3.0-text.log", empty])
    assert sorted(joined["user"].dropna()) == ["ci-bot", "ci-bot", "ci-bot"]
    assert joined.attrs["skipped"][str(empty)] == 0


def test_the_listener_folder_is_read_by_the_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "events")
    body = json.dumps({"events": [{
        "id": "e1", "timestamp": "2026-12-06T10:06:47.595837556Z", "action": "pull",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": "sha256:" + "a" * 64, "repository": "exp/app",
                   "url": "http://r/v2/exp/app/manifests/sha256:" + "a" * 64, "tag": "v1"},
        "request": {"addr": "10.0.0.9:4000", "method": "GET", "useragent": "containerd"}}]})
    store.append(parse_envelope(body.encode(), received="2026-12-06T10:06:48Z"))
    store.close()
    pulls = ri.read_pulls(tmp_path / "events")
    assert list(pulls["repository"]) == ["exp/app"]
    assert list(pulls["source"]) == [str(tmp_path / "events")]


def test_a_dataframe_of_pull_columns() -> None:
    mine = pd.DataFrame({"time": ["2026-12-01T00:00:00Z"], "repository": ["a/b"],
                         "reference": ["v1"], "method": ["get"], "kind": ["manifest"]})
    pulls = ri.read_pulls(mine)
    assert list(pulls["method"]) == ["GET"]
    with pytest.raises(ri.PullRecordsInvalid, match="columns"):
        ri.read_pulls(mine.drop(columns="kind"))


@pytest.mark.parametrize("source", [42, {"a": 1}, {"line"}, b"bytes", None, 3.5])
def test_other_sources_are_refused_clearly(source: object) -> None:
    with pytest.raises(ri.PullRecordsInvalid, match="cannot read pull records from"):
        ri.read_pulls(source)


def test_paths_that_are_not_there_and_lines_given_as_a_list(tmp_path: Path) -> None:
    with pytest.raises(ri.PullRecordsInvalid, match="no such file or folder"):
        ri.read_pulls(tmp_path / "missing.log")
    with pytest.raises(ri.PullRecordsInvalid, match=r"iter\(lines\)"):
        ri.read_pulls(lines_of("2.8-json"))  # a list is of sources: its lines are not paths
    looped: list = []
    looped.append(looped)
    with pytest.raises(ri.PullRecordsInvalid, match="holds itself"):
        ri.read_pulls(looped)
    with pytest.raises(ri.PullRecordsInvalid, match="line 2 is a int"):
        ri.read_pulls(iter(["", 5]))


# -- what is skipped, and why


def test_malformed_lines_are_counted_and_skipped_never_fatal() -> None:
    lines = lines_of("2.8-json")
    get = next(line for line in lines if '"GET /v2/exp/app/manifests/v1' in line)
    bad = [
        lines[3][:200],                                       # a JSON line cut short
        '{"go.version":"go1.19.8","msg":"no time"}',          # JSON, but not the registry's
        "panic: runtime error: invalid memory address",       # none of the formats
        'time="2026-13-45T10:06:51Z" level=info msg="x"',     # a time that is not one
        get.replace("/v2/exp/app/", "/v2/Exp/App/"),          # an invalid repository
        get.replace("/manifests/v1", "/manifests/-v1"),       # an invalid tag
        get.replace("/manifests/v1", "/blobs/sha256:abc"),    # an invalid digest
        get.replace("/manifests/v1", "/blobs/v1"),            # a blob by tag
        get.replace(" 200 ", " 2000 "),                       # no status
        "\x00\x01 binary",
    ]
    blank = ["", "   ", "-- No entries --"]                   # neither records nor malformed
    pulls = ri.read_pulls(iter(lines + bad + blank))
    assert table(pulls) == expected("2.8-json")
    assert pulls.attrs["skipped"] == {"<lines>": len(bad) + 1}  # "   " is not a log line
    assert ri.read_pulls(iter(blank[:1] + blank[2:])).attrs["skipped"] == {"<lines>": 0}


def test_a_line_over_the_cap_is_skipped_without_being_held(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    lines = lines_of("3.0-json")
    path = tmp_path / "registry.log"
    huge = '{"msg":"' + "x" * (_logs.MAX_LINE + 10) + '"}'
    path.write_text("\n".join([*lines[:5], huge, *lines[5:]]) + "\n")
    pulls = ri.read_pulls(path)
    assert table(pulls) == expected("3.0-json")
    assert pulls.attrs["skipped"] == {str(path): 1}
    # the cap is checked while reading: with a smaller one, every longer line goes
    monkeypatch.setattr(_logs, "MAX_LINE", 400)
    short = ri.read_pulls(path)
    longer = sum(len(line) + 1 > 400 for line in lines) + 1
    assert short.attrs["skipped"] == {str(path): longer}
    with path.open("rb") as stream:
        assert ri.read_pulls(stream).attrs["skipped"] == {str(path): longer}


# -- each request once


COMBINED = '{client} - {user} [{second}] "{method} {uri} HTTP/1.1" {status} 10 "" "{agent}"'
LOGRUS = ('{{"http.request.method":"{method}","http.request.remoteaddr":"{remote}",'
          '"http.request.uri":"{uri}","http.request.useragent":"{agent}",'
          '"http.response.duration":"{took}","http.response.status":{status},'
          '"level":"info","msg":"response completed","time":"{end}"}}')


def request(method: str = "GET", uri: str = "/v2/a/b/manifests/v1", *, status: int = 200,
            agent: str = "containerd/1.7", client: str = "10.0.0.1", end: str =
            "2026-12-06T10:00:00.500000000Z", took: str = "2ms",
            second: str = "06/Dec/2026:10:00:00 +0000", user: str = "-") -> tuple[str, str]:
    """A request's two lines: (logrus, access log)."""
    return (LOGRUS.format(method=method, uri=uri, status=status, agent=agent, end=end,
                          took=took, remote=f"{client}:40000"),
            COMBINED.format(method=method, uri=uri, status=status, agent=agent, client=client,
                            second=second, user=user))


def test_twins_apart_or_swapped_pair_and_identical_requests_all_count() -> None:
    first, second = request(), request(client="10.0.0.2")
    other = request(uri="/v2/a/b/blobs/sha256:" + "b" * 64)
    # the runtime swapped a pair, put lines between another, and two requests were alike
    pulls = ri.read_pulls(iter([first[1], first[0], second[0], other[0], other[1],
                                second[1]]))
    assert list(pulls["client"]) == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
    assert list(pulls["kind"]) == ["manifest", "manifest", "blob"]
    # the same request three times in one second: three rows, in either line order
    same = request()
    assert len(ri.read_pulls(iter([same[0], same[1]] * 3))) == 3
    assert len(ri.read_pulls(iter([same[1]] * 3 + [same[0]] * 3))) == 3
    # an access line alone is a row: the logrus line went elsewhere, or is not written
    alone = ri.read_pulls(iter([same[1], request(method="HEAD")[1]]))
    assert list(alone["method"]) == ["GET", "HEAD"]
    assert alone["time"].iloc[0] == pd.Timestamp("2026-12-06T10:00:00Z")


def test_twins_are_the_same_request_not_another_one_alike() -> None:
    logrus, _ = request()
    # the access line of another request: other status, agent, method or second
    for other in (request(status=404)[1], request(agent="docker/27")[1],
                  request(method="HEAD")[1], request(second="06/Dec/2026:09:59:57 +0000")[1],
                  request(second="06/Dec/2026:10:00:01 +0000")[1]):
        assert len(ri.read_pulls(iter([logrus, other]))) == 2
    # its own: the second it began (the end less the duration), or the one before
    for second in ("06/Dec/2026:10:00:00 +0000", "06/Dec/2026:09:59:59 +0000",
                   "06/Dec/2026:11:00:00 +0100"):
        assert len(ri.read_pulls(iter([logrus, request(second=second)[1]]))) == 1
    # a blob read for a minute: the access line has its start, a minute before the end
    slow = request(uri="/v2/a/b/blobs/sha256:" + "c" * 64, took="1m2.25s",
                   end="2026-12-06T10:01:02.300000000Z")
    assert len(ri.read_pulls(iter(slow))) == 1
    # behind a proxy: logrus names the client from X-Forwarded-For, the access log the proxy
    proxied = request(client="10.0.0.7")[0].replace("10.0.0.7:40000", "192.168.1.20")
    pulls = ri.read_pulls(iter([proxied, request(client="10.0.0.254")[1]]))
    assert list(pulls["client"]) == ["192.168.1.20"]


def test_twins_further_apart_than_the_window_are_two_records(
        monkeypatch: pytest.MonkeyPatch) -> None:
    logrus, access = request()
    filler = ['{"level":"info","msg":"x","time":"2026-12-06T10:00:00.6Z"}'] * 10
    monkeypatch.setattr(_logs, "TWIN_WINDOW", 8)
    assert len(ri.read_pulls(iter([logrus, *filler, access]))) == 2
    assert len(ri.read_pulls(iter([logrus, *filler[:5], access]))) == 1


def test_clients_users_and_time_zones() -> None:
    ipv6 = request(client="[2001:db8::7]")[0].replace("[2001:db8::7]:40000", "[2001:db8::7]:5")
    pulls = ri.read_pulls(iter([ipv6]))
    assert list(pulls["client"]) == ["2001:db8::7"]
    access_ipv6 = request(client="::1", user="alice")[1]
    pulls = ri.read_pulls(iter([access_ipv6]))
    assert (pulls["client"].iloc[0], pulls["user"].iloc[0]) == ("::1", "alice")
    forwarded = request()[0].replace("10.0.0.1:40000", "2001:db8::9")  # X-Forwarded-For
    assert list(ri.read_pulls(iter([forwarded]))["client"]) == ["2001:db8::9"]
    authenticated = request()[0].replace('{"http.', '{"auth.user.name":"ci","http.', 1)
    assert list(ri.read_pulls(iter([authenticated]))["user"]) == ["ci"]
    logstash = next(line for line in lines_of("odd-2.8-logstash")
                    if '"message":"response completed"' in line and '"GET"' in line)
    logstash = logstash.replace('"@version":"1",', '"@version":"1","auth.user.name":"ci",')
    assert list(ri.read_pulls(iter([logstash]))["user"]) == ["ci"]
    # a registry in another zone: +02:00 in logrus's time, +0200 in the access log's
    local = request(end="2026-12-06T12:00:00.5+02:00", second="06/Dec/2026:12:00:00 +0200")
    pulls = ri.read_pulls(iter(local))
    assert list(pulls["time"]) == [pd.Timestamp("2026-12-06T10:00:00.5Z")]


def test_every_text_formatter_escape_is_read() -> None:
    line = next(line for line in lines_of("odd-2.8-text")
                if "we\\\"ird" in line and 'msg="response completed' in line)
    assert ri.read_pulls(iter([line]))["user_agent"].iloc[0] == WEIRD_AGENT
    # a user in the text formatter (sorted before the http fields), quoted
    user = line.replace(" go.version=", ' auth.user.name="ci bot" go.version=', 1)
    assert ri.read_pulls(iter([user]))["user"].iloc[0] == "ci bot"
    plain = next(line for line in lines_of("2.8-text")
                 if "http.request.method=HEAD" in line and "manifests/v1" in line)
    user = plain.replace(" go.version=", " auth.user.name=ci go.version=", 1)
    assert ri.read_pulls(iter([user]))["user"].iloc[0] == "ci"
    # a quoted value that holds what looks like a field is inside the value
    spoof = plain.replace("http.request.useragent=python-httpx/0.28.1",
                          'http.request.useragent="x http.response.status=500"')
    pulls = ri.read_pulls(iter([spoof]))
    assert (pulls["status"].iloc[0], pulls["user_agent"].iloc[0]) == (
        200, "x http.response.status=500")
    # an error's detail (sorted before the http fields) that reads like a request
    forged = ('err.detail="x http.request.method=GET http.request.uri=/v2/forged/manifests/v9'
              ' http.response.status=200 x" go.version=')
    pulls = ri.read_pulls(iter([plain.replace("go.version=", forged, 1)]))
    assert (pulls["repository"].iloc[0], pulls["method"].iloc[0]) == ("exp/app", "HEAD")


def test_chunks_make_the_same_frame_as_pull_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [line for name in CAPTURES for line in lines_of(name)]
    lines.append(request()[0].replace('{"http.', '{"auth.user.name":"ci","http.', 1))
    whole_frame = ri.read_pulls(iter(lines))
    monkeypatch.setattr(_logs, "CHUNK_ROWS", 3)
    chunked = ri.read_pulls(iter(lines))
    assert whole(chunked).equals(whole(whole_frame))
    assert len(chunked) == 29
    # the frame is made without pull_frame (no Python object a row): the same all the same
    rows = {c: [None if pd.isna(v) else v for v in whole_frame[c].astype(object)]
            for c in PULL_COLUMNS}
    rows["time"] = [t.isoformat() for t in whole_frame["time"]]
    made = pull_frame(rows)
    assert made.dtypes.equals(whole_frame.dtypes)
    assert made.equals(whole_frame)


def test_sample_access_log_reads_as_its_requests(tmp_path: Path) -> None:
    folder = ri.sample_access_log(tmp_path / "sample", now="2026-12-06T12:00:00Z")
    files = sorted(os.listdir(folder))
    pulls = ri.read_pulls(folder)
    lines = sum(len((gzip.decompress((folder / f).read_bytes()) if f.endswith(".gz")
                     else (folder / f).read_bytes()).splitlines()) for f in files)
    health = sum(1 for _ in range(0, 200 * 24, 6))
    # two lines a request; the health checks (GET /v2/) are not rows
    assert len(pulls) == lines // 2 - health
    assert pulls.attrs["skipped"] == {str(folder / f): 0 for f in files}


def test_a_3_0_log_covers_time_only_with_its_access_log() -> None:
    """3.0 logs a manifest HEAD only in its access log: its logrus lines alone cannot
    show the checks a node makes, so they cover nothing; its access-log lines do, even
    when they are only health checks."""
    lines = [line for line in lines_of("3.0-json") if "/v2/ " in line or '"/v2/"' in line]
    access = [line for line in lines if " HTTP/1.1\" " in line]
    assert access and len(access) < len(lines)  # both kinds, of GET /v2/ only
    assert ri.read_pulls(iter(lines)).attrs["coverage"]
    logrus_only = [line for line in lines if line not in access]
    assert ri.read_pulls(iter(logrus_only)).attrs["coverage"] == []
    two_eight = [line for line in lines_of("2.8-json") if '"/v2/"' in line]
    assert ri.read_pulls(iter(two_eight)).attrs["coverage"]  # 2.8's logrus lines show all
