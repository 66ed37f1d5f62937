"""Every key below a prefix of an S3 bucket, listed concurrently near the latency floor.

S3 pages one prefix sequentially, 1,000 keys a page: a listing of 100,000 keys is 100
round trips in a row. Here a prefix is listed whole when its first page holds it all;
when not, the rest is split at its sub-folders (one listing with ``Delimiter``) and
the parts are listed concurrently, as many folders to a listing as the first page
suggests one page holds, each split again the same way. Small trees cost a request or
two, large ones a few dependent round trips.

Every page is checked: keys out of the prefix, out of order, or not after the page
before (tokens that cycle) are an error, never an endless walk. Both ways S3
implementations treat the folder holding ``StartAfter`` (AWS keeps it, moto leaves it
out) give every key exactly once. The requests themselves are the caller's
(``list_page``): the walk is protocol logic over them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .._errors import InventoryError
from .._text import printable

#: what takes the keys of each page as they come
Take = Callable[[list[dict[str, Any]]], None]


class PrefixWalk:
    """Walks of the prefixes of one bucket: ``list_page(**params)`` answers one
    ListObjectsV2 (botocore's dict), ``page_keys`` the keys a page asks for."""

    def __init__(self, list_page: Callable[..., Awaitable[dict[str, Any]]], *,
                 page_keys: int, shown: str) -> None:
        self.list_page, self.page_keys, self.shown = list_page, page_keys, shown

    async def walk(self, prefix: str, take: Take, *, low: str = "", high: str | None = None,
                   files: bool = True) -> None:
        """Every key below ``prefix`` from ``low`` (included) to ``high`` (excluded),
        those directly in ``prefix`` only with ``files``: one page, and when that does
        not hold it all, the rest split at the sub-folders, which are listed
        concurrently, as many to a listing as the first page suggests one page holds."""
        after = _before(low)
        while True:  # the keys just below ``low`` that StartAfter lets through: passed
            first = await self.page(prefix, after=after)
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
        walks = ([asyncio.ensure_future(self.walk(inner, take, low=f"{last}\0"))]
                 if inner else [])
        try:
            folders = await self._folders(prefix, last, inner, take, low=low, high=high,
                                          files=files)
        except BaseException:
            await cancel_all(walks)  # nothing goes on listing after a failure
            raise
        # folders to a listing: as many as filled the first page, about
        seen = len({key["Key"][len(prefix):].partition("/")[0] for key in listed})
        group = max(1, self.page_keys * (seen - 1) // len(listed))
        for start in range(0, len(folders), group):
            chunk = folders[start:start + group]
            walks.append(asyncio.ensure_future(
                self.walk(chunk[0], take) if len(chunk) == 1 else
                # the folders' keys only: the files between them were taken above
                self.walk(prefix, take, low=chunk[0], high=f"{chunk[-1][:-1]}0",
                          files=False)))
        await gather_all(walks)

    async def _folders(self, prefix: str, last: str, inner: str | None, take: Take, *,
                       low: str, high: str | None, files: bool) -> list[str]:
        """The sub-folders of ``prefix`` after the key ``last`` (but ``inner``, and
        below ``high``); its files there taken when ``files``."""
        folders: list[str] = []
        token, floor = None, last
        while True:
            page = await self.page(prefix, after=last, token=token, folders=True,
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

    async def page(self, prefix: str, *, after: str | None, token: str | None = None,
                   folders: bool = False, most: int | None = None,
                   floor: str | None = None) -> Page:
        """One page of ``prefix`` after the key ``after`` (with ``folders``: its files
        and its sub-folders), checked: a listing that does not advance (a page not
        after ``floor``, the last page's end), or answers for another prefix, is an
        error, never an endless loop."""
        params = {"Prefix": prefix, "MaxKeys": most or self.page_keys,
                  **({"StartAfter": after} if after else {}),
                  **({"Delimiter": "/"} if folders else {}),
                  **({"ContinuationToken": token} if token else {})}
        answer = await self.list_page(**params)
        keys = answer.get("Contents") or []
        subfolders = [common.get("Prefix", "") for common in answer.get("CommonPrefixes") or ()]
        page = Page(keys, subfolders, bool(answer.get("IsTruncated")),
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


async def cancel_all(tasks: list[asyncio.Future]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def gather_all(tasks: list[asyncio.Future]) -> None:
    """Wait for every task; on the first failure cancel the others, then raise it."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        await cancel_all(tasks)
        raise


@dataclass(frozen=True, slots=True)
class Page:
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
