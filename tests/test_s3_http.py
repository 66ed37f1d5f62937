"""The presigned S3 requests as protocol units: a listing's XML as botocore reads it,
and each answer of a plain HTTP server on loopback mapped to what the scan expects."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import s3fs
from aiohttp import web

from reginsight.inventory import _s3http
from reginsight.inventory._s3http import PresignedRequests, parse_listing

LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Name>bucket</Name><Prefix>r/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<Contents><Key>r/sp+ace/%C3%BC%2Blink</Key><LastModified>2026-12-06T12:00:00.000Z</LastModified>
<ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag><Size>71</Size>
<StorageClass>STANDARD</StorageClass></Contents>
<CommonPrefixes><Prefix>r/a%2Fb/</Prefix></CommonPrefixes>
<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>"""


def test_a_listing_reads_as_botocore_gives_it():
    assert parse_listing(LISTING) == {
        "Contents": [{"Key": "r/sp ace/\u00fc+link", "Size": 71,
                      "LastModified": "2026-12-06T12:00:00.000Z",
                      "ETag": '"0cc175b9c0f1b6a831c399e269772661"'}],
        "CommonPrefixes": [{"Prefix": "r/a/b/"}], "IsTruncated": True,
        "NextContinuationToken": "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="}


@pytest.mark.parametrize("raw", [
    b"<Error><Code>AccessDenied</Code></Error>", b"not xml at all", b"",
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><ListBucketResult>&a;'
    b"</ListBucketResult>",
], ids=["error", "garbage", "empty", "entities"])
def test_what_is_no_listing_is_refused(raw):
    with pytest.raises(ValueError, match="not a listing"):
        parse_listing(raw)


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, list[int]]]]:
    """A loopback HTTP server: ``/bucket/<status>...`` answers each status in turn
    (then 200), and counts the requests per path."""
    seen: dict[str, list[int]] = {}

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        plan = [int(part) for part in path.split("/")[2].split("-")]
        count = len(seen.setdefault(path, []))
        status = plan[count] if count < len(plan) else 200
        seen[path].append(status)
        if status in (200, 206):
            return web.Response(status=206, body=b"0123456789"[:int(
                request.headers["Range"].split("-")[1]) + 1])
        return web.Response(status=status)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _get(endpoint: str, key: str, limit: int) -> bytes:
    import fsspec.asyn

    fs = s3fs.S3FileSystem(key="k", secret="s", skip_instance_cache=True,
                           client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"})

    async def run() -> bytes:
        async with PresignedRequests(fs, "bucket", connections=4) as http:
            return await http.get(key, limit)

    return fsspec.asyn.sync(fs.loop, run)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(_s3http, "BACKOFF", 0.01)


def test_a_read_is_cut_at_its_limit_plus_one(server):
    endpoint, seen = server
    assert _get(endpoint, "200/x", 3) == b"0123"
    assert list(seen.values()) == [[200]]


@pytest.mark.parametrize(("plan", "error"), [
    ("404", FileNotFoundError), ("403", PermissionError), ("400", OSError),
    ("503-503-503-503", OSError),
])
def test_s3_saying_no_is_a_typed_error(server, plan, error):
    endpoint, seen = server
    with pytest.raises(error):
        _get(endpoint, f"{plan}/x", 3)
    # only what may pass is tried again, and never more than ATTEMPTS times
    assert len(seen[f"/bucket/{plan}/x"]) == (_s3http.ATTEMPTS if plan.startswith("503")
                                              else 1)


def test_a_passing_failure_is_tried_again(server):
    endpoint, seen = server
    assert _get(endpoint, "503-500/x", 9) == b"0123456789"
    assert seen["/bucket/503-500/x"] == [503, 500, 200]


def test_an_empty_object_is_empty(server):
    endpoint, _ = server
    assert _get(endpoint, "416/x", 9) == b""
