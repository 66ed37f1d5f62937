"""A registry storage in S3 (or anything speaking its API: MinIO, Ceph, R2 ...), read
near the latency floor.

Every S3 request is a round trip (tens of milliseconds to a bucket in another
network); the registry's own collector makes one at a time, so its time is the number
of requests times the round trip. This store makes as few requests as the layout
allows and keeps many in flight:

- **Listing split by prefix.** S3 pages one prefix sequentially (1,000 keys a page).
  A prefix is listed whole when its first page holds it all; when not, the rest is
  split at its sub-folders (one listing with ``Delimiter``), each listed concurrently
  and split again the same way. Small trees cost a request or two; a large one
  costs a few dependent round trips, not one per page.
- **No request where a listing answered.** Sizes and times come from the listing. An
  object's ETag is the MD5 of its bytes when it was written whole, unencrypted or
  with S3's own keys (:meth:`S3Store.md5`): the scan checks a link's expected content
  against it and reads only links that do not match.
- **Small objects read concurrently**, in chunks bounded in files and bytes; the next
  chunk is fetched while the caller parses this one. Each read is a ranged GET of at
  most the caller's limit plus one byte.

At most :data:`CONCURRENCY` requests are in flight (s3fs's connection pool is sized to
match). Requests go through s3fs's own client (its credentials, endpoint, retries).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import InventoryError
from .._text import printable
from ._layout import FOLDERS, Found, classify, classify_folder, too_large
from ._s3http import PresignedRequests
from ._stores import FsspecStore

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
        self.page_keys = page_keys
        self.bucket = top.partition("/")[0]
        self._slots: asyncio.Semaphore | None = None  # made on the loop, when first used
        self._http: PresignedRequests | None = None  # opened on first use, till close()
        self._opening: asyncio.Future | None = None  # the connection pool, being made
        self._walking: tuple[queue.SimpleQueue, concurrent.futures.Future] | None = None
        self._uploads: asyncio.Future | None = None  # listed alongside the objects

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
        key = self.top.partition("/")[2]
        await self._open()
        self._uploads = asyncio.ensure_future(self._multipart())  # meanwhile: one round less
        await _all([asyncio.ensure_future(self._walk(f"{key}/{area}/", take))
                    for area in ("blobs", "repositories")])

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
        prefix = f"{self.top.partition('/')[2]}/"
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

    async def _walk(self, prefix: str, take: Callable[[list[dict[str, Any]]], None], *,
                    low: str = "", high: str | None = None, files: bool = True) -> None:
        """Every key below ``prefix`` from ``low`` (included) to ``high`` (excluded),
        those directly in ``prefix`` only with ``files``: one page, and when that does
        not hold it all, the rest split at the sub-folders, which are listed
        concurrently, as many to a listing as the first page suggests one page holds."""
        after = _before(low)
        while True:  # the keys just below ``low`` that StartAfter lets through: passed
            first = await self._list(prefix, after=after)
            if not first.truncated or first.keys[-1]["Key"] >= low:
                break
            after = first.keys[-1]["Key"]
        listed = _within(first.keys, low, high)
        take(listed if files else [k for k in listed if "/" in k["Key"][len(prefix):]])
        if not first.truncated or (high is not None and first.keys[-1]["Key"] >= high):
            return  # all of it, or past ``high``
        last = listed[-1]["Key"]
        # the folder holding the last key listed: the rest of it, after that key (an S3
        # listing after a key may leave out the folder it is in)
        rest = last[len(prefix):]
        inner = f"{prefix}{rest.split('/', 1)[0]}/" if "/" in rest else None
        walks = ([asyncio.ensure_future(self._walk(inner, take, low=f"{last}\0"))]
                 if inner else [])
        try:
            folders = await self._folders(prefix, last, inner, take, low=low, high=high,
                                          files=files)
        except BaseException:
            await _cancel(walks)  # nothing goes on listing after a failure
            raise
        # folders to a listing: as many as filled the first page, about
        seen = len({key["Key"][len(prefix):].partition("/")[0] for key in listed})
        group = max(1, self.page_keys * (seen - 1) // len(listed))
        for start in range(0, len(folders), group):
            chunk = folders[start:start + group]
            walks.append(asyncio.ensure_future(
                self._walk(chunk[0], take) if len(chunk) == 1 else
                # the folders' keys only: the files between them were taken above
                self._walk(prefix, take, low=chunk[0], high=f"{chunk[-1][:-1]}0",
                           files=False)))
        await _all(walks)

    async def _folders(self, prefix: str, last: str, inner: str | None,
                       take: Callable[[list[dict[str, Any]]], None], *, low: str,
                       high: str | None, files: bool) -> list[str]:
        """The sub-folders of ``prefix`` after the key ``last`` (but ``inner``, and
        below ``high``); its files there taken when ``files``."""
        folders: list[str] = []
        token, floor = None, last
        while True:
            page = await self._list(prefix, after=last, token=token, folders=True,
                                    floor=floor)
            direct = _within(page.keys, low, high)
            if files:
                take(direct)
            ahead = [f for f in page.folders if f != inner and (high is None or f < high)]
            folders.extend(ahead)
            if (not page.truncated or len(direct) < len(page.keys)
                    or len(ahead) < len(page.folders) - (inner in page.folders)):
                return folders
            token = page.token
            # the next page starts after this one: answers that cycle are refused
            floor = max([floor, *(k["Key"] for k in page.keys[-1:]), *page.folders[-1:]])

    async def _list(self, prefix: str, *, after: str | None, token: str | None = None,
                    folders: bool = False, most: int | None = None,
                    floor: str | None = None) -> _Page:
        """One page of ``prefix`` after the key ``after`` (with ``folders``: its files
        and its sub-folders), checked: a listing that does not advance (a page not
        after ``floor``, the last page's end), or answers for another prefix, is an
        error, never an endless loop."""
        params = {"Prefix": prefix, "MaxKeys": most or self.page_keys,
                  **({"StartAfter": after} if after else {}),
                  **({"Delimiter": "/"} if folders else {}),
                  **({"ContinuationToken": token} if token else {})}
        async with self._semaphore():
            answer = await (self._http.list_objects(**params) if self._http else
                            self.fs._call_s3("list_objects_v2", Bucket=self.bucket, **params))
        keys = answer.get("Contents") or []
        subfolders = [common.get("Prefix", "") for common in answer.get("CommonPrefixes") or ()]
        page = _Page(keys, subfolders, bool(answer.get("IsTruncated")),
                     answer.get("NextContinuationToken"))
        floor = floor or after or ""
        if (any(not (k.get("Key", "") > floor and k["Key"].startswith(prefix)) for k in keys)
                or any(not _subfolder(f, prefix, floor, first=token is None)
                       for f in subfolders)
                or (page.truncated and not (page.token if folders else keys))
                or (token is not None and page.token == token)):
            raise InventoryError(f"cannot list {self.shown}: the store's answer for "
                                 f"{printable(prefix, limit=200)} does not advance through "
                                 "it (keys out of order or out of the prefix)")
        return page

    # ------------------------------------------------------------------ read

    @staticmethod
    def details(handle: tuple[int, Any, str | None]) -> tuple[int, str | None]:
        from ._localstore import iso_time

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
        return etag if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag) else None

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

    async def _exists(self) -> _Page:
        await self._open()
        return await self._list(f"{self.top.partition('/')[2]}/", after=None, most=1)

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
            await _cancel([self._uploads])
        if self._http is not None:
            http, self._http = self._http, None
            await http.__aexit__(None, None, None)

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(CONCURRENCY)
        return self._slots

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop()).result()


async def _cancel(tasks: list[asyncio.Future]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _all(tasks: list[asyncio.Future]) -> None:
    """Wait for every task; on the first failure cancel the others, then raise it."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        await _cancel(tasks)
        raise


@dataclass(frozen=True, slots=True)
class _Page:
    """One answer of ListObjectsV2."""

    keys: list[dict[str, Any]]
    folders: list[str]
    truncated: bool
    token: str | None


def _subfolder(folder: str, prefix: str, after: str, *, first: bool) -> bool:
    """Whether a listed sub-folder is one level below ``prefix`` (``P//`` too: an
    empty name) and after ``after``, or on a first page the folder holding it: what a
    hostile answer might break to loop the walk."""
    name = folder[len(prefix):]
    return (folder.startswith(prefix) and name.endswith("/") and "/" not in name[:-1]
            and (folder > after or (first and after.startswith(folder))))


def _before(low: str) -> str | None:
    """What ``StartAfter`` is for keys from ``low`` on: the key itself when ``low`` is
    the least string after it (``key + "\\0"``), otherwise a string just below
    ``low`` (the keys between are dropped by :func:`_within`)."""
    if not low:
        return None
    if low.endswith("\0"):
        return low[:-1]
    return low[:-1] + chr(ord(low[-1]) - 1) if ord(low[-1]) > 1 else low[:-1] or None


def _within(keys: list[dict[str, Any]], low: str, high: str | None) -> list[dict[str, Any]]:
    """The listed keys from ``low`` (included) to ``high`` (excluded)."""
    if not keys or (keys[0]["Key"] >= low and (high is None or keys[-1]["Key"] < high)):
        return keys
    return [key for key in keys if key["Key"] >= low and (high is None or key["Key"] < high)]


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


def is_s3(fs: Any) -> bool:
    """Whether ``fs`` is s3fs's filesystem (the only one this store reads)."""
    return type(fs).__module__.split(".")[0] == "s3fs"

