"""Where a storage scan reads from: a local folder (os.scandir, the fast path) or any
fsspec filesystem (S3, GCS, Azure ...). Read-only: listing and reading, nothing else.

Both yield every file the layout gives a meaning (:mod:`._layout`), with details for
its size and modification time, and stay inside the root and bounded on a tree
anyone may have edited:

- no symbolic link is followed at any depth below the root: each folder is entered
  only when its parent's listing says it is a folder, not a link; a link is
  reported instead (it could lead out of the root), and every file read is checked,
  once open, to be the file below the root that was listed;
- only regular files are read (a FIFO would block forever, a device could act on
  being opened), each with a cap on its bytes that the caller gives;
- the walk is a loop, not a recursion, and stops at a depth no repository name can
  reach.

What is refused is a ``refused`` entry naming the path and why; the scan goes on.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import InventoryError
from .._text import printable
from ._layout import Entry, classify, is_algorithm, is_hex, is_prefix

#: files read per batch (s3fs fetches a batch concurrently)
BATCH = 512
#: the most ``/``-separated components a repository name has: the reference grammar
#: allows 255 characters, so 128 one-character components. Deeper is not walked.
MAX_COMPONENTS = 128

#: (what the file is, its path, store-specific details for ``details()``; for a
#: ``refused`` entry, why it was refused)
Found = tuple[Entry, str, Any]
REFUSED = Entry("refused")
LINK_REFUSED = "a symbolic link: not followed"


@dataclass(frozen=True, slots=True)
class _Folder:
    """A folder a listing found: its name and path (os.scandir of a descriptor gives
    entries without their folder's path). Not a tuple: a tuple is a :data:`Found`."""

    name: str
    path: str

_FOLDER_FLAGS = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0))
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))


def _iso(value: Any) -> str | None:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC).isoformat()
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    return None


def _not_regular(mode: int) -> str:
    """Why a file of this ``mode`` is not read."""
    if stat.S_ISLNK(mode):
        return LINK_REFUSED
    what = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode)
            else "a folder" if stat.S_ISDIR(mode) else "not a regular file")
    return f"{what} where the layout has a file: not read"


def too_large(size: int, limit: int) -> InventoryError:
    return InventoryError(f"{size:,} bytes, more than the {limit:,} such a file holds: "
                          "not read")


class LocalStore:
    """A folder on this machine, listed with os.scandir (several times faster than
    fsspec's local walk) without following symbolic links."""

    def __init__(self, root: str, top: str) -> None:
        self.root, self.top = root, os.path.join(root, top)
        self._below = top.strip("/").split("/")
        self._real_top: str | None = None

    def exists(self) -> bool:
        """Whether ``top`` is a folder below ``root``. The root itself may be a link
        (a mount's alias, a versioned folder); a link below it is refused."""
        if not os.path.isdir(self.root):
            return False
        path = self.root
        for part in self._below:
            path = os.path.join(path, part)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                return False
            if stat.S_ISLNK(mode):
                raise InventoryError(f"{printable(path)} is a symbolic link: a storage scan "
                                     "follows none below the root it is given (give the "
                                     "folder it points to as the root)")
            if not stat.S_ISDIR(mode):
                return False
        self._real_top = os.path.realpath(self.top)
        return True

    def entries(self) -> Iterator[Found]:
        """Walk the layout itself (the names each level may hold, see :mod:`._layout`)
        rather than list every folder: a digest's folder is not listed, its one file
        is looked at. Anything else is not looked at; a link is reported."""
        yield from self._blobs(f"{self.top}/blobs")
        yield from self._repositories(f"{self.top}/repositories")

    @staticmethod
    def _folders(path: str) -> Iterator[_Folder | Found]:
        """The folders in ``path``; a symbolic link comes back as a refused entry,
        ``path`` itself too: its parent's listing checked every other component, but
        the layout's fixed names (``blobs``, ``revisions``, ``tags`` ...) are joined,
        not listed, and O_NOFOLLOW checks them as they are opened."""
        try:
            fd = os.open(path, _FOLDER_FLAGS)
        except OSError as exc:  # Linux says ENOTDIR for a link with O_DIRECTORY
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
                yield (REFUSED, path, LINK_REFUSED)
            return  # absent or unreadable: nothing there for us
        try:
            children = list(os.scandir(fd))
        except OSError:
            return
        finally:
            os.close(fd)
        for child in children:
            child_path = f"{path}/{child.name}"
            if child.is_symlink():
                yield (REFUSED, child_path, LINK_REFUSED)
            elif child.is_dir(follow_symlinks=False):
                yield _Folder(child.name, child_path)

    @staticmethod
    def _file(path: str, entry: Entry) -> Iterator[Found]:
        try:
            info = os.lstat(path)
        except OSError:
            return  # an emptied folder (the registry deletes files, not folders)
        if stat.S_ISREG(info.st_mode):
            yield (entry, path, info)
        else:
            yield (REFUSED, path, _not_regular(info.st_mode))

    def _blobs(self, path: str) -> Iterator[Found]:
        for algorithm in self._folders(path):
            if isinstance(algorithm, tuple) or not is_algorithm(algorithm.name):
                yield from _refused_only(algorithm)
                continue
            for prefix in self._folders(algorithm.path):
                if isinstance(prefix, tuple) or not is_prefix(prefix.name):
                    yield from _refused_only(prefix)
                    continue
                for digest in self._folders(prefix.path):
                    if isinstance(digest, tuple) or not is_hex(digest.name):
                        yield from _refused_only(digest)
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
                yield from _refused_only(algorithm)
                continue
            for digest in self._folders(algorithm.path):
                if isinstance(digest, tuple) or not is_hex(digest.name):
                    yield from _refused_only(digest)
                    continue
                entry = Entry(kind, repository, f"{algorithm.name}:{digest.name}", tag=tag)
                if kind == "layer":
                    yield (entry, f"{digest.path}/link", None)
                else:
                    yield from self._file(f"{digest.path}/link", entry)

    def _repositories(self, path: str) -> Iterator[Found]:
        """Name components down to the first ``_``-folder, as a loop over a stack of
        folders still to list (a recursion would end in RecursionError on a deep
        enough tree), never deeper than :data:`MAX_COMPONENTS`."""
        stack: list[tuple[str, tuple[str, ...]]] = [(path, ())]
        while stack:
            folder, parts = stack.pop()
            for child in self._folders(folder):
                if isinstance(child, tuple):
                    yield child
                elif not child.name.startswith("_"):  # any name: the scan checks it
                    if len(parts) == MAX_COMPONENTS:
                        yield (REFUSED, child.path, f"deeper than {MAX_COMPONENTS} "
                               "components, which no repository name has: not walked")
                    else:
                        stack.append((child.path, (*parts, child.name)))
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
                current = f"{tag.path}/current"  # a fixed name: not listed, so checked
                if os.path.islink(current):
                    yield (REFUSED, current, LINK_REFUSED)
                else:
                    yield from self._file(f"{current}/link",
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

    def read(self, paths: Iterable[str], *, limit: int
             ) -> Iterator[tuple[str, bytes | Exception]]:
        """Each file's bytes, or why not: never more than ``limit`` bytes read."""
        for path in paths:
            try:
                yield path, self._read(path, limit)
            except (OSError, InventoryError) as exc:
                yield path, exc

    def _read(self, path: str, limit: int) -> bytes:
        # O_NOFOLLOW: the file itself is no link; O_NONBLOCK: a FIFO swapped in since
        # the listing does not block the open. fstat then says what was opened.
        fd = os.open(path, _OPEN_FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InventoryError(_not_regular(info.st_mode))
            if not self._inside(fd, path):
                raise InventoryError("reached through a symbolic link, out of the storage: "
                                     "not read")
            if info.st_size > limit:
                raise too_large(info.st_size, limit)
            chunks, size = [], 0
            while size <= limit and (chunk := os.read(fd, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
            if size > limit:  # it grew since fstat
                raise too_large(size, limit)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _inside(self, fd: int, path: str) -> bool:
        """Whether the open file is the one at ``path`` below the storage's real top:
        a folder on the way swapped for a link since the listing is caught here."""
        opened = _opened_path(fd)
        if opened is None:  # no way to ask this system: the path, resolved now
            opened = os.path.realpath(path)
        return opened == f"{self._real_top}{path[len(self.top):]}"

    def multipart_sizes(self) -> dict[str, int]:
        return {}


def _opened_path(fd: int) -> str | None:
    """The path of an open file as the kernel resolved it (Linux: /proc; macOS:
    F_GETPATH), or None where neither is available."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
    if sys.platform == "darwin":
        import fcntl

        raw = fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024))  # type: ignore[attr-defined]
        return os.fsdecode(raw.rstrip(b"\0"))
    return None


class FsspecStore:
    """Any fsspec filesystem: one recursive listing (on S3 a paged ListObjects) and
    batched reads (concurrent on s3fs), each cut at the caller's limit."""

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
            kind = info.get("type")
            if info.get("islink"):
                yield (REFUSED, path, LINK_REFUSED)
            elif kind != "directory" and (entry := classify(path[skip:])):
                if kind == "file":
                    yield (entry, path, info)
                else:  # a local fsspec listing calls a FIFO or a socket "other"
                    yield (REFUSED, path, f"a {kind} where the layout has a file: not read")

    @staticmethod
    def details(info: Mapping[str, Any]) -> tuple[int, str | None]:
        """Size and modification time (ISO; S3: LastModified) of a listed file."""
        modified = info.get("mtime", info.get("LastModified", info.get("last_modified")))
        return int(info.get("size") or 0), _iso(modified)

    def read(self, paths: Iterable[str], *, limit: int
             ) -> Iterator[tuple[str, bytes | Exception]]:
        """Each file's bytes, or why not: a ranged read of at most ``limit`` + 1 bytes
        (one more tells a file past the limit)."""
        paths = list(paths)
        for start in range(0, len(paths), BATCH):
            chunk = paths[start:start + BATCH]
            got = self.fs.cat(chunk, on_error="return", start=0, end=limit + 1)
            for path in chunk:
                value = got.get(path, got.get(self.fs._strip_protocol(path)))
                if value is None:
                    value = FileNotFoundError(path)
                elif isinstance(value, bytes) and len(value) > limit:
                    value = too_large(len(value), limit)
                yield path, value

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


def _refused_only(found: _Folder | Found) -> Iterator[Found]:
    """Of a folder the layout does not name, only a refusal (a link) is reported."""
    if isinstance(found, tuple):
        yield found


def shown(url: str) -> str:
    """The root as an inventory records it: never a password in a URL."""
    return re.sub(r"//[^/@]*@", "//", url)


def open_store(root: str, storage_options: Mapping[str, Any] | None, top: str
               ) -> LocalStore | FsspecStore:
    """The store for ``root`` (a local folder or an fsspec URL), at ``root``/``top``."""
    if "://" not in root or root.startswith("file://"):
        return LocalStore(os.path.abspath(root.removeprefix("file://")), top)
    import fsspec

    try:
        fs, base = fsspec.core.url_to_fs(root, **dict(storage_options or {}))
    except (ValueError, ImportError) as exc:
        raise InventoryError(f"cannot open {shown(root)}: {exc}") from None
    return FsspecStore(fs, f"{base.rstrip('/')}/{top}")
