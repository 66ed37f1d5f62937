"""Where a storage scan reads from: a local folder (os.scandir, the fast path) or any
fsspec filesystem (S3, GCS, Azure ...). Read-only: listing and reading, nothing else.

Both list every file below the top once, with its size and modification time, and
report a symbolic link instead of following it (a link could lead out of the root).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from .._errors import InventoryError
from ._layout import leaf_file

#: files read per batch (s3fs fetches a batch concurrently)
BATCH = 512


class FileInfo(NamedTuple):
    """A file the listing found. ``details`` is store-specific: hand it to the store's
    ``details()`` for size and time, which only some files need (fetched lazily)."""

    path: str
    link: bool  # a symbolic link: reported, never followed
    details: Any


def _iso(value: Any) -> str | None:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).isoformat()
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    return None


class LocalStore:
    """A folder on this machine, listed with os.scandir (several times faster than
    fsspec's local walk) without following symbolic links."""

    def __init__(self, top: str) -> None:
        self.top = top

    def exists(self) -> bool:
        return os.path.isdir(self.top)

    def listing(self) -> Iterator[FileInfo]:
        skip = len(self.top) + 1
        stack = [self.top]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue  # vanished or unreadable: what it held is not there for us
            for entry in entries:
                if entry.is_symlink():
                    yield FileInfo(entry.path, True, entry.path)
                elif not entry.is_dir(follow_symlinks=False):
                    yield FileInfo(entry.path, False, entry.path)
                elif leaf := leaf_file(entry.path[skip:]):
                    # a digest's folder holds its one file: look at it, not list the folder
                    # (half the folders of a storage; a stray file there means nothing)
                    path = f"{entry.path}/{leaf}"
                    try:
                        info = os.lstat(path)
                    except OSError:
                        continue
                    yield FileInfo(path, stat.S_ISLNK(info.st_mode), info)
                else:
                    stack.append(entry.path)

    @staticmethod
    def details(handle: str | os.stat_result) -> tuple[int, str | None]:
        """Size and modification time (ISO) of a listed file."""
        info = handle if isinstance(handle, os.stat_result) else os.lstat(handle)
        return info.st_size, _iso(info.st_mtime)

    def read(self, paths: Iterable[str]) -> Iterator[tuple[str, bytes | Exception]]:
        for path in paths:
            try:
                with open(path, "rb") as file:
                    yield path, file.read()
            except OSError as exc:
                yield path, exc

    def multipart_sizes(self) -> dict[str, int]:
        return {}


class FsspecStore:
    """Any fsspec filesystem: one recursive listing (on S3 a paged ListObjects) and
    batched reads (concurrent on s3fs)."""

    def __init__(self, fs: Any, top: str) -> None:
        self.fs, self.top = fs, top

    def exists(self) -> bool:
        return bool(self.fs.isdir(self.top))

    def listing(self) -> Iterator[FileInfo]:
        entries = self.fs.find(self.top, withdirs=True, detail=True)
        links = sorted(p for p, info in entries.items() if info.get("islink"))
        for path, info in entries.items():
            if any(path.startswith(link + "/") for link in links):
                continue  # below a link: never descended into
            if info.get("islink"):
                yield FileInfo(path, True, info)
            elif info.get("type") != "directory":
                yield FileInfo(path, False, info)

    @staticmethod
    def details(info: Mapping[str, Any]) -> tuple[int, str | None]:
        """Size and modification time (ISO; S3: LastModified) of a listed file."""
        modified = info.get("mtime", info.get("LastModified", info.get("last_modified")))
        return int(info.get("size") or 0), _iso(modified)

    def read(self, paths: Iterable[str]) -> Iterator[tuple[str, bytes | Exception]]:
        paths = list(paths)
        for start in range(0, len(paths), BATCH):
            chunk = paths[start:start + BATCH]
            got = self.fs.cat(chunk, on_error="return")
            for path in chunk:
                value = got.get(path, got.get(self.fs._strip_protocol(path)))
                yield path, value if value is not None else FileNotFoundError(path)

    def multipart_sizes(self) -> dict[str, int]:
        """On S3 an upload's data is a multipart upload, not an object, until it is
        finished: the bytes of its parts so far, by the object path it will have."""
        if not hasattr(self.fs, "list_multipart_uploads"):
            return {}
        bucket = self.top.partition("/")[0]
        sizes = {}
        for upload in self.fs.list_multipart_uploads(bucket):
            path = f"{bucket}/{upload.get('Key', '')}"
            if not path.startswith(self.top + "/"):
                continue
            total, marker = 0, 0
            while True:
                page = self.fs.call_s3("list_parts", Bucket=bucket, Key=upload["Key"],
                                       UploadId=upload["UploadId"], PartNumberMarker=marker)
                total += sum(int(part.get("Size", 0)) for part in page.get("Parts", ()))
                if not page.get("IsTruncated"):
                    break
                marker = page.get("NextPartNumberMarker", 0)
            sizes[path] = total
        return sizes


def shown(url: str) -> str:
    """The root as an inventory records it: never a password in a URL."""
    return re.sub(r"//[^/@]*@", "//", url)


def open_store(root: str, storage_options: Mapping[str, Any] | None, top: str
               ) -> LocalStore | FsspecStore:
    """The store for ``root`` (a local folder or an fsspec URL), at ``root``/``top``."""
    if "://" not in root or root.startswith("file://"):
        folder = os.path.abspath(root.removeprefix("file://"))
        return LocalStore(os.path.join(folder, top))
    import fsspec

    try:
        fs, base = fsspec.core.url_to_fs(root, **dict(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise InventoryError(f"cannot open {shown(root)}: {exc}") from None
    return FsspecStore(fs, f"{base.rstrip('/')}/{top}")
