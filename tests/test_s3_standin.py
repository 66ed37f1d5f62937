"""The S3 stand-in of the benchmarks (benchmarks.s3_standin) and its latency proxy:
its indexed listing answers exactly as moto's own, its own answers to GET/HEAD and
listings are moto's byte for byte (and parse as moto_server's do), objects written
straight into it are what a PutObject stores, it counts what it serves, the proxy
adds its delay and passes bytes intact over kept-alive, concurrent connections, and
each real collector's dry run on a synthetic tree in the stand-in agrees with
gc_preview."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import reginsight as ri
from benchmarks import s3_moto, s3_standin
from benchmarks.s3_standin import Standin, StandinServer, counted, standin
from benchmarks.storage_bench import MODES, blobs_named, synthetic_objects
from benchmarks.storage_s3_bench import BUCKET, go_run, write_objects
from tests.registry_server import free_port
from tests.s3_server import KEY, REGION, SECRET, S3Server

# keys and folders interleaved: '.' (0x2e) and '-' sort before '/' (0x2f), '0' after
TRICKY = ["a", "a.txt", "a/", "a/b", "a/b/c", "a/b.c", "a/b/", "a/b0", "a-b/c", "a.b/c",
          "a0", "a//x", "ab/c", "b", "b/a/b/c", "é/x", "a/b/c/d/e", "c/d.e/f", "c/d/e",
          "c/d-e", "c/d", "c/d0", "c/d/", "c/d/e/f", "c/d/e.f"]
PREFIXES = ["", "a", "a/", "a/b", "a/b/", "a/b/c", "c/", "c/d", "c/d/", "a.", "é", "zz"]
DELIMITERS = [None, "/", ".", "b/"]
STARTS = [None, "a/b", "a/", "a/b/c", "a/b.c", "c/d.e", "c/d/e", "a/b0", "a", "zzz"]


def _names(items: list) -> list:
    return [item if isinstance(item, str) else (item.name, item.size) for item in items]


def _keys(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return TRICKY + ["".join(rng.choice("ab./-") for _ in range(rng.randint(1, 6)))
                     for _ in range(count)]


@pytest.fixture
def backend() -> Iterator[object]:
    """A moto S3 backend in this process, the indexed listing installed on it (moto's
    own kept beside it), undone after."""
    from moto.s3.models import S3Backend

    s3_moto.install_indexed_listing()
    try:
        yield S3Backend(REGION, "123456789012")
    finally:
        s3_moto.remove_indexed_listing()


def _pages_v2(listing, bucket, prefix, delimiter, start, max_keys) -> list:
    pages, token = [], None
    while True:
        items, truncated, token = listing(bucket, prefix, delimiter, token, start, max_keys)
        pages.append((_names(items), truncated, token))
        if not truncated:
            return pages
        assert len(pages) < 500, "a listing that does not move on"


def _pages_v1(listing, bucket, prefix, delimiter, max_keys) -> list:
    pages, marker = [], None
    while True:
        keys, folders, truncated, marker = listing(bucket, prefix, delimiter, marker, max_keys)
        pages.append((_names(keys), list(folders), truncated, marker))
        if not truncated:
            return pages
        assert len(pages) < 500, "a listing that does not move on"


def _same_listings(backend, name: str) -> int:
    """Every query, paged to the end, through both listings; returns how many pages."""
    from moto.s3.models import S3Backend

    moto_v1, moto_v2 = S3Backend._standin_moto
    bucket, pages = backend.get_bucket(name), 0
    for prefix, delimiter, max_keys in itertools.product(PREFIXES, DELIMITERS, (0, 1, 3, 1000)):
        for start in STARTS:
            ours = _pages_v2(backend.list_objects_v2, bucket, prefix, delimiter, start,
                             max_keys)
            assert ours == _pages_v2(partial_backend(moto_v2, backend), bucket, prefix,
                                     delimiter, start, max_keys), (prefix, delimiter, start,
                                                                   max_keys)
            pages += len(ours)
        if max_keys:
            ours = _pages_v1(backend.list_objects, bucket, prefix, delimiter, max_keys)
            assert ours == _pages_v1(partial_backend(moto_v1, backend), bucket, prefix,
                                     delimiter, max_keys), (prefix, delimiter, max_keys)
            pages += len(ours)
    return pages


def partial_backend(method, backend):
    return lambda *args: method(backend, *args)


def test_indexed_listing_answers_as_moto_page_for_page(backend):
    backend.create_bucket("tricky", REGION)
    for n, key in enumerate(_keys(1, 80)):
        backend.put_object("tricky", key, b"x" * (n % 7))
    assert _same_listings(backend, "tricky") > 2000
    # writes after a listing: the index is rebuilt (the server bumps on each write)
    for key in ("a/b", "c/d/e", "a.txt", "b"):
        backend.delete_object("tricky", key)
    for key in ("a/b/new", "a.0", "c/d", "zz/top", "a/b/c/d/e/f"):
        backend.put_object("tricky", key, b"new!")
    s3_moto.changed()
    assert _same_listings(backend, "tricky") > 2000


def test_indexed_listing_with_delete_markers_answers_as_moto(backend):
    """A versioned bucket: a deleted key leaves a marker, which moto lists as a folder's
    member but never as a key."""
    backend.create_bucket("versioned", REGION)
    backend.put_bucket_versioning("versioned", "Enabled")
    for key in _keys(2, 40):
        backend.put_object("versioned", key, b"v1")
    for key in ("a/b", "a//x", "c/d/e/f", "a.txt"):
        backend.delete_object("versioned", key)
    s3_moto.changed()
    assert _same_listings(backend, "versioned") > 2000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standin]:
    with standin(tmp_path_factory.mktemp("standin"), 20) as running:
        running.server.client().create_bucket(Bucket=BUCKET)
        yield running


def _client(endpoint: str, connections: int = 10):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET, region_name=REGION,
                        config=Config(max_pool_connections=connections))


def _page_fields(page: dict) -> dict:
    return {"keys": [(c["Key"], c["Size"]) for c in page.get("Contents", ())],
            "prefixes": [p["Prefix"] for p in page.get("CommonPrefixes", ())],
            **{f: page.get(f) for f in ("IsTruncated", "NextContinuationToken", "KeyCount",
                                        "NextMarker")}}


def _http_pages(client, v2: bool, **query) -> list[dict]:
    pages, more = [], {}
    while True:
        page = (client.list_objects_v2 if v2 else client.list_objects)(**query, **more)
        pages.append(_page_fields(page))
        if not page["IsTruncated"]:
            return pages
        more = ({"ContinuationToken": page["NextContinuationToken"]} if v2 else
                {"Marker": page["NextMarker"]})


def test_the_standin_answers_as_moto_server_over_http(s3, tmp_path):
    """The same writes into moto's own server and into the stand-in, the same listings
    asked of both over HTTP (the stand-in's writes bump its index's generation)."""
    moto = S3Server(tmp_path / "moto").start()
    try:
        clients = [moto.client(), s3.server.client()]
        for client in clients:
            client.create_bucket(Bucket="compare")
            for n, key in enumerate(_keys(3, 30)):
                client.put_object(Bucket="compare", Key=key, Body=b"y" * n)
        compared = 0
        for round_ in range(2):
            for prefix, delimiter, start, max_keys in itertools.product(
                    ("", "a/", "a/b", "c/d"), (None, "/"), (None, "a/b", "c/d.e"), (1, 4)):
                query = {"Bucket": "compare", "Prefix": prefix, "MaxKeys": max_keys,
                         **({"Delimiter": delimiter} if delimiter else {})}
                v2 = [_http_pages(c, True, **query, **({"StartAfter": start} if start else {}))
                      for c in clients]
                v1 = [_http_pages(c, False, **query) for c in clients]
                assert v2[0] == v2[1] and v1[0] == v1[1], (round_, query, start)
                compared += len(v2[0]) + len(v1[0])
            for client in clients:  # then change the bucket and ask again
                client.delete_object(Bucket="compare", Key="a/b/c")
                client.put_object(Bucket="compare", Key="a/b/c0", Body=b"z")
        assert compared > 200
    finally:
        moto.stop()


def test_the_standin_counts_requests_by_kind(s3):
    client = s3.server.client()
    before = s3.server.counts()
    for n in range(3):
        client.put_object(Bucket=BUCKET, Key=f"count/{n}", Body=b"c")
    client.get_object(Bucket=BUCKET, Key="count/0")["Body"].read()
    client.get_object(Bucket=BUCKET, Key="count/1")["Body"].read()
    client.head_object(Bucket=BUCKET, Key="count/2")
    client.list_objects_v2(Bucket=BUCKET, Prefix="count/", Delimiter="/")
    client.list_objects(Bucket=BUCKET, Prefix="count/")
    client.delete_object(Bucket=BUCKET, Key="count/2")
    got = counted(before, s3.server.counts())
    assert got["kinds"] == {"list": 2, "get": 2, "head": 1, "put": 3, "other": 1}
    assert got["operations"] == {"PUT PutObject": 3, "GET GetObject": 2,
                                 "HEAD HeadObject": 1, "GET ListObjectsV2 delimiter": 1,
                                 "GET ListObjects": 1, "DELETE DeleteObject": 1}
    assert got["requests"] == 9
    assert s3.server.cpu_seconds() > 0
    # presigned: the signature's parameters do not make a listing something else
    before = s3.server.counts()
    for params in ({"Bucket": BUCKET, "Prefix": "count/", "Delimiter": "/"},
                   {"Bucket": BUCKET, "Key": "count/0"}):
        method = "list_objects_v2" if "Prefix" in params else "get_object"
        url = client.generate_presigned_url(method, Params=params, ExpiresIn=60)
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback
            assert answer.status == 200
    got = counted(before, s3.server.counts())
    assert got["operations"] == {"GET ListObjectsV2 delimiter": 1, "GET GetObject": 1}


def test_the_proxy_adds_its_delay_per_round_trip_on_a_kept_connection(s3):
    """Five requests on one connection through the proxy: each takes at least the round
    trip's delay, and the connection stays open (keep-alive through the proxy)."""
    connection = http.client.HTTPConnection("127.0.0.1", s3.proxy_port, timeout=30)
    try:
        sockets = set()
        for _ in range(5):
            start = time.perf_counter()
            connection.request("GET", s3_standin.COUNTS_PATH)
            answer = connection.getresponse()
            assert answer.status == 200 and b'"kinds"' in answer.read()
            assert time.perf_counter() - start >= s3.delay_ms / 1000
            assert not answer.will_close
            sockets.add(id(connection.sock))
        assert len(sockets) == 1
    finally:
        connection.close()


def test_the_proxy_passes_bytes_intact_to_many_connections(s3):
    rng = random.Random(4)
    sizes = [0, 1, 100, 65535, 65536, 65537, 300_000, 3_000_000] + [
        rng.randint(1, 200_000) for _ in range(40)]
    blobs = {f"bytes/{n}": os.urandom(size) for n, size in enumerate(sizes)}
    write_objects(s3, "/", blobs.items())
    client = _client(s3.proxied, 64)

    def fetch(key: str) -> tuple[str, str]:
        return key, hashlib.sha256(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                                   ).hexdigest()

    with ThreadPoolExecutor(64) as pool:
        fetched = list(pool.map(fetch, list(blobs) * 3))
    assert len(fetched) == 3 * len(blobs)
    assert all(digest == hashlib.sha256(blobs[key]).hexdigest() for key, digest in fetched)
    import s3fs

    fs = s3fs.S3FileSystem(**s3.storage_options(proxied=True))
    got = fs.cat([f"{BUCKET}/{key}" for key in blobs])
    assert {key.partition("/")[2]: data for key, data in got.items()} == blobs


def test_the_proxy_stays_quiet_when_clients_drop_and_when_stopped(s3, tmp_path):
    """Clients that hang up mid-answer, or before asking, and a stop while connections
    are open: nothing printed, a clean exit."""
    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "benchmarks.latency_proxy",
                              "--listen", f"127.0.0.1:{port}",
                              "--target", f"127.0.0.1:{s3.server.port}", "--delay-ms", "5"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=Path(__file__).resolve().parents[1])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        write_objects(s3, "/", [("drop/big", os.urandom(2_000_000))])
        client = _client(f"http://127.0.0.1:{port}", 32)

        def dropping(n: int) -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if n % 3:
                    sock.sendall(f"GET /{BUCKET}/drop/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    if n % 3 == 2:
                        sock.recv(1000)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

        with ThreadPoolExecutor(32) as pool:
            list(pool.map(dropping, range(60)))
            list(pool.map(lambda _: client.list_objects_v2(Bucket=BUCKET, Prefix="drop/"),
                          range(60)))
        open_ones = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        for sock in open_ones[:3]:
            sock.sendall(f"GET /{BUCKET}/drop/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.05)
        proxy.terminate()
        out, err = proxy.communicate(timeout=20)
        for sock in open_ones:
            sock.close()
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()
    assert proxy.returncode == 0 and out == b"" and err == b"", err.decode()[-2000:]


@pytest.fixture(scope="module")
def synthetic(s3: Standin) -> ri.Inventory:
    """30 revisions in 10 repositories (two of three untagged) written into the bucket in
    the registry's layout, scanned through the proxy."""
    write_objects(s3, "/synthetic", synthetic_objects(30, 10))
    return ri.scan_storage(f"s3://{BUCKET}/synthetic",
                           storage_options=s3.storage_options(proxied=True), progress=False)


@pytest.mark.parametrize("collector", ["distribution-2", "distribution-3"])
@pytest.mark.parametrize("delete_untagged", list(MODES))
def test_each_collector_agrees_with_gc_preview_on_a_synthetic_s3_tree(
        s3, synthetic, collector, delete_untagged, tmp_path):
    assert synthetic.errors.empty, synthetic.errors
    assert len(synthetic.manifests) == 30 and (~synthetic.manifests["tagged"]).sum() == 20
    go = go_run(s3, tmp_path, "/synthetic", collector, delete_untagged, proxied=False)
    assert go.count > 30 and go.requests["kinds"]["get"] > 0
    ours = blobs_named(ri.gc_preview(synthetic, collector=collector,
                                     delete_untagged=delete_untagged))
    assert ours == go.named
    # plain: nothing unreferenced in this tree; --delete-untagged: the untagged's own blobs
    assert len(ours) == (60 if delete_untagged else 0)


def test_a_standin_that_cannot_start_is_an_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: the stand-in cannot bind
        port = taken.getsockname()[1]
        with pytest.raises(s3_standin.S3StartError, match="did not start"):
            StandinServer(tmp_path, port=port).start(timeout=5)


# --- the stand-in's own answers (fast_answer) against moto's -------------------------------

#: keys a client must escape: space, '+', '%', '&', '<', unicode, '.', '-', '=', nested
ESCAPED = ["a b/c+d%e/é", "a b/c", "a b/c+d%e/f g", "x&y<z>.txt", "日本/語/x", "a.b", "a-b/c",
           "a/b", "a/b/c", "a=b/c", "a%2Fb", "empty", "plus+/x", "~tilde/ü.json"]
RANGES = ["bytes=1-3", "bytes=2-", "bytes=-2", "bytes=0-0", "bytes=0-", "bytes=100-",
          "bytes=3-1", "bytes=1-2,4-5", "bytes=x-y", "bytes=-0"]


def _content(n: int) -> bytes:
    return b"" if n == ESCAPED.index("empty") else bytes(range(n, n + 3 * n + 1))


class _Signed:
    """Requests signed as botocore signs them (moto reads the region and access key
    from the signature), to a WSGI app in this process."""

    def __init__(self, app) -> None:
        from werkzeug.test import Client

        self.client = Client(app)

    def __call__(self, method: str, path: str, query: str = "", headers: dict | None = None,
                 body: bytes = b""):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        url = f"http://127.0.0.1:5000{path}" + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
        SigV4Auth(Credentials(KEY, SECRET), "s3", REGION).add_auth(request)
        return self.client.open(path, method=method, query_string=query or None,
                                headers=dict(request.headers), data=body,
                                base_url="http://127.0.0.1:5000")


def _answer(response) -> tuple:
    """Status, headers (any case, any order; moto's random request id left out) and
    body (its error's request id left out)."""
    import re

    headers = sorted((name.lower(), value) for name, value in response.headers
                     if name.lower() != "x-amzn-requestid")
    return (response.status, headers,
            re.sub(rb"<RequestId>[^<]*</RequestId>", b"", response.data))


@pytest.fixture
def two_apps(monkeypatch):
    """One moto app in this process (its global backend), behind the stand-in's WSGI
    app twice: with fast_answer and without (moto answers all); the indexed listing
    installed, as in the server. Yields both callers and the answers fast_answer gave."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    s3_moto.install_indexed_listing()
    answered: list[bool] = []
    fast_answer = s3_moto.fast_answer

    def spied(*args):
        answer = fast_answer(*args)
        answered.append(answer is not None)
        return answer

    monkeypatch.setattr(s3_standin, "fast_answer", spied)
    try:
        moto = DomainDispatcherApplication(create_backend_app)
        yield (_Signed(s3_standin._Counting(moto, None, fast=True)),
               _Signed(s3_standin._Counting(moto, None, fast=False)), answered)
    finally:
        s3_moto.remove_indexed_listing()


def _query(**params) -> str:
    from urllib.parse import quote

    return "&".join(f"{name.replace('_', '-')}={quote(str(value), safe='')}"
                    for name, value in params.items() if value is not None)


def test_fast_answers_are_motos_byte_for_byte(two_apps):
    """Every GET/HEAD the stand-in answers itself is moto's answer, status, headers and
    body; what it leaves to moto (missing keys, bad ranges, conditions, other queries,
    a bad token) moto answers."""
    from urllib.parse import quote

    fast, moto, answered = two_apps
    assert moto("PUT", "/fast-bytes").status_code == 200
    for n, key in enumerate(ESCAPED):
        checksum = {"x-amz-sdk-checksum-algorithm": "CRC32",
                    "x-amz-checksum-crc32": "AAAAAA=="} if n % 2 else {}
        put = moto("PUT", "/fast-bytes/" + quote(key), headers={
            **checksum, "x-amz-meta-n": str(n)}, body=_content(n))
        assert put.status_code == 200, put.data
    compared = 0

    def same(*args, **kwargs) -> None:
        nonlocal compared
        ours, theirs = _answer(fast(*args, **kwargs)), _answer(moto(*args, **kwargs))
        assert ours == theirs, (args, kwargs)
        compared += 1

    for key in [*ESCAPED, "missing", "a b"]:
        for method in ("GET", "HEAD"):
            for headers in [{}, {"x-amz-checksum-mode": "ENABLED"}, {"If-None-Match": "*"},
                            *({"Range": r} for r in RANGES)]:
                same(method, "/fast-bytes/" + quote(key), headers=headers)
            same(method, "/fast-bytes/" + quote(key), "versionId=null")
            same(method, "/no-such-bucket/" + quote(key))
    tokens = []
    for v2, prefix, delimiter, encoding, max_keys, after in itertools.product(
            (True, False), (None, "", "a", "a b/", "日本", "zz"), (None, "/", "b", "+"),
            (None, "url"), (None, 1, 3), (None, "a", "a b/c", "a/b")):
        query = _query(**{"list-type": 2 if v2 else None}, prefix=prefix,
                       delimiter=delimiter, encoding_type=encoding, max_keys=max_keys,
                       **{"start-after" if v2 else "marker": after})
        same("GET", "/fast-bytes", query)
        page = fast("GET", "/fast-bytes", query).data
        if b"<NextContinuationToken>" in page:
            tokens.append((query, page.split(b"<NextContinuationToken>")[1].split(b"<")[0]))
    for query, token in tokens[:50]:  # the next pages
        same("GET", "/fast-bytes", f"{query}&continuation-token={token.decode()}")
    same("GET", "/fast-bytes", "list-type=2&continuation-token=")
    same("GET", "/fast-bytes", "list-type=2&fetch-owner=true")
    same("GET", "/fast-bytes", "versions")
    same("GET", "/no-such-bucket", "list-type=2")
    assert compared > 1500
    assert sum(answered) > 1000 and not all(answered)


def _parsed(call, **params) -> dict:
    """A boto3 answer as data, or its error's code and status; less what differs
    between two servers for the same object (request ids, dates)."""
    from botocore.exceptions import ClientError

    try:
        answer = call(**params)
    except ClientError as error:
        return {"error": error.response["Error"]["Code"],
                "status": error.response["ResponseMetadata"]["HTTPStatusCode"]}
    answer.pop("ResponseMetadata")
    if "Body" in answer:
        answer["Body"] = answer["Body"].read()
    assert "LastModified" not in answer or answer.pop("LastModified").year > 2000
    for item in answer.get("Contents", ()):
        assert item.pop("LastModified").year > 2000
    return answer


def test_fast_answers_parse_as_moto_servers_over_http(s3, tmp_path):
    """The same objects written to moto's own server and to the stand-in; boto3's
    parsed answers compared field by field: GetObject with and without a Range,
    HeadObject, ListObjectsV2 paged with and without a delimiter, StartAfter and an
    explicit EncodingType, ListObjects (v1)."""
    moto = S3Server(tmp_path / "moto").start()
    try:
        clients = [moto.client(), s3.server.client()]
        for client in clients:
            client.create_bucket(Bucket="fast-parsed")
            for n, key in enumerate(ESCAPED):
                client.put_object(Bucket="fast-parsed", Key=key, Body=_content(n))
        compared = 0

        def same(operation: str, **params) -> None:
            nonlocal compared
            ours, theirs = (_parsed(getattr(c, operation), Bucket="fast-parsed", **params)
                            for c in reversed(clients))
            assert ours == theirs, (operation, params)
            compared += 1

        for key in [*ESCAPED, "missing"]:
            same("get_object", Key=key)
            same("head_object", Key=key)
            for byte_range in RANGES[:6]:
                same("get_object", Key=key, Range=byte_range)
                same("head_object", Key=key, Range=byte_range)
        for v2, prefix, delimiter, encoding, max_keys, after in itertools.product(
                (True, False), ("", "a", "a b/", "日本"), (None, "/"), (None, "url"), (2, 1000),
                (None, "a b/c")):
            params = {"Prefix": prefix, "MaxKeys": max_keys,
                      **({"Delimiter": delimiter} if delimiter else {}),
                      **({"EncodingType": encoding} if encoding else {})}
            operation, start, token, next_token = (
                ("list_objects_v2", "StartAfter", "ContinuationToken", "NextContinuationToken")
                if v2 else ("list_objects", "Marker", "Marker", "NextMarker"))
            more = {start: after} if after else {}
            while True:  # every page, each asked of both
                same(operation, **params, **more)
                page = getattr(clients[1], operation)(Bucket="fast-parsed", **params, **more)
                if not page["IsTruncated"]:
                    break
                more = {token: page[next_token]}
        assert compared > 300
    finally:
        moto.stop()


def test_objects_written_straight_are_what_a_put_stores(s3):
    """write_objects puts into the stand-in's backend directly: the same content,
    ETag, size, type and listing as a PutObject (no checksum asked) gives; each
    counted as a put."""
    from botocore.config import Config

    client = s3.server.client()
    plain = boto3.client("s3", endpoint_url=s3.server.endpoint, aws_access_key_id=KEY,
                         aws_secret_access_key=SECRET, region_name=REGION,
                         config=Config(request_checksum_calculation="when_required"))
    objects = [(key, _content(n)) for n, key in enumerate(ESCAPED)]
    before = s3.server.counts()
    assert write_objects(s3, "/straight", objects) == len(objects)
    got = counted(before, s3.server.counts())
    assert got["kinds"]["put"] == len(objects) and got["requests"] == len(objects)
    for key, data in objects:
        plain.put_object(Bucket=BUCKET, Key=f"by-put/{key}", Body=data)

    def seen(root: str) -> dict:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                 Prefix=root + "/")
        listed = {item["Key"][len(root) + 1:]: (item["ETag"], item["Size"],
                                                  item.get("StorageClass"))
                  for page in pages for item in page.get("Contents", ())}
        read = {}
        for key in listed:
            answer = client.get_object(Bucket=BUCKET, Key=f"{root}/{key}")
            read[key] = (answer["Body"].read(), answer["ETag"], answer["ContentLength"],
                         answer["ContentType"], answer.get("Metadata"))
        return {"listed": listed, "read": read}

    straight = seen("straight")
    assert straight == seen("by-put")
    assert straight["read"]["a.b"][0] == dict(objects)["a.b"]
    assert straight["listed"]["a.b"][0] == f'"{hashlib.md5(dict(objects)["a.b"]).hexdigest()}"'  # noqa: S324 - S3's ETag
