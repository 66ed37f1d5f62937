"""A second look at the S3 scan (issue 29), trying to break it: the split walk on
names an in-memory ListObjectsV2 and moto both hold, hostile answers (token cycles,
malformed HTTP), what is left running or open after a scan stops, what an error says
about the credentials, and the scan's equivalence with the generic fsspec store."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator
from email.utils import formatdate
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

import fsspec.asyn
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reginsight as ri
from reginsight.inventory import _s3http, _s3store
from reginsight.inventory._s3store import S3Store
from tests.test_s3_walk import ROOT, MemoryS3

TOP = "bucket/r/docker/registry/v2"
SECRET, TOKEN = "review-secret-key-0123456789", "review-session-token-0123456789"


@pytest.fixture(autouse=True)
def _quick_s3_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_s3http, "BACKOFF", 0.01)


def _keys_taken(store: S3Store) -> list[str]:
    found: list[str] = []
    store._run(store._walk_all(lambda page: found.extend(k["Key"] for k in page)))
    return found


class _Capped(MemoryS3):
    """The in-memory ListObjectsV2 that gives up after ``cap`` requests (a walk that
    would go on forever ends, and says so)."""

    def __init__(self, keys: list[str], *, keep_start_folder: bool = False,
                 cap: int = 400) -> None:
        super().__init__(keys, keep_start_folder=keep_start_folder)
        self.cap = cap

    async def _call_s3(self, method: str, **params: object) -> dict:
        if self.calls >= self.cap:
            raise RuntimeError("the fake gave up: too many requests")
        return await super()._call_s3(method, **params)


def _found(keys: list[str], page_keys: int, keep: bool) -> list[str]:
    s3 = _Capped(keys, keep_start_folder=keep)
    store = S3Store(s3, TOP, "s3://bucket/r", page_keys=page_keys)
    return _keys_taken(store)


# ------------------------------------------------------------------ the walk


@pytest.mark.parametrize("keep", [False, True], ids=["moto-flavour", "aws-flavour"])
def test_an_empty_path_segment_is_a_folder_like_any_other(keep):
    """S3 rolls ``blobs//x`` up into the sub-folder ``blobs//`` (a name of nothing):
    a bucket where some tool wrote keys with a double slash below the registry's root
    (thousands of them: more than the first page) is a plain S3 answer, which the
    generic store lists; the split walk calls it an answer that "does not advance"
    and the whole scan fails."""
    junk = [f"{ROOT}blobs//sha256/{n:04d}/data" for n in range(1200)]
    real = [f"{ROOT}blobs/sha256/ab/ab{'0' * 62}/data",
            f"{ROOT}repositories/a/_layers/sha256/{'1' * 64}/link"]
    assert sorted(_found(junk + real, 1000, keep)) == sorted(junk + real)


_NAMES = ["a", "b", "a!", "a-", "a.", "a0", "0", "!", "-", ".", "a\"b", "a#", "a$", "a%",
          "a&", "a'", "a(", "a)", "a*", "a+", "a,", "\U0001f600", "\uffff", "\u00e9",
          "a\U0001f600", "_layers", "z", "a\x01", "\x01"]


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5).map("/".join),
                max_size=50),
       st.integers(1, 5), st.booleans(), st.booleans())
def test_names_below_and_around_the_slash_are_each_found_once(tails, page_keys, keep, marker):
    """Names with every character below ``/`` (the range bounds ``folder[:-1] + "0"``
    and StartAfter just below a folder), beyond the BMP, with code point 1, and
    folder markers (a key that is a folder's name and ``/``): each key exactly once.
    (Empty segments are left to the test above.)"""
    keys = [f"{ROOT}{area}/{tail}{'/' if marker and n % 3 == 0 else ''}"
            for n, tail in enumerate(tails) for area in ("blobs", "repositories")]
    assert sorted(_found(keys, page_keys, keep)) == sorted(set(keys))


class _Hostile:
    """A ListObjectsV2 whose answers ``answer(params)`` decides, counted and capped."""

    def __init__(self, answer: Callable[[dict], dict], *, cap: int = 300) -> None:
        self.answer, self.cap, self.calls = answer, cap, 0
        self.loop = fsspec.asyn.get_loop()

    async def _call_s3(self, method: str, **params: object) -> dict:
        self.calls += 1
        if self.calls > self.cap:
            raise RuntimeError("the fake gave up: too many requests")
        await asyncio.sleep(0)
        return self.answer({"method": method, **params})


def _cycling_tokens(params: dict) -> dict:
    """The first page of ``blobs/`` is cut inside ``blobs/a/``; the folder listing
    after it then hands tokens A, B, A, B ... each page with the same key after the
    StartAfter (never the same token twice in a row)."""
    if params["method"] != "list_objects_v2" or not params["Prefix"].endswith("/blobs/"):
        return {"Contents": [], "IsTruncated": False}
    prefix = params["Prefix"]
    if "Delimiter" not in params:
        return {"Contents": [{"Key": f"{prefix}a/1", "Size": 1}], "IsTruncated": True}
    token = {None: "A", "A": "B", "B": "A"}[params.get("ContinuationToken")]
    return {"Contents": [{"Key": f"{prefix}b", "Size": 1}], "CommonPrefixes": [],
            "IsTruncated": True, "NextContinuationToken": token}


def test_continuation_tokens_that_cycle_are_an_error_not_an_endless_walk():
    """``_list`` promises "never an endless loop": it only refuses a token given
    back as it was sent. A store alternating two tokens (each page's keys still after
    the StartAfter, which stays the same through a folder listing) keeps the walk
    going forever, the same key taken again on every page."""
    s3 = _Hostile(_cycling_tokens)
    store = S3Store(s3, TOP, "s3://bucket/r")
    try:
        with pytest.raises(ri.InventoryError) as raised:
            list(store.entries())
    finally:
        store.close()
    assert "too many requests" not in str(raised.value)
    assert s3.calls < 20


def _cycling_uploads(params: dict) -> dict:
    if params["method"] == "list_multipart_uploads":
        marker = {None: "k1", "k1": "k2", "k2": "k1"}[params.get("KeyMarker")]
        return {"Uploads": [{"Key": f"r/docker/registry/v2/repositories/o/_uploads/"
                                    f"{marker}/data", "UploadId": marker}],
                "IsTruncated": True, "NextKeyMarker": marker, "NextUploadIdMarker": marker}
    return {"Parts": [{"Size": 1}], "IsTruncated": False}


def _cycling_parts(params: dict) -> dict:
    if params["method"] == "list_multipart_uploads":
        return {"Uploads": [{"Key": "r/docker/registry/v2/repositories/o/_uploads/u/data",
                             "UploadId": "u"}], "IsTruncated": False}
    following = {0: 2, 2: 1, 1: 2}[params["PartNumberMarker"]]
    return {"Parts": [{"Size": 1}], "IsTruncated": True, "NextPartNumberMarker": following}


@pytest.mark.parametrize("answer", [_cycling_uploads, _cycling_parts],
                         ids=["upload-markers", "part-markers"])
def test_upload_and_part_markers_that_cycle_are_an_error_not_an_endless_count(answer):
    """The unfinished uploads' listings stop only on a marker given back unchanged:
    markers that alternate (or go back) list, and count, forever."""
    s3 = _Hostile(answer)
    store = S3Store(s3, TOP, "s3://bucket/r")
    try:
        with pytest.raises(ri.InventoryError) as raised:
            store.multipart_sizes()
    finally:
        store.close()
    assert "too many requests" not in str(raised.value)
    assert s3.calls < 20


# ------------------------------------------------- what a stopped scan leaves


_BLOB = f"{ROOT}blobs/sha256/ab/ab{'0' * 62}/data"


class _Stuck:
    """The first page of ``blobs/`` is cut inside ``blobs/sha256/``; the listings named
    in ``stuck`` (``inner``: that folder's own; ``folders``: the folder listing of
    ``blobs/``; ``uploads``: the unfinished uploads) never answer."""

    def __init__(self, stuck: set[str]) -> None:
        self.stuck = stuck
        self.loop = fsspec.asyn.get_loop()

    async def _call_s3(self, method: str, **params: object) -> dict:
        prefix = str(params.get("Prefix", ""))
        which = ("uploads" if method == "list_multipart_uploads" else
                 "folders" if "Delimiter" in params else
                 "inner" if prefix.endswith("/sha256/") else "first")
        if which in self.stuck:
            await asyncio.Event().wait()
        if which == "first" and prefix.endswith("/blobs/"):
            return {"Contents": [{"Key": _BLOB, "Size": 1}], "IsTruncated": True}
        return {"Contents": [], "IsTruncated": False}


def _mine(task: asyncio.Task, store: S3Store) -> bool:
    frame = getattr(task.get_coro(), "cr_frame", None)
    return frame is not None and frame.f_locals.get("self") in (store, store.walker)


def _still_running(store: S3Store) -> list[str]:
    """The store's tasks still running on fsspec's loop, a few loop turns after."""
    async def look() -> list[str]:
        for _ in range(5):
            await asyncio.sleep(0.01)
        return [task.get_coro().__qualname__ for task in asyncio.all_tasks()
                if not task.done() and _mine(task, store)]

    return asyncio.run_coroutine_threadsafe(look(), fsspec.asyn.get_loop()).result(10)


def _cancel_leftovers(store: S3Store) -> None:
    async def cancel() -> None:
        for task in asyncio.all_tasks():
            if _mine(task, store):
                task.cancel()

    asyncio.run_coroutine_threadsafe(cancel(), fsspec.asyn.get_loop()).result(10)


@pytest.mark.parametrize("stuck", [{"inner", "folders"}, {"folders", "uploads"}],
                         ids=["a-folder-being-walked", "the-uploads-listing"])
def test_a_scan_stopped_by_its_consumer_leaves_nothing_running(stuck):
    """The consumer stops after the first entry (a KeyboardInterrupt, an exception in
    the scan) and the store is closed, as scan_storage does. close() cancels the walk's
    outer task only: a folder's walk started before its parent's folder listing
    (``walks`` holds it, awaited only after that listing) is never cancelled, nor is
    the uploads' listing started beside the walk. Both go on sending requests on
    fsspec's shared loop after the scan has ended."""
    store = S3Store(_Stuck(stuck), TOP, "s3://bucket/r")
    try:
        entries = store.entries()
        entry, _, _ = next(entries)
        assert entry.kind == "blob"
        entries.close()  # the consumer is gone
        store.close()
        assert _still_running(store) == []
    finally:
        _cancel_leftovers(store)


def test_a_listing_that_fails_leaves_no_folder_walk_running():
    """A folder listing that fails (here: an answer for another prefix) ends the scan
    with an error, while the walk of the folder the first page ended in is still
    waiting for its answer: nothing cancels it."""

    class Failing(_Stuck):
        async def _call_s3(self, method: str, **params: object) -> dict:
            if "Delimiter" in params:
                return {"Contents": [{"Key": "elsewhere/x", "Size": 1}], "IsTruncated": False}
            return await super()._call_s3(method, **params)

    store = S3Store(Failing({"inner"}), TOP, "s3://bucket/r")
    try:
        with pytest.raises(ri.InventoryError, match="does not advance"):
            list(store.entries())
        store.close()
        assert _still_running(store) == []
    finally:
        _cancel_leftovers(store)


# ------------------------------------------------ an S3 endpoint on loopback


Answer = Callable[[str, dict[str, str], dict[str, str]], "bytes | None"]


class FakeS3:
    """An S3 endpoint on loopback speaking raw HTTP/1.1 (so that it can say anything,
    malformed included): ListObjectsV2 of ``objects`` (the in-memory listing above),
    ranged GETs, no unfinished uploads. ``answer(path, query, headers)`` may replace
    any response with raw bytes. Counts requests, and the most in flight at once.
    Reached directly or as an HTTP proxy (absolute-form request targets)."""

    def __init__(self, objects: dict[str, bytes], *, answer: Answer | None = None,
                 delay: float = 0.0) -> None:
        self.objects, self.answer, self.delay = objects, answer, delay
        self.listing = MemoryS3(list(objects), keep_start_folder=True)
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.in_flight = self.most = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeS3:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def options(self, **extra: object) -> dict:
        return {"key": "AKIAREVIEW", "secret": SECRET, "token": TOKEN,
                "client_kwargs": {"endpoint_url": self.url, "region_name": "us-east-1"},
                **extra}

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                line, *fields = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (f.partition(":") for f in fields if f)}
                target = urlsplit(line.split(" ")[1])
                query = {k: v[0] for k, v in parse_qs(target.query,
                                                      keep_blank_values=True).items()}
                path = target.path
                self.requests.append((path, query, headers))
                self.in_flight += 1
                self.most = max(self.most, self.in_flight)
                try:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    raw = self.answer(path, query, headers) if self.answer else None
                    writer.write(raw if raw is not None else
                                 await self._respond(path, query, headers))
                    await writer.drain()
                finally:
                    self.in_flight -= 1
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass  # the client went, or the endpoint stops
        finally:
            writer.close()

    async def _respond(self, path: str, query: dict[str, str], headers: dict[str, str]
                       ) -> bytes:
        from urllib.parse import unquote

        key = unquote(path).lstrip("/").partition("/")[2]
        if not key and "uploads" in query:
            return _http(200, b'<?xml version="1.0" encoding="UTF-8"?><ListMultipart'
                              b'UploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                              b"<Bucket>bucket</Bucket><IsTruncated>false</IsTruncated>"
                              b"</ListMultipartUploadsResult>")
        if not key:
            return _http(200, await self._list(query))
        if key not in self.objects:
            return _http(404, b"<Error><Code>NoSuchKey</Code></Error>")
        data = self.objects[key]
        if "range" in headers:
            if not data:
                return _http(416, b"<Error><Code>InvalidRange</Code></Error>")
            end = int(headers["range"].rpartition("-")[2])
            return _http(206, data[:end + 1])
        return _http(200, data)

    async def _list(self, query: dict[str, str]) -> bytes:
        page = await self.listing._call_s3(
            "list_objects_v2", Bucket="bucket", Prefix=query.get("prefix", ""),
            Delimiter=query.get("delimiter"), StartAfter=query.get("start-after", ""),
            ContinuationToken=query.get("continuation-token"),
            MaxKeys=int(query.get("max-keys", 1000)))
        encoded = query.get("encoding-type") == "url"

        def name(text: str) -> str:
            return quote(text, safe="/") if encoded else escape(text)

        parts = [f"<Contents><Key>{name(item['Key'])}</Key><LastModified>"
                 f"2026-12-06T12:00:00.000Z</LastModified><ETag>&quot;"
                 f"{_md5(self.objects[item['Key']])}&quot;</ETag>"
                 f"<Size>{len(self.objects[item['Key']])}</Size></Contents>"
                 for item in page["Contents"]]
        parts += [f"<CommonPrefixes><Prefix>{name(f['Prefix'])}</Prefix></CommonPrefixes>"
                  for f in page["CommonPrefixes"]]
        token = page.get("NextContinuationToken")
        return ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns='
                '"http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name>'
                + ("<EncodingType>url</EncodingType>" if encoded else "")
                + f"<IsTruncated>{str(page['IsTruncated']).lower()}</IsTruncated>"
                + "".join(parts)
                + (f"<NextContinuationToken>{escape(token)}</NextContinuationToken>"
                   if token else "")
                + "</ListBucketResult>").encode()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _http(status: int, body: bytes, reason: str = "X") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n\r\n").encode() + body


def _registry(root: str = "r") -> tuple[dict[str, bytes], dict[str, str]]:
    """A one-image registry storage as S3 objects, and its digests by role."""
    import json

    def digest(data: bytes) -> str:
        return f"sha256:{hashlib.sha256(data).hexdigest()}"

    def blob(data: bytes) -> tuple[str, bytes]:
        hexa = digest(data).split(":")[1]
        return f"{root}/docker/registry/v2/blobs/sha256/{hexa[:2]}/{hexa}/data", data

    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": []}}).encode()
    layer = b"layer bytes"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer), "size": len(layer)}]}).encode()
    repo = f"{root}/docker/registry/v2/repositories/o/app"
    roles = {"config": digest(config), "layer": digest(layer), "manifest": digest(manifest)}
    objects = dict(blob(data) for data in (config, layer, manifest))
    hexa = roles["manifest"].split(":")[1]
    objects.update({
        f"{repo}/_manifests/revisions/sha256/{hexa}/link": roles["manifest"].encode(),
        f"{repo}/_manifests/tags/v1/current/link": roles["manifest"].encode(),
        f"{repo}/_manifests/tags/v1/index/sha256/{hexa}/link": roles["manifest"].encode(),
        f"{repo}/_layers/sha256/{roles['layer'].split(':')[1]}/link": roles["layer"].encode(),
        f"{repo}/_layers/sha256/{roles['config'].split(':')[1]}/link":
            roles["config"].encode()})
    roles["manifest_key"] = blob(manifest)[0]
    return objects, roles


def test_the_fake_endpoint_serves_a_scan():
    """The loopback endpoint itself: a scan through it finds the one image, no errors
    (what the tests below break)."""
    objects, roles = _registry()
    with FakeS3(objects) as s3:
        inv = ri.scan_storage("s3://bucket/r", storage_options=s3.options(), progress=False)
    assert inv.errors.empty, inv.errors
    assert list(inv.tags["digest"]) == [roles["manifest"]]
    assert set(inv.blobs["digest"]) == {roles["config"], roles["layer"], roles["manifest"]}


_MALFORMED = b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello"


def _secrets_in(text: str) -> list[str]:
    return [secret for secret in (SECRET, TOKEN, "Signature=", "X-Amz-Signature",
                                  "x-amz-security-token") if secret.lower() in text.lower()]


def test_a_malformed_answer_to_a_read_puts_no_signed_url_in_the_inventory():
    """An endpoint (or a proxy on the way) answering a read with a malformed HTTP
    response: aiohttp's ClientResponseError names the request's URL, and the scan
    copies its text into the errors frame whole. That URL is the presigned one: its
    signature (good for EXPIRES = an hour) and the session token in clear, now in
    every saved or shared inventory."""
    objects, roles = _registry()

    def answer(path: str, query: dict, headers: dict) -> bytes | None:
        return _MALFORMED if path.endswith(roles["manifest_key"]) else None

    with FakeS3(objects, answer=answer) as s3:
        inv = ri.scan_storage("s3://bucket/r", storage_options=s3.options(), progress=False)
    errors = inv.errors.to_csv()
    assert roles["manifest"] in errors  # the read failed, and said so
    assert _secrets_in(errors) == [], errors


def test_a_malformed_answer_to_a_listing_puts_no_signed_url_in_the_error():
    """The same on a listing: the InventoryError cuts the text at 300 characters,
    which hides the signature only when the URL before it is long enough. A registry
    at the bucket's root (a short prefix) and a short parser complaint: the signature
    and the session token are in the message."""
    objects, _ = _registry("")
    objects = {key.lstrip("/"): data for key, data in objects.items()}
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"

    def answer(path: str, query: dict, headers: dict) -> bytes | None:
        return chunked if "list-type" in query else None

    with FakeS3(objects, answer=answer) as s3, pytest.raises(ri.InventoryError) as raised:
        ri.scan_storage("s3://b", storage_options=s3.options(), progress=False)
    assert "cannot reach" in str(raised.value)
    assert _secrets_in(str(raised.value)) == [], str(raised.value)


@pytest.mark.parametrize("failure", [_http(403, b"<Error><Code>AccessDenied</Code></Error>"),
                                     _MALFORMED], ids=["denied", "malformed"])
def test_a_scan_that_cannot_reach_the_store_closes_its_connection_pool(monkeypatch, failure):
    """scan_storage closes the store only after exists() answered: when exists()
    raises (no such bucket, access denied, an endpoint that is no S3), the aiohttp
    session its listing opened stays open (its connections too; "Unclosed client
    session" when collected), one more for every scan tried."""
    opened, closed = [], []
    requests = _s3http.PresignedRequests
    real_enter, real_exit = requests.__aenter__, requests.__aexit__

    async def enter(self):
        opened.append(self)
        return await real_enter(self)

    async def leave(self, *exc):
        closed.append(self)
        return await real_exit(self, *exc)

    monkeypatch.setattr(_s3http.PresignedRequests, "__aenter__", enter)
    monkeypatch.setattr(_s3http.PresignedRequests, "__aexit__", leave)
    objects, _ = _registry()
    with FakeS3(objects, answer=lambda *_: failure) as s3:
        with pytest.raises(ri.InventoryError, match="cannot reach s3://bucket/r"):
            ri.scan_storage("s3://bucket/r", storage_options=s3.options(), progress=False)
        leaked = [http for http in opened if http not in closed]
        for http in leaked:  # not to leave them to the next test
            fsspec.asyn.sync(http.fs.loop, http.session.close)
    assert len(opened) == 1 and leaked == []


def _pays(query: dict, headers: dict) -> bool:
    return "requester" in (query.get("x-amz-request-payer"), headers.get("x-amz-request-payer"))


def test_a_requester_pays_bucket_is_listed_as_the_requester():
    """``requester_pays=True`` (s3fs's req_kw) goes on every request s3fs itself makes;
    the split walk's presigned listings and the uploads' listing leave it out (only
    the reads carry it): on a requester-pays bucket S3 refuses them (403), and the
    scan fails where the generic store lists the bucket."""
    import s3fs

    objects, _ = _registry()
    with FakeS3(objects) as s3:
        options = s3.options(requester_pays=True)
        s3fs.S3FileSystem(skip_instance_cache=True, **options).find("bucket/r")
        assert all(_pays(query, headers) for _, query, headers in s3.requests)  # s3fs's own
        s3.requests.clear()
        ri.scan_storage("s3://bucket/r", storage_options=options, progress=False)
        unpaid = sorted({f"{path}?{'&'.join(sorted(query)[:4])}" for path, query, headers
                         in s3.requests if not _pays(query, headers)})
    assert unpaid == []


def test_a_proxy_configured_for_botocore_carries_the_scan_too():
    """``config_kwargs={"proxies": ...}`` is how botocore (and s3fs) reach an S3
    behind a proxy; the presigned requests ignore it and connect to the endpoint
    directly: through a proxy s3fs reaches the bucket, scan_storage cannot (or, where
    the endpoint also answers directly, goes round the proxy)."""
    import s3fs

    objects, roles = _registry()
    with FakeS3(objects) as proxy:
        options = {"key": "AKIAREVIEW", "secret": SECRET, "config_kwargs": {
            "proxies": {"http": proxy.url}}, "client_kwargs": {
            "endpoint_url": "http://s3.review.invalid", "region_name": "us-east-1"}}
        assert s3fs.S3FileSystem(skip_instance_cache=True, **options).find("bucket/r")
        inv = ri.scan_storage("s3://bucket/r", storage_options=options, progress=False)
    assert inv.errors.empty and list(inv.tags["digest"]) == [roles["manifest"]]


# ------------------------------------------------ the same inventory as the generic store


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.s3_server import S3Server
    from tests.test_storage_s3 import BUCKET

    server = S3Server(tmp_path_factory.mktemp("moto")).start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        yield server
    finally:
        server.stop()


def _put(moto: object, objects: dict[str, bytes]) -> None:
    from tests.test_storage_s3 import BUCKET

    client = moto.client()
    for key, data in objects.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=data)


def _odd_links(root: str) -> dict[str, bytes]:
    """A registry tree with links the ETag shortcut must not misread: whitespace,
    sha512, a tag outside its index, an empty manifest blob."""
    import json

    objects, roles = _registry(root)
    v2 = f"{root}/docker/registry/v2"
    manifest = roles["manifest"]
    sha512 = json.dumps({"schemaVersion": 2, "mediaType":
                         "application/vnd.oci.image.index.v1+json", "manifests": []}).encode()
    hex512 = hashlib.sha512(sha512).hexdigest()
    empty_hex = hashlib.sha256(b"").hexdigest()
    objects.update({
        f"{v2}/blobs/sha512/{hex512[:2]}/{hex512}/data": sha512,
        f"{v2}/repositories/o/b512/_manifests/revisions/sha512/{hex512}/link":
            f"sha512:{hex512}".encode(),
        f"{v2}/repositories/o/newline/_manifests/revisions/sha256/{manifest[7:]}/link":
            f"{manifest}\n".encode(),
        f"{v2}/repositories/o/space/_manifests/tags/t/current/link": f" {manifest}".encode(),
        f"{v2}/repositories/o/space/_manifests/tags/t/index/sha256/{manifest[7:]}/link":
            manifest.encode(),
        f"{v2}/repositories/o/outside/_manifests/tags/t/current/link": manifest.encode(),
        f"{v2}/repositories/o/outside/_manifests/tags/t/index/sha256/{'e' * 64}/link":
            f"sha256:{'e' * 64}".encode(),
        f"{v2}/repositories/o/outside/_manifests/revisions/sha256/{manifest[7:]}/link":
            manifest.encode(),
        f"{v2}/blobs/sha256/{empty_hex[:2]}/{empty_hex}/data": b"",
        f"{v2}/repositories/o/nothing/_manifests/revisions/sha256/{empty_hex}/link":
            f"sha256:{empty_hex}".encode(),
    })
    return objects


def _local(objects: dict[str, bytes], root: str, folder) -> ri.Inventory:
    for key, data in objects.items():
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return ri.scan_storage(str(folder / root), progress=False)


def _through(monkeypatch: pytest.MonkeyPatch, through: str) -> None:
    if through == "botocore":  # as for customer-key encryption or extra request arguments
        monkeypatch.setattr(_s3http.PresignedRequests, "usable", staticmethod(lambda fs: False))


@pytest.mark.parametrize("through", ["presigned", "botocore"])
def test_odd_links_give_the_local_scans_inventory(moto, monkeypatch, tmp_path, through):
    """The same tree on disk and on S3 (split into pages of 3 keys, links whose ETag
    matches not read): the same inventory, errors rows word for word."""
    from tests.test_storage_s3 import _same_inventory, _scan, _store

    root = f"odd-{through}"
    objects = _odd_links(root)
    _put(moto, objects)
    _through(monkeypatch, through)
    split = _scan(_store(moto, f"/{root}", page_keys=3))
    reference = _local(objects, root, tmp_path)
    assert len(reference.errors) == 3  # two garbled links, an empty manifest
    _same_inventory(split, reference)


def _link_error(moto: object, tmp_path, root: str, content: bytes) -> tuple[str, str]:
    """The errors row of a revision link holding ``content``: on S3, and on disk."""
    from tests.test_storage_s3 import _scan, _store

    objects, roles = _registry(root)
    key = (f"{root}/docker/registry/v2/repositories/o/app/_manifests/revisions/sha256/"
           f"{roles['manifest'][7:]}/link")
    objects[key] = content
    _put(moto, objects)
    on_s3, on_disk = _scan(_store(moto, f"/{root}")), _local(objects, root, tmp_path)
    return tuple(" | ".join(inv.errors["error"]) for inv in (on_s3, on_disk))


@pytest.mark.parametrize("through", ["presigned", "botocore"])
def test_a_10_mb_link_is_said_at_its_size(moto, monkeypatch, tmp_path, through):
    """The listing gave the link's size, yet the link reads pass no sizes: a ranged GET
    of 513 bytes is made anyway, and the error says "513 bytes" where a scan on disk
    says the file's size (10,485,831). Passing the listed sizes to the link reads
    (as the manifest reads do) says the truth and saves the GET (and one for an
    empty link)."""
    _through(monkeypatch, through)
    manifest = _registry("x")[1]["manifest"].encode()
    on_s3, on_disk = _link_error(moto, tmp_path, f"big-{through}",
                                 manifest + b" " * (10 * 2**20))
    assert "10,485,831 bytes" in on_disk
    assert on_s3 == on_disk


@pytest.mark.parametrize("through", ["presigned", "botocore"])
def test_an_empty_link_is_a_link_holding_nothing(moto, monkeypatch, tmp_path, through):
    """An empty link is "holds no digest" on disk and through presigned URLs (416 is
    no bytes). Through botocore's calls (the way kept for customer-key encryption and
    other extra request arguments) S3's 416 to a range of an empty object is the
    error instead: "OSError: [Errno 22] The requested range is not satisfiable"."""
    _through(monkeypatch, through)
    on_s3, on_disk = _link_error(moto, tmp_path, f"empty-{through}", b"")
    assert on_disk == "ValueError: holds no digest"
    assert on_s3 == on_disk


# ------------------------------------------------ bounds: requests, bytes, reads


def _s3_store(s3: FakeS3, **options: object) -> S3Store:
    from reginsight.inventory._layout import V2
    from reginsight.inventory._scan import open_store

    return open_store("s3://bucket/r", s3.options(**options), V2)


def test_requests_in_flight_never_pass_the_bound():
    """600 reads and a listing split at 2 keys a page against an endpoint that takes
    its time: at the endpoint, never more than CONCURRENCY requests at once (and
    more than one)."""
    objects = {f"r/docker/registry/v2/blobs/sha256/ab/ab{n:062x}/data": b"x" * 10
               for n in range(600)}
    with FakeS3(objects, delay=0.02) as s3:
        store = _s3_store(s3)
        store.page_keys = 2
        try:
            listed = [path for _, path, _ in store.entries()]
            got = dict(store.read([f"bucket/{key}" for key in objects], limit=512))
        finally:
            store.close()
    assert sorted(listed) == sorted(f"bucket/{key}" for key in objects)
    assert all(value == b"x" * 10 for value in got.values()) and len(got) == 600
    assert 1 < s3.most <= _s3store.CONCURRENCY


@pytest.mark.parametrize("body", ["far-more", "endless"])
def test_a_read_answered_with_too_many_bytes_is_cut(body):
    """A GET answered with 50 MB (or a body without end) where 513 bytes were asked:
    the read stops at the limit plus one, and says the file is too large."""
    objects = {"r/docker/registry/v2/blobs/x/a": b"sha256:" + b"a" * 64}

    def answer(path: str, query: dict, headers: dict) -> bytes | None:
        if "list-type" in query or "uploads" in query:
            return None
        if body == "endless":
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (
                b"100000\r\n" + b"z" * 0x100000 + b"\r\n") * 64
        return _http(200, b"z" * (50 * 2**20))

    with FakeS3(objects, answer=answer) as s3:
        store = _s3_store(s3)
        try:
            (_, value), = store.read(["bucket/r/docker/registry/v2/blobs/x/a"], limit=512)
        finally:
            store.close()
    assert isinstance(value, ri.InventoryError) and "513 bytes" in str(value)


@pytest.mark.parametrize("listing", [
    _http(200, b"<html><body>Welcome to nginx</body></html>"),
    _http(200, b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "' + b"a" * 100 + b'">'
               b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><ListBucketResult>&b;'
               b"</ListBucketResult>"),
    b"HTTP/1.1 200 OK\r\nContent-Length: 9000000\r\n\r\n<ListBucketResult>" + b" " * 8999982,
], ids=["not-xml", "entities", "9-mb"])
def test_a_listing_that_is_no_listing_is_a_clear_error(listing):
    objects, _ = _registry()

    def answer(path: str, query: dict, headers: dict) -> bytes | None:
        return listing if "list-type" in query else None

    with FakeS3(objects, answer=answer) as s3, pytest.raises(ri.InventoryError,
                                                              match=r"not a listing|bytes"):
        ri.scan_storage("s3://bucket/r", storage_options=s3.options(), progress=False)


class _SlowReads:
    """get_object: the first two keys at once, the others never (botocore's way)."""

    def __init__(self) -> None:
        self.loop = fsspec.asyn.get_loop()

    async def _call_s3(self, method: str, **params: object) -> dict:
        if not str(params["Key"]).endswith(("/0", "/1")):
            await asyncio.Event().wait()

        class Body:
            async def read(self, most: int) -> bytes:
                return b"x"

            def close(self) -> None:
                pass

        return {"Body": Body()}


def test_a_read_stopped_by_its_consumer_leaves_no_chunk_running(monkeypatch):
    """read() fetches the next chunk while the caller handles this one; a caller that
    stops (an exception while parsing, an interrupt) leaves that chunk's requests
    running: nothing cancels them, close() neither."""
    monkeypatch.setattr(_s3store, "CHUNK_FILES", 2)
    store = S3Store(_SlowReads(), TOP, "s3://bucket/r")
    try:
        reads = store.read([f"{TOP}/{n}" for n in range(4)], limit=10)
        assert next(reads) == (f"{TOP}/0", b"x")
        reads.close()
        store.close()
        assert _still_running(store) == []
    finally:
        _cancel_leftovers(store)


def test_a_chunk_holds_no_more_bytes_than_its_budget(monkeypatch):
    """A chunk's byte budget counts the listed sizes; the GET asks for the caller's
    limit whatever the listing said. An object listed at 1 byte that is larger when
    read (rewritten in between, or an endpoint that lies) fills a chunk of 1,024
    files with up to 1,024 x limit bytes (4 GiB of manifests, 16 GiB of configs).
    Here: 128 objects listed at 1 byte, 256 KiB each when read, one chunk of 32 MiB
    where the budget is 16 MiB."""
    limit = 256 * 2**10
    objects = {f"r/docker/registry/v2/blobs/x/{n:03d}": b"m" * limit for n in range(128)}
    held: list[int] = []
    real = S3Store._read_chunk

    async def counted(self, chunk, most):
        got = await real(self, chunk, most)
        held.append(sum(len(v) for _, v in got if isinstance(v, bytes)))
        return got

    monkeypatch.setattr(S3Store, "_read_chunk", counted)
    with FakeS3(objects) as s3:
        store = _s3_store(s3)
        try:
            for _ in store.read([f"bucket/{key}" for key in objects], limit=limit,
                                sizes=[1] * len(objects)):
                pass
        finally:
            store.close()
    assert max(held) <= _s3store.CHUNK_BYTES + limit, held


def test_an_empty_path_segment_on_moto(moto):
    """The same on moto, split at 1 key a page. moto leaves out a folder sorting
    before StartAfter (AWS rolls up the keys after it): here the folder listing
    starts after a stray file ``blobs/!a`` (``!`` sorts before ``/``). The generic
    store lists the tree, the split walk raises."""
    from tests.test_storage_s3 import _listed, _one_listing, _store

    objects, _ = _registry("slashes")
    objects.update({f"slashes/docker/registry/v2/blobs/{name}": b"x"
                    for name in ("!a", "!b", "/junk0", "/junk1")})
    _put(moto, objects)
    reference = _listed(_one_listing(moto, "/slashes"))
    assert len(reference) > 5
    assert _listed(_store(moto, "/slashes", page_keys=1)) == reference
