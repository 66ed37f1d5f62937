"""A registry storage in a local folder, walked with os.scandir (several times
faster than fsspec's local walk), bounded and contained on a tree anyone may have
edited:

- no symbolic link is followed at any depth below the root: each folder is entered
  only when its parent's listing says it is a folder, not a link, and the layout's
  fixed names (``blobs``, ``revisions``, ``tags`` ...), which are joined rather than
  listed, are opened ``O_NOFOLLOW``; a link is reported instead (it could lead out
  of the root), and every file read is checked, once open, to be the file below the
  root that was listed;
- only regular files are read: each is opened as a path (``O_PATH``), looked at, and
  only a regular file is opened for reading (a FIFO would block forever, a device
  could act on being opened); each read has a cap on its bytes that the caller gives;
- the walk is a loop, not a recursion, and stops at a depth no repository name can
  reach;
- what cannot be listed or read (a file where the layout has a folder, a folder the
  scan may not open, a path too long) is refused, not passed over: the registry's
  collector would stop there.

What is refused is a ``refused`` entry naming the path and why; the scan goes on.
Hard links and bind mounts are not links: the kernel shows their files as the tree's
own, and so does the scan.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

from .._errors import InventoryError
from .._text import printable
from ._layout import (
    FOLDERS,
    LINK_REFUSED,
    REFUSED,
    Entry,
    Found,
    is_algorithm,
    is_hex,
    is_prefix,
    too_large,
)

#: the most ``/``-separated components a repository name has: the reference grammar
#: allows 255 characters, so 128 one-character components. Deeper is not walked.
MAX_COMPONENTS = 128


@dataclass(frozen=True, slots=True)
class _Folder:
    """A folder a listing found: its name and path (os.scandir of a descriptor gives
    entries without their folder's path). Not a tuple: a tuple is a :data:`Found`."""

    name: str
    path: str

_CLOEXEC, _NOFOLLOW = getattr(os, "O_CLOEXEC", 0), getattr(os, "O_NOFOLLOW", 0)
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
#: O_PATH opens nothing but a handle: what it names is looked at before it is opened
#: for reading, through /proc (Linux); elsewhere O_NONBLOCK keeps a FIFO's open from
#: blocking, and what was opened is looked at after
_LOOK_FIRST = hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd")
_PATH_FLAGS = getattr(os, "O_PATH", 0) | _NOFOLLOW | _CLOEXEC
#: what a read asks for past a file's listed size, should it have grown
_GROWTH = 64 * 1024
#: threads reading ahead of the caller, files per chunk each reads, and the largest
#: file one reads ahead (a larger one waits for its turn). Four: a cold page cache
#: (blobs' pages dropped, 30k revisions) scans in 11 s instead of 50; more threads
#: cost a warm one time in the kernel (eight: 100k revisions 25 -> 34 s)
_READERS, _CHUNK, _AHEAD_MOST = 4, 32, 256 * 1024
_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | _CLOEXEC)


def iso_time(value: Any) -> str | None:
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
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # absent is nothing; anything else is said
                yield (REFUSED, path, _unlisted(path, exc))
            return
        try:
            children = list(os.scandir(fd))
        except OSError as exc:
            yield (REFUSED, path, _unlisted(path, exc))
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
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # an emptied folder is nothing (the registry
                yield (REFUSED, path, _unlisted(path, exc))  # deletes files, not folders)
            return
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
                    # a digest under another prefix is not where the registry looks,
                    # nor where a read of that digest would go
                    if (isinstance(digest, tuple) or not is_hex(digest.name)
                            or not digest.name.startswith(prefix.name)):
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
                    repository = "/".join(parts)
                    if child.name in FOLDERS:
                        yield (Entry("folder", repository, folder=child.name), child.path,
                               None)
                    yield from self._area(child.path, child.name, repository)

    def _area(self, path: str, area: str, repository: str) -> Iterator[Found]:
        if area == "_layers":
            yield from self._digests(path, "layer", repository)
        elif area == "_manifests":
            yield from self._digests(f"{path}/revisions", "revision", repository)
            if _is_folder(f"{path}/tags"):  # a link there is refused just below
                yield (Entry("folder", repository, folder="_manifests/tags"),
                       f"{path}/tags", None)
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
        return info.st_size, iso_time(info.st_mtime)

    def close(self) -> None:
        """Nothing is kept open between reads."""

    @staticmethod
    def size(handle: str | os.stat_result) -> int:
        """The bytes of a listed file."""
        return (handle if isinstance(handle, os.stat_result) else os.lstat(handle)).st_size

    @staticmethod
    def md5(handle: Any) -> None:
        """No file's digest is known without reading it here (reading is cheap)."""
        return None

    def read(self, paths: Iterable[str], *, limit: int, sizes: Any = None
             ) -> Iterator[tuple[str, bytes | Exception]]:
        """Each file's bytes, or why not, in the order given: never more than ``limit``
        bytes read (``sizes``, listed sizes, are not needed: each file is looked at as
        it is read). Many files are read by a few threads at once, a chunk each, ahead
        of the caller: a cold page cache answers each read from the disk, which serves
        many at once (a warm one costs the threads little)."""
        # /proc/self/fd opened once: each file's link there is then one name below it
        procfd = os.open("/proc/self/fd", _FOLDER_FLAGS) if _LOOK_FIRST else None
        try:
            if not isinstance(paths, list) or len(paths) <= _CHUNK:
                for path in paths:
                    yield path, self._one(path, limit, procfd)
                return
            yield from self._ahead(paths, limit, procfd)
        finally:
            if procfd is not None:
                os.close(procfd)

    def _ahead(self, paths: list[str], limit: int, procfd: int | None
               ) -> Iterator[tuple[str, bytes | Exception]]:
        """:meth:`read` by :data:`_READERS` threads, at most twice as many chunks in
        flight; a file past :data:`_AHEAD_MOST` bytes is read here, when its turn
        comes (what waits in memory stays small)."""
        chunks = (paths[at:at + _CHUNK] for at in range(0, len(paths), _CHUNK))
        with ThreadPoolExecutor(_READERS, thread_name_prefix="reginsight-read") as pool:
            pending = deque((chunk, pool.submit(self._chunk, chunk, limit, procfd))
                            for chunk in islice(chunks, 2 * _READERS))
            while pending:
                chunk, future = pending.popleft()
                if (following := next(chunks, None)) is not None:
                    pending.append((following, pool.submit(self._chunk, following, limit,
                                                           procfd)))
                for path, content in zip(chunk, future.result(), strict=True):
                    yield path, (self._one(path, limit, procfd) if content is None
                                 else content)

    def _chunk(self, paths: list[str], limit: int, procfd: int | None
               ) -> list[bytes | Exception | None]:
        return [self._one(path, limit, procfd, most=_AHEAD_MOST) for path in paths]

    def _one(self, path: str, limit: int, procfd: int | None, most: int | None = None
             ) -> bytes | Exception | None:
        try:
            return self._read(path, limit, procfd, most)
        except (OSError, InventoryError) as exc:
            return exc

    def _read(self, path: str, limit: int, procfd: int | None, most: int | None = None
              ) -> bytes | None:
        """The bytes of the file at ``path``; None, unread, when it holds more than
        ``most``."""
        if procfd is not None:  # only what is a regular file now is opened for reading
            handle = os.open(path, _PATH_FLAGS)
            try:
                size = self._check(handle, path, limit, procfd)
                if most is not None and size > most:
                    return None
                # the handle's link opens the very file just looked at (an inode keeps
                # its type; a rename since does not change what the handle holds)
                fd = os.open(str(handle), _READ_FLAGS, dir_fd=procfd)
            finally:
                os.close(handle)
        else:
            fd = os.open(path, _READ_FLAGS | _NOFOLLOW)
        try:
            if procfd is None:
                size = self._check(fd, path, limit, None)  # what was opened
                if most is not None and size > most:
                    return None
            return _read_open(fd, size, limit)
        finally:
            os.close(fd)

    def _check(self, fd: int, path: str, limit: int, procfd: int | None) -> int:
        """The size of the open file, after checking it may be read."""
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InventoryError(_not_regular(info.st_mode))
        if not self._inside(fd, path, procfd):
            raise InventoryError("reached through a symbolic link, out of the storage: "
                                 "not read")
        if info.st_size > limit:
            raise too_large(info.st_size, limit)
        return info.st_size

    def _inside(self, fd: int, path: str, procfd: int | None) -> bool:
        """Whether the open file is the one at ``path`` below the storage's real top:
        a folder on the way swapped for a link since the listing is caught here."""
        opened = (os.readlink(str(fd), dir_fd=procfd) if procfd is not None
                  else _opened_path(fd))
        if opened is None:  # no way to ask this system: the path, resolved now
            opened = os.path.realpath(path)
        return opened == f"{self._real_top}{path[len(self.top):]}"

    def multipart_sizes(self) -> dict[str, int]:
        return {}


def _read_open(fd: int, size: int, limit: int) -> bytes:
    """The bytes of an open regular file of ``size`` bytes (as fstat said), never more
    than ``limit`` + 1 read: asked for what it holds plus one, not for ``limit`` (a
    read allocates what it asks for: 16 MiB for each config would cost more than the
    read itself)."""
    chunks, got, ask = [], 0, min(size, limit) + 1
    while got <= limit:
        chunk = os.read(fd, ask)
        chunks.append(chunk)
        got += len(chunk)
        if not chunk or (len(chunk) < ask and got >= size):  # its end
            break
        ask = min(limit + 1 - got, _GROWTH)
    if got > limit:  # it grew since it was looked at
        raise too_large(got, limit)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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


def _unlisted(path: str, exc: OSError) -> str:
    """Why ``path`` could not be looked at: the registry's collector stops there too."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
        return LINK_REFUSED  # Linux says ENOTDIR for a link opened O_DIRECTORY
    if exc.errno == errno.ENOTDIR:
        return "a file where the layout has a folder (or one on its way): not read"
    return f"cannot be looked at: {printable(exc.strerror or exc)}"


def _is_folder(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:  # absent; anything odd is said when it is listed
        return False


def _refused_only(found: _Folder | Found) -> Iterator[Found]:
    """Of a folder the layout does not name, only a refusal (a link) is reported."""
    if isinstance(found, tuple):
        yield found


