"""A registry storage in S3 (or anything speaking its API: MinIO, Ceph, R2 ...), read
near the latency floor.

Every S3 request is a round trip (tens of milliseconds to a bucket in another
network); the registry's own collector makes one at a time, so its time is the number
of requests times the round trip. This store makes as few requests as the layout
allows and keeps many in flight:

- **Listing split by prefix** (:mod:`._s3walk`): S3 pages one prefix sequentially;
  the rest of a prefix its first page does not hold is split at its sub-folders and
  listed concurrently. Small trees cost a request or two; a large one a few dependent
  round trips, not one per page. Unfinished uploads are listed meanwhile.
- **No request where a listing answered.** Sizes and times come from the listing. An
  object's ETag is the MD5 of its bytes when it was written whole, unencrypted or
  with S3's own keys (:meth:`S3Store.md5`): the scan checks a link's expected content
  against it and reads only links that do not match.
- **Small objects read concurrently**, in chunks bounded in files and bytes; the next
  chunk is fetched while the caller parses this one. Each read is a ranged GET of at
  most the caller's limit plus one byte.

At most :data:`CONCURRENCY` requests are in flight. They are s3fs's own (its
credentials, endpoint, addressing), presigned and sent with aiohttp
(:mod:`._s3http`), or botocore's calls where a URL cannot carry the configuration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import queue
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .._errors import InventoryError
from ._layout import FOLDERS, Found, classify, classify_folder, too_large
from ._localstore import iso_time
from ._s3http import PresignedRequests
from ._s3walk import Page, PrefixWalk, cancel_all, gather_all
from ._stores import FsspecStore

_MD5 = re.compile(r"[0-9a-f]{32}")
#: S3 requests in flight at once (S3 serves thousands a second on one prefix)
CONCURRENCY = 128
#: keys a listing page holds (S3's most)
PAGE_KEYS = 1000
#: one chunk of reads: at most this many files, and this many bytes (by listed size)
CHUNK_FILES = 1024
CHUNK_BYTES = 16 * 2**20


class S3Store(FsspecStore):
    """An s3fs filesystem, listed and read with concurrent requests on s3fs's own
    event loop and client. A listed object's handle is ``(size, LastModified, ETag)``."""

    def __init__(self, fs: Any, top: str, shown: str, *, page_keys: int = PAGE_KEYS
                 ) -> None:
        super().__init__(fs, top, shown)
        self.walker = PrefixWalk(self._list_page, page_keys=page_keys, shown=shown)
        self.bucket, _, key = top.partition("/")
        self.prefix = f"{key}/"  # of every key of the storage, in the bucket
        self._slots: asyncio.Semaphore | None = None  # made on the loop, when first used
        self._http: PresignedRequests | None = None  # opened on first use, till close()
        self._opening: asyncio.Future | None = None  # the connection pool, being made
        self._walking: tuple[queue.SimpleQueue, concurrent.futures.Future] | None = None
        self._uploads: asyncio.Future | None = None  # listed alongside the objects

    @property
    def page_keys(self) -> int:
        """Keys a listing page asks for (S3's most; fewer in tests)."""
        return self.walker.page_keys

    @page_keys.setter
    def page_keys(self, value: int) -> None:
        self.walker.page_keys = value

    # ------------------------------------------------------------------ list

    def entries(self) -> Iterator[Found]:
        """Every object below ``blobs/`` and ``repositories/`` classified by its path,
        and each repository folder some object lies below (on S3 a folder is nothing
        but a prefix, as the registry sees it); handed out page by page as the
        concurrent listings bring them."""
        pages, listing = self._listing()
        folders: set[str] = set()
        skip = len(self.top) + 1
        while (page := pages.get()) is not None:
            for item in page:
                path = f"{self.bucket}/{item['Key']}"
                relative = path[skip:]
                if relative.startswith("repositories/"):
                    for folder in _folders_above(relative):
                        if folder not in folders and (entry := classify_folder(folder)):
                            folders.add(folder)
                            yield (entry, f"{self.top}/{folder}", None)
                if entry := classify(relative):
                    yield (entry, path, (int(item.get("Size") or 0), item.get("LastModified"),
                                         item.get("ETag")))
        with self._errors("list"):
            listing.result()

    def _listing(self) -> tuple[queue.SimpleQueue, concurrent.futures.Future]:
        """The pages the walk brings, and the walk, started once (by exists())."""
        if self._walking is None:
            pages: queue.SimpleQueue[list[dict[str, Any]] | None] = queue.SimpleQueue()
            walk = asyncio.run_coroutine_threadsafe(self._walk_all(pages.put), self._loop())
            walk.add_done_callback(lambda _: pages.put(None))
            self._walking = pages, walk
        return self._walking

    async def _walk_all(self, take: Callable[[list[dict[str, Any]]], None]) -> None:
        await self._open()
        self._uploads = asyncio.ensure_future(self._multipart())  # meanwhile: one round less
        await gather_all([asyncio.ensure_future(self.walker.walk(f"{self.prefix}{area}/",
                                                                 take))
                          for area in ("blobs", "repositories")])

    async def _list_page(self, **params: Any) -> dict[str, Any]:
        async with self._semaphore():
            return await (self._http.list_objects(**params) if self._http else
                          self.fs._call_s3("list_objects_v2", Bucket=self.bucket, **params))

    def multipart_sizes(self) -> dict[str, int]:
        """On S3 an upload's data is a multipart upload, not an object, until it is
        finished: the bytes of its parts so far, by the object path it will have
        (listed alongside the objects)."""
        with self._errors("list the uploads of"):
            return self._run(self._uploaded())

    async def _uploaded(self) -> dict[str, int]:
        if self._uploads is None:
            self._uploads = asyncio.ensure_future(self._multipart())
        return await self._uploads

    async def _multipart(self) -> dict[str, int]:
        prefix = self.prefix
        uploads, markers = [], {}
        while True:  # every page of them (a registry's crashes leave thousands)
            async with self._semaphore():
                page = await self.fs._call_s3("list_multipart_uploads", Bucket=self.bucket,
                                              Prefix=prefix, MaxUploads=self.page_keys,
                                              **markers)
            uploads += [u for u in page.get("Uploads") or () if
                        u.get("Key", "").startswith(prefix)]
            following = {"KeyMarker": page.get("NextKeyMarker") or "",
                         "UploadIdMarker": page.get("NextUploadIdMarker") or ""}
            if not page.get("IsTruncated"):
                break
            if tuple(following.values()) <= tuple(markers.values() or ("", "")):
                raise InventoryError(f"cannot list the uploads of {self.shown}: the "
                                     "store's markers do not advance")
            markers = following
        sizes = await asyncio.gather(*(self._parts(u["Key"], u["UploadId"]) for u in uploads))
        return {f"{self.bucket}/{u['Key']}": size for u, size in zip(uploads, sizes,
                                                                      strict=True)}

    async def _parts(self, key: str, upload: str) -> int:
        """The bytes of an unfinished upload's parts so far."""
        total, marker = 0, 0
        while True:
            async with self._semaphore():
                page = await self.fs._call_s3("list_parts", Bucket=self.bucket, Key=key,
                                              UploadId=upload, PartNumberMarker=marker,
                                              MaxParts=self.page_keys)
            total += sum(int(part.get("Size", 0)) for part in page.get("Parts") or ())
            if not page.get("IsTruncated"):
                return total
            following = int(page.get("NextPartNumberMarker") or 0)
            if following <= marker:
                raise InventoryError(f"cannot list the parts of an upload in {self.shown}: "
                                     "the store's markers do not advance")
            marker = following

    # ------------------------------------------------------------------ read

    @staticmethod
    def details(handle: tuple[int, Any, str | None]) -> tuple[int, str | None]:
        modified = handle[1]
        if isinstance(modified, str):  # a listing's text: 2026-12-06T12:00:00.000Z
            try:
                modified = datetime.datetime.fromisoformat(modified)
            except ValueError:
                modified = None
        return handle[0], iso_time(modified)

    @staticmethod
    def size(handle: tuple[int, Any, str | None]) -> int:
        return handle[0]

    @staticmethod
    def md5(handle: tuple[int, Any, str | None]) -> str | None:
        """The MD5 of the object's bytes, when its ETag is one: S3 writes a single-part
        object's MD5 as its ETag, unless a KMS or customer key encrypts it; anything
        else (a multipart ``-N`` suffix, another provider's token) is not 32 hex
        digits, or simply will not match, and the object is read."""
        etag = (handle[2] or "").strip('"')
        return etag if _MD5.fullmatch(etag) else None

    def read(self, paths: Iterable[str], *, limit: int, sizes: Sequence[int] | None = None
             ) -> Iterator[tuple[str, bytes | Exception]]:
        """Each file's bytes, or why not, in the order given: chunks read concurrently,
        the next one fetched while this one is handed out."""
        chunks = _chunks(list(paths), sizes, limit)
        first = next(chunks, None)
        if first is None:
            return
        with self._errors("read"):
            self._run(self._open())
        pending = self._submit(first, limit)
        try:
            while pending is not None:
                with self._errors("read"):
                    done = pending.result()
                pending = self._submit(next(chunks, None), limit)
                yield from done
        finally:  # a caller that stops: the chunk fetched ahead is not wanted
            if pending is not None:
                pending.cancel()

    def _submit(self, chunk: list[tuple[str, int | None]] | None, limit: int
                ) -> concurrent.futures.Future | None:
        if chunk is None:
            return None
        return asyncio.run_coroutine_threadsafe(self._read_chunk(chunk, limit), self._loop())

    async def _read_chunk(self, chunk: list[tuple[str, int | None]], limit: int
                          ) -> list[tuple[str, bytes | Exception]]:
        got = await asyncio.gather(*(self._get(path, size, limit) for path, size in chunk))
        return [(path, value) for (path, _), value in zip(chunk, got, strict=True)]

    async def _get(self, path: str, size: int | None, limit: int) -> bytes | Exception:
        """The object's bytes: as many as listed and one more (a chunk's byte budget
        holds whatever the store answers), never more than ``limit`` and one."""
        if size == 0:  # nothing to read (and a ranged GET of nothing is an error on S3)
            return b""
        if size is not None and size > limit:
            return too_large(size, limit)
        key, last = path.partition("/")[2], limit if size is None else size
        try:
            async with self._semaphore():
                if self._http is not None:
                    data = await self._http.get(key, last)
                else:
                    answer = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=key,
                                                    Range=f"bytes=0-{last}")
                    body = answer["Body"]
                    try:
                        data = await body.read(last + 1)
                    finally:
                        body.close()
        except Exception as exc:  # noqa: BLE001 -- each way maps S3's errors to OSErrors
            return exc
        if len(data) > limit:
            return too_large(len(data), limit)
        if size is not None and len(data) > size:
            return InventoryError(f"more than the {size:,} bytes listed: changed since it "
                                  "was listed; not read")
        return data

    # ------------------------------------------------------------------ loop

    def _loop(self) -> asyncio.AbstractEventLoop:
        return self.fs.loop

    def exists(self) -> bool:
        """Whether any key lies below the storage's top: one listing of one key,
        while the walk of the tree starts (a round trip less before the first page)."""
        self._listing()
        with self._errors("reach"):
            first = self._run(self._exists())
        return bool(first.keys or first.folders)

    async def _exists(self) -> Page:
        await self._open()
        return await self.walker.page(self.prefix, after=None, most=1)

    async def _open(self) -> None:
        """Requests through :class:`PresignedRequests` from now on, when s3fs's
        configuration allows (else through botocore's calls); made once, whoever
        asks first."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._connect())
        await self._opening

    async def _connect(self) -> None:
        if PresignedRequests.usable(self.fs):
            self._http = await PresignedRequests(self.fs, self.bucket,
                                                 connections=CONCURRENCY).__aenter__()

    def close(self) -> None:
        """Stop what is still under way (the walk, the uploads' listing), close the
        connections the requests kept open."""
        if self._walking is not None and not self._walking[1].done():
            self._walking[1].cancel()
        self._run(self._shutdown())

    async def _shutdown(self) -> None:
        if self._uploads is not None:
            await cancel_all([self._uploads])
        if self._http is not None:
            http, self._http = self._http, None
            await http.__aexit__(None, None, None)

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(CONCURRENCY)
        return self._slots

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop()).result()


def _folders_above(relative: str) -> Iterator[str]:
    """The repository folders (:data:`FOLDERS`) a key below ``repositories/`` lies in."""
    parts = relative.split("/")
    for index, part in enumerate(parts[1:-1], start=1):
        if part.startswith("_"):
            area = "/".join(parts[:index + 1])
            if part in FOLDERS:
                yield area
            if part == "_manifests" and len(parts) > index + 2 and parts[index + 1] == "tags":
                yield f"{area}/tags"
            return


def _chunks(paths: list[str], sizes: Sequence[int] | None, limit: int
            ) -> Iterator[list[tuple[str, int | None]]]:
    """``paths`` (with their listed sizes) in chunks of at most :data:`CHUNK_FILES`
    files and :data:`CHUNK_BYTES` bytes (a file counts its size, at most ``limit``)."""
    chunk: list[tuple[str, int | None]] = []
    weight = 0
    for index, path in enumerate(paths):
        size = sizes[index] if sizes is not None else None
        cost = min(size if size is not None else limit, limit + 1)
        if chunk and (len(chunk) == CHUNK_FILES or weight + cost > CHUNK_BYTES):
            yield chunk
            chunk, weight = [], 0
        chunk.append((path, size))
        weight += cost
    if chunk:
        yield chunk

