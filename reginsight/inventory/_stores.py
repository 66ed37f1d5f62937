"""Where a storage scan reads from: a local folder (:mod:`._localstore`, the fast
path), S3 (:mod:`._s3store`, concurrent) or any other fsspec filesystem (GCS, Azure
...). Read-only: listing and reading, nothing else. Each yields every file the layout
gives a meaning (:mod:`._layout`), with details for its size and modification time;
what it refuses (a link, a file that is no regular file, a name or a depth no registry
writes) is a ``refused`` entry naming the path and why, and the scan goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .._errors import InventoryError
from .._text import printable
from ._layout import LINK_REFUSED, REFUSED, Found, classify, classify_folder, too_large
from ._localstore import iso_time

#: files read per batch (s3fs fetches a batch concurrently)
BATCH = 512


class FsspecStore:
    """Any fsspec filesystem: one recursive listing (on S3 a paged ListObjects) and
    batched reads (concurrent on s3fs), each cut at the caller's limit. Whatever its
    backend raises (botocore, OSError, a TypeError for an unknown option) is an
    InventoryError naming the store."""

    def __init__(self, fs: Any, top: str, shown: str) -> None:
        self.fs, self.top, self.shown = fs, top, shown

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except InventoryError:
            raise
        except Exception as exc:  # noqa: BLE001 -- each backend raises its own types
            raise backend_error(action, self.shown, exc) from None

    def exists(self) -> bool:
        with self._errors("reach"):
            return bool(self.fs.isdir(self.top))

    def entries(self) -> Iterator[Found]:
        """One recursive listing, each file classified by its path, and a repository's
        folders (on S3: the prefixes some object lies below, as the registry sees them)."""
        # the generic walk (a local fsspec path) passes over what it cannot list
        # unless told: the registry's collector would stop there
        from fsspec import AbstractFileSystem

        raising = ({"on_error": "raise"} if type(self.fs).find is AbstractFileSystem.find
                   else {})
        with self._errors("list"):
            listed = self.fs.find(self.top, withdirs=True, detail=True, **raising)
        links = {p for p, info in listed.items() if info.get("islink")}
        skip = len(self.top.rstrip("/")) + 1
        for path, info in listed.items():
            if links and _below(path, links):
                continue  # below a link: never descended into
            kind = info.get("type")
            if info.get("islink"):
                yield (REFUSED, path, LINK_REFUSED)
            elif kind == "directory":
                if folder := classify_folder(path[skip:]):
                    yield (folder, path, info)
            elif entry := classify(path[skip:]):
                if kind == "file":
                    yield (entry, path, info)
                else:  # a local fsspec listing calls a FIFO or a socket "other"
                    yield (REFUSED, path, f"a {kind} where the layout has a file: not read")

    @staticmethod
    def details(info: Mapping[str, Any]) -> tuple[int, str | None]:
        """Size and modification time (ISO; S3: LastModified) of a listed file."""
        modified = info.get("mtime", info.get("LastModified", info.get("last_modified")))
        return int(info.get("size") or 0), iso_time(modified)

    def close(self) -> None:
        """Nothing is kept open."""

    @staticmethod
    def size(handle: Mapping[str, Any]) -> int:
        """The bytes of a listed file."""
        return int(handle.get("size") or 0)

    @staticmethod
    def md5(handle: Mapping[str, Any]) -> str | None:
        """The digest of a file's bytes the listing gave, if any: none in general."""
        return None

    def read(self, paths: Iterable[str], *, limit: int, sizes: Any = None
             ) -> Iterator[tuple[str, bytes | Exception]]:
        """Each file's bytes, or why not: a ranged read of at most ``limit`` + 1 bytes
        (one more tells a file past the limit)."""
        paths = list(paths)
        for start in range(0, len(paths), BATCH):
            chunk = paths[start:start + BATCH]
            with self._errors("read"):
                got = self.fs.cat(chunk, on_error="return", start=0, end=limit + 1)
            for path in chunk:
                value = got.get(path, got.get(self.fs._strip_protocol(path)))
                if value is None:
                    value = FileNotFoundError(path)
                elif isinstance(value, bytes) and len(value) > limit:
                    value = too_large(len(value), limit)
                yield path, value

    def multipart_sizes(self) -> dict[str, int]:
        """Unfinished uploads that are no objects yet: S3's (see ``S3Store``) only."""
        return {}


def backend_error(action: str, where: str, exc: Exception) -> InventoryError:
    return InventoryError(f"cannot {action} {where}: {type(exc).__name__}: "
                          f"{printable(exc, limit=300)}")


def _below(path: str, links: set[str]) -> bool:
    """Whether a folder above ``path`` is one of ``links`` (a look at each ancestor:
    testing every link against every path was quadratic)."""
    parent = path.rpartition("/")[0]
    while parent:
        if parent in links:
            return True
        parent = parent.rpartition("/")[0]
    return False


def shown(url: str) -> str:
    """The root as an inventory records it: never a password in a URL."""
    return re.sub(r"//[^/@]*@", "//", url)
