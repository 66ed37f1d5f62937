"""Where a storage scan reads from: a local folder (os.scandir, the fast path) or any
fsspec filesystem (S3, GCS, Azure ...). Read-only: listing and reading, nothing else.

Both yield every file the layout gives a meaning (:mod:`._layout`), with details for
its size and modification time, and report a symbolic link instead of following it
(a link could lead out of the root).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .._errors import InventoryError
from ._layout import Entry, classify, is_algorithm, is_component, is_hex, is_prefix

#: files read per batch (s3fs fetches a batch concurrently)
BATCH = 512


#: (what the file is, its path, store-specific details for ``details()``)
Found = tuple[Entry, str, Any]
LINK = Entry("link")


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

    def entries(self) -> Iterator[Found]:
        """Walk the layout itself (the names each level may hold, see :mod:`._layout`)
        rather than list every folder: a digest's folder is not listed, its one file
        is looked at. Anything else is not looked at; a symbolic link is reported."""
        yield from self._blobs(f"{self.top}/blobs")
        yield from self._repositories(f"{self.top}/repositories", [])

    @staticmethod
    def _folders(path: str) -> Iterator[os.DirEntry | Found]:
        """The folders in ``path``; a symbolic link comes back as a LINK entry."""
        try:
            children = list(os.scandir(path))
        except OSError:
            return  # absent or unreadable: nothing there for us
        for child in children:
            if child.is_symlink():
                yield (LINK, child.path, None)
            elif child.is_dir(follow_symlinks=False):
                yield child

    @staticmethod
    def _file(path: str, entry: Entry) -> Iterator[Found]:
        try:
            info = os.lstat(path)
        except OSError:
            return  # an emptied folder (the registry deletes files, not folders)
        yield (LINK if stat.S_ISLNK(info.st_mode) else entry, path, info)

    def _blobs(self, path: str) -> Iterator[Found]:
        for algorithm in self._folders(path):
            if isinstance(algorithm, tuple) or not is_algorithm(algorithm.name):
                yield from _links_only(algorithm)
                continue
            for prefix in self._folders(algorithm.path):
                if isinstance(prefix, tuple) or not is_prefix(prefix.name):
                    yield from _links_only(prefix)
                    continue
                for digest in self._folders(prefix.path):
                    if isinstance(digest, tuple) or not is_hex(digest.name):
                        yield from _links_only(digest)
                        continue
                    yield from self._file(f"{digest.path}/data", Entry(
                        "blob", digest=f"{algorithm.name}:{digest.name}"))

    def _digests(self, path: str, kind: str, repository: str, tag: str | None = None
                 ) -> Iterator[Found]:
        """``<alg>/<hex>/link`` files below ``path``. A ``_layers`` link is never read,
        so its folder is not even looked into: the registry's collector too goes by
        the folders."""
        for algorithm in self._folders(path):
            if isinstance(algorithm, tuple) or not is_algorithm(algorithm.name):
                yield from _links_only(algorithm)
                continue
            for digest in self._folders(algorithm.path):
                if isinstance(digest, tuple) or not is_hex(digest.name):
                    yield from _links_only(digest)
                    continue
                entry = Entry(kind, repository, f"{algorithm.name}:{digest.name}", tag=tag)
                if kind == "layer":
                    yield (entry, f"{digest.path}/link", None)
                else:
                    yield from self._file(f"{digest.path}/link", entry)

    def _repositories(self, path: str, parts: list[str]) -> Iterator[Found]:
        for child in self._folders(path):
            if isinstance(child, tuple):
                yield child
            elif not child.name.startswith("_"):
                if is_component(child.name):
                    yield from self._repositories(child.path, [*parts, child.name])
            elif parts:
                yield from self._area(child.path, child.name, "/".join(parts))

    def _area(self, path: str, area: str, repository: str) -> Iterator[Found]:
        if area == "_layers":
            yield from self._digests(path, "layer", repository)
        elif area == "_manifests":
            yield from self._digests(f"{path}/revisions", "revision", repository)
            for tag in self._folders(f"{path}/tags"):
                if isinstance(tag, tuple):
                    yield tag
                    continue
                yield from self._file(f"{tag.path}/current/link",
                                      Entry("tag", repository, tag=tag.name))
                yield from self._digests(f"{tag.path}/index", "tag_index", repository,
                                         tag.name)
        elif area == "_uploads":
            for upload in self._folders(path):
                if isinstance(upload, tuple):
                    yield upload
                    continue
                for name, kind in (("data", "upload_data"), ("startedat", "upload_started")):
                    yield from self._file(f"{upload.path}/{name}",
                                          Entry(kind, repository, upload=upload.name))

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

    def entries(self) -> Iterator[Found]:
        """One recursive listing, each file classified by its path."""
        listed = self.fs.find(self.top, withdirs=True, detail=True)
        links = sorted(p for p, info in listed.items() if info.get("islink"))
        skip = len(self.top.rstrip("/")) + 1
        for path, info in listed.items():
            if any(path.startswith(link + "/") for link in links):
                continue  # below a link: never descended into
            if info.get("islink"):
                yield (LINK, path, info)
            elif info.get("type") != "directory" and (entry := classify(path[skip:])):
                yield (entry, path, info)

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


def _links_only(found: os.DirEntry | Found) -> Iterator[Found]:
    """Of a folder the layout does not name, only a symbolic link is reported."""
    if isinstance(found, tuple):
        yield found


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
