"""The Distribution registry's storage layout, as pure path parsing (no I/O).

Under ``<root>/docker/registry/v2`` the registry (2.x, and v3 alike) keeps::

    blobs/<alg>/<hex[:2]>/<hex>/data                              every blob, once
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link     a manifest in <name>
    repositories/<name>/_manifests/tags/<tag>/current/link        where <tag> points
    repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link  every digest it had
    repositories/<name>/_layers/<alg>/<hex>/link                  a blob linked into <name>
    repositories/<name>/_uploads/<uuid>/{data,startedat,hashstates/...}  unfinished uploads

``<name>`` has one or more components, none starting with ``_`` (the reference
grammar forbids it), so the first ``_``-component ends it. A link file holds a
digest; the registry trusts its content, not its path, and so do we.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidDigest, InventoryError
from ..registry._digest import validate_digest

V2 = "docker/registry/v2"

_HEX = r"[a-f0-9]{32,}"
_ALG = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*"
# the fan-out folder is the hex's first two digits: a blob elsewhere is not where the
# registry (or a read of that digest) looks
_BLOB = re.compile(rf"blobs/({_ALG})/([a-f0-9]{{2}})/(\2[a-f0-9]{{30,}})/data")
# any folder names down to the first ``_``-folder: the scan checks the name against
# the reference grammar (the registry's collector stops on a name it cannot parse)
_REPO = re.compile(r"repositories/((?:[^/_][^/]*/)*?[^/_][^/]*)/(_[a-z]+)/(.+)")
_REVISION = re.compile(rf"revisions/({_ALG})/({_HEX})/link")
_CURRENT = re.compile(r"tags/([^/]+)/current/link")
_TAG_INDEX = re.compile(rf"tags/([^/]+)/index/({_ALG})/({_HEX})/link")
_LAYER = re.compile(rf"({_ALG})/({_HEX})/link")
_UPLOAD = re.compile(r"([^/]+)/(data|startedat)")


@dataclass(frozen=True)
class Entry:
    """One file of the storage that means something: ``kind`` is ``blob``,
    ``revision``, ``tag``, ``tag_index``, ``layer``, ``upload_data``,
    ``upload_started``, ``folder`` (one of :data:`FOLDERS` of a repository), or
    ``link`` (a symbolic link, never followed); the other fields are what its path
    says."""

    kind: str
    repository: str | None = None
    digest: str | None = None  # from the path
    tag: str | None = None
    upload: str | None = None
    folder: str | None = None


#: a repository's folders that decide what a garbage collector visits: 2.x finds a
#: repository by its ``_layers``, 3.x by its ``_manifests``, and ``--delete-untagged``
#: reads ``_manifests/tags`` (an emptied folder stays on a filesystem, not on S3)
FOLDERS = ("_layers", "_manifests", "_manifests/tags", "_uploads")
_FOLDER = re.compile(r"repositories/((?:[^/_][^/]*/)*?[^/_][^/]*)/(_layers|_manifests"
                     r"|_manifests/tags|_uploads)")


#: what a store's listing yields: (what the file is, its path, store-specific details
#: for its ``details()``; for a ``refused`` entry, why it was refused)
Found = tuple[Entry, str, Any]
REFUSED = Entry("refused")
LINK_REFUSED = "a symbolic link: not followed"


def too_large(size: int, limit: int) -> InventoryError:
    return InventoryError(f"{size:,} bytes, more than the {limit:,} such a file holds: "
                          "not read")


def classify(relative: str) -> Entry | None:
    """What the file at ``relative`` (a path below ``docker/registry/v2``) is, or None
    for files the layout does not give a meaning (hash states, stray files)."""
    blob = _BLOB.fullmatch(relative)
    if blob:
        return Entry("blob", digest=f"{blob.group(1)}:{blob.group(3)}")
    repo = _REPO.fullmatch(relative)
    if repo is None:
        return None
    name, area, rest = repo.groups()
    if area == "_manifests":
        if match := _REVISION.fullmatch(rest):
            return Entry("revision", name, f"{match.group(1)}:{match.group(2)}")
        if match := _CURRENT.fullmatch(rest):
            return Entry("tag", name, tag=match.group(1))
        if match := _TAG_INDEX.fullmatch(rest):
            return Entry("tag_index", name, f"{match.group(2)}:{match.group(3)}",
                         tag=match.group(1))
    elif area == "_layers":
        if match := _LAYER.fullmatch(rest):
            return Entry("layer", name, f"{match.group(1)}:{match.group(2)}")
    elif area == "_uploads" and (match := _UPLOAD.fullmatch(rest)):
        kind = "upload_data" if match.group(2) == "data" else "upload_started"
        return Entry(kind, name, upload=match.group(1))
    return None


def classify_folder(relative: str) -> Entry | None:
    """The repository folder at ``relative`` (one of :data:`FOLDERS`), or None."""
    match = _FOLDER.fullmatch(relative)
    return Entry("folder", match.group(1), folder=match.group(2)) if match else None


_ALGORITHM = re.compile(_ALG)
_HEX_NAME = re.compile(_HEX)
_TWO_HEX = re.compile(r"[a-f0-9]{2}")


def is_algorithm(name: str) -> bool:
    """A folder name the layout uses for a digest algorithm (``sha256``)."""
    return _ALGORITHM.fullmatch(name) is not None


def is_hex(name: str) -> bool:
    """A folder name the layout uses for a digest's hex (32 characters or more)."""
    return _HEX_NAME.fullmatch(name) is not None


def is_prefix(name: str) -> bool:
    """The two-hex-digit folder that fans blobs out."""
    return _TWO_HEX.fullmatch(name) is not None


def link_target(content: bytes) -> str | None:
    """The digest a link file holds, or None when it holds anything else (empty,
    garbled, a path): such a link is reported, never followed."""
    try:
        text = content.decode("ascii")
        return validate_digest(text) if text == text.strip() else None
    except (UnicodeDecodeError, InvalidDigest):
        return None


def blob_path(digest: str) -> str:
    """Where a blob's data lives, below ``docker/registry/v2``. Only for a digest that
    passed :func:`link_target` (or came from a blob path): nothing else is joined."""
    algorithm, hexa = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexa[:2]}/{hexa}/data"
