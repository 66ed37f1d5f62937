"""moto's S3, less its costs S3 does not have: an indexed listing and fast answers.

Installed by :mod:`benchmarks.s3_standin` in the stand-in's process (see its docstring
for what each fix is and what it measured): ``install_indexed_listing`` patches moto's
``list_objects``/``list_objects_v2`` with a sorted index of key names, rebuilt after any
write (``changed``); ``fast_answer`` answers plain GetObject/HeadObject and the
listings from moto's backend objects, as moto would; ``put_objects`` stores many
objects as a plain PutObject stores each.
"""

from __future__ import annotations

import bisect
import functools
import os
import random
import re
import string
import struct
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

PRESIGNED = {"AWSAccessKeyId", "Signature", "Expires"}
LIST_PARAMS = {"prefix", "delimiter", "marker", "max-keys", "encoding-type", "list-type",
                "continuation-token", "start-after", "fetch-owner"}

# --- the listing index -------------------------------------------------------------------

_generation = 0  # bumped by every write; an index built at an older one is stale
_index_lock = threading.Lock()


def changed() -> None:
    """Mark every listing index stale (a write happened)."""
    global _generation
    with _index_lock:
        _generation += 1


@dataclass
class _Index:
    generation: int
    names: list[str]
    folders: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def _names(bucket: Any) -> list[str]:
    """The bucket's key names in moto's order (Python string order), from an index
    current at this generation."""
    index = getattr(bucket, "_standin_index", None)
    if index is not None and index.generation == _generation:
        return index.names
    with _index_lock:
        index = getattr(bucket, "_standin_index", None)
        if index is None or index.generation != _generation:
            # dict.copy runs in C under the GIL: no "changed size during iteration"
            index = _Index(_generation, sorted(dict.copy(bucket.keys)))
            bucket._standin_index = index
        return index.names


def _after_folder(folder: str) -> str:
    """The least string above every string that starts with ``folder``."""
    return folder[:-1] + chr(ord(folder[-1]) + 1)


def _walk(bucket: Any, prefix: str, delimiter: str | None, after: str | None
          ) -> Iterator[Any]:
    """moto's listing in order: a FakeKey per key, a str per folder (CommonPrefix),
    only those named above ``after``; delete markers give folders, never keys (as
    moto's own walk)."""
    from moto.s3.models import FakeDeleteMarker

    names = _names(bucket)
    at = bisect.bisect_left(names, prefix)
    if after is not None:
        at = max(at, bisect.bisect_right(names, after))
    while at < len(names):
        name = names[at]
        if not name.startswith(prefix):
            return
        cut = name.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            folder = name[:cut + len(delimiter)]
            at = bisect.bisect_left(names, _after_folder(folder), at)
            if after is None or folder > after:
                yield folder
            continue
        at += 1
        key = bucket.keys.get(name)
        if key is not None and not isinstance(key, FakeDeleteMarker):
            yield key


def _take(items: Iterator[Any], count: int) -> list[Any]:
    out = []
    for item in items:
        out.append(item)
        if len(out) >= count:
            break
    return out


def install_indexed_listing() -> None:
    """Replace S3Backend.list_objects and list_objects_v2 by indexed ones."""
    from moto.s3.models import FakeTableStorageBucket, S3Backend

    if hasattr(S3Backend, "_standin_moto"):
        return
    moto_v1, moto_v2 = S3Backend.list_objects, S3Backend.list_objects_v2

    @functools.wraps(moto_v1)
    def list_objects(self: Any, bucket: Any, prefix: str | None, delimiter: str | None,
                     marker: str | None, max_keys: int | None) -> Any:
        if isinstance(bucket, FakeTableStorageBucket) or max_keys is None:
            return moto_v1(self, bucket, prefix, delimiter, marker, max_keys)
        prefix = prefix or ""
        limit = (self._pagination_tokens.get(marker) or marker) if marker else None
        keys = [item for item in _take((item for item in _walk(bucket, prefix, delimiter,
                                                               limit)
                                        if not isinstance(item, str)), max_keys + 1)]
        keys, truncated, next_marker = self._truncate_result(keys, max_keys)
        folders: list[str] = []
        if delimiter:  # moto answers every folder on every page, whatever the marker
            index = bucket._standin_index
            folders = index.folders.get((prefix, delimiter))
            if folders is None:
                folders = [item for item in _walk(bucket, prefix, delimiter, None)
                           if isinstance(item, str)]
                index.folders[prefix, delimiter] = folders
        return keys, list(folders), truncated, next_marker

    @functools.wraps(moto_v2)
    def list_objects_v2(self: Any, bucket: Any, prefix: str | None, delimiter: str | None,
                        continuation_token: str | None, start_after: str | None,
                        max_keys: int) -> Any:
        if continuation_token:
            limit = self._pagination_tokens.get(continuation_token)
            if limit is None:  # moto fails on it: let it
                return moto_v2(self, bucket, prefix, delimiter, continuation_token,
                               start_after, max_keys)
        else:
            limit = start_after or None
        if isinstance(bucket, FakeTableStorageBucket):
            return moto_v2(self, bucket, prefix, delimiter, continuation_token,
                           start_after, max_keys)
        items = _take(_walk(bucket, prefix or "", delimiter, limit), max_keys + 1)
        return self._truncate_result(items, max_keys)

    S3Backend.list_objects, S3Backend.list_objects_v2 = list_objects, list_objects_v2
    S3Backend._standin_moto = moto_v1, moto_v2


def remove_indexed_listing() -> None:
    """Put moto's own listing back (install_indexed_listing undone)."""
    from moto.s3.models import S3Backend

    if hasattr(S3Backend, "_standin_moto"):
        S3Backend.list_objects, S3Backend.list_objects_v2 = S3Backend._standin_moto
        del S3Backend._standin_moto


# --- fast answers --------------------------------------------------------------------------

#: moto's S3 module answers objects from a bucket's backend; these settings and headers
#: make it answer otherwise (auth, a chosen account, CORS, conditions, SSE): moto's turn
_MOTO_HEADERS = ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                 "HTTP_IF_UNMODIFIED_SINCE", "HTTP_ORIGIN", "HTTP_X_MOTO_ACCOUNT_ID",
                 "HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
#: a path-style host moto reads the bucket from the path for (an IP address, localhost)
_PATH_STYLE_HOST = re.compile(r"^(localhost[^.]*|(\d{1,3}\.){3}\d{1,3})(:\d+)?$")
_ALPHANUMERIC = string.ascii_letters + string.digits
_S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: moto's Owner of every listed key
_OWNER = ("<Owner><DisplayName>webfile</DisplayName><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e"
          "7faeebf76c078efc7c6caea54ba06a</ID></Owner>")


@dataclass(frozen=True)
class _Request:
    """What moto reads of a request: its method and (case-insensitive) headers."""

    method: str
    environ: dict[str, Any]

    @property
    def headers(self) -> _Request:
        return self

    def get(self, name: str, default: Any = None) -> Any:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"), default)


def _plain(params: dict[str, list[str]]) -> dict[str, list[str]]:
    """The query less a signature's parameters (and botocore's ``x-id``, which names the
    operation and which moto does not read)."""
    return {name: value for name, value in params.items()
            if not name.lower().startswith("x-amz-") and name not in PRESIGNED
            and name != "x-id"}


def _backend(environ: dict[str, Any], params: dict[str, list[str]]) -> Any:
    """The S3 backend moto would answer this request from, or None where moto's own
    machinery decides more than that (a chosen account, auth on, a virtual host)."""
    from moto import settings
    from moto.core.responses import BaseResponse
    from moto.core.utils import extract_region_from_aws_authorization
    from moto.iam.models import get_account_id_from
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    if (float("inf") != settings.INITIAL_NO_AUTH_ACTION_COUNT
            or "MOTO_ACCOUNT_ID" in os.environ
            or any(name in environ for name in _MOTO_HEADERS)
            or not _PATH_STYLE_HOST.match(environ.get("HTTP_HOST", ""))):
        return None
    authorization = environ.get("HTTP_AUTHORIZATION")
    if authorization is None and "Signature" not in params and "X-Amz-Signature" not in params:
        return None  # anonymous: moto asks the object's ACL
    match = BaseResponse.access_key_regex.search(authorization or "")
    access_key = (match.group(1) if match else
                  params.get("AWSAccessKeyId", ["AKIAEXAMPLE"])[0])
    region = extract_region_from_aws_authorization(authorization or "") or "us-east-1"
    return s3_backends[get_account_id_from(access_key)][get_partition(region)]


def _bucket(backend: Any, name: str) -> Any:
    """The bucket if moto's answer depends on its keys alone (no policy, no access log)."""
    from moto.s3.models import FakeBucket

    bucket = backend.buckets.get(name)
    if type(bucket) is not FakeBucket or bucket.policy or bucket.logging:
        return None
    return bucket


def _request_id(headers: dict[str, str]) -> None:
    """moto's x-amzn-requestid: 52 random letters and digits (one call, not 52)."""
    headers["x-amzn-requestid"] = "".join(random.choices(_ALPHANUMERIC, k=52))  # noqa: S311 - an id, not a secret


def _object(environ: dict[str, Any], method: str, bucket_name: str, key_name: str,
            params: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes] | None:
    """moto's answer to a plain GetObject/HeadObject of a key that is there (its headers
    built as moto builds them, a Range cut by moto's own code); None for moto to answer
    (a missing key or bucket, a query, a condition, an archived object, a bad range)."""
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response
    from moto.s3.utils import ARCHIVE_STORAGE_CLASSES

    if _plain(params):
        return None
    backend = _backend(environ, params)
    bucket = backend and _bucket(backend, bucket_name)
    key = bucket and bucket.keys.get(key_name)
    if not isinstance(key, FakeKey) or key.storage_class in ARCHIVE_STORAGE_CLASSES:
        return None
    key.advance()  # as moto's get_object (a restore's state moves on)
    checksum = environ.get("HTTP_X_AMZ_CHECKSUM_MODE") == "ENABLED" and key.checksum_algorithm
    headers: dict[str, str] = {}
    if method == "GET":
        if key.version_id != "null":
            headers["x-amz-version-id"] = key.version_id
        headers.update(key.response_dict)
        if checksum:
            value = key.checksum_value
            if key.checksum_type == "COMPOSITE":
                value = f"{value}-{key.checksum_parts}"
            headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = value
            if key.checksum_type:
                headers["x-amz-checksum-type"] = key.checksum_type
        headers.update(key.metadata)
        headers["Accept-Ranges"] = "bytes"
        body = key.value
    else:
        headers.update(key.metadata)
        headers.update(key.response_dict)
        headers["Accept-Ranges"] = "bytes"
        if checksum:
            headers[f"x-amz-checksum-{key.checksum_algorithm.lower()}"] = key.checksum_value
        body = b""
    _request_id(headers)
    if body and "content-type" not in (name.lower() for name in headers):
        headers["content-type"] = "application/xml"
    status = 200
    if environ.get("HTTP_RANGE"):
        from moto.s3.exceptions import S3ClientError

        try:  # moto's method reads nothing of its instance
            status, headers, body = S3Response._handle_range_header(
                None, _Request(method, environ), headers, body)  # type: ignore[arg-type]
        except S3ClientError:  # an unsatisfiable range: moto's error answer
            return None
        if status == 416:
            return None
    return status, headers, body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _element(name: str, text: Any) -> str:
    if isinstance(text, bool):
        text = "true" if text else "false"
    text = _xml(str(text))
    return f"<{name}>{text}</{name}>" if text else f"<{name}/>"


def _contents(key: Any, encoding: str | None, *, owner: bool, checksum: bool) -> str:
    return "".join((
        "<Contents>", _element("Key", key.safe_name(encoding)),
        _element("LastModified", key.last_modified_ISO8601), _element("ETag", key.etag),
        _element("ChecksumAlgorithm", key.checksum_algorithm)
        if checksum and key.checksum_algorithm else "",
        _element("Size", key.size),
        _element("StorageClass", key.storage_class) if key.storage_class is not None else "",
        _OWNER if owner else "", "</Contents>"))


def _listing(environ: dict[str, Any], bucket_name: str, params: dict[str, list[str]]
             ) -> tuple[int, dict[str, str], bytes] | None:
    """moto's ListObjectsV2 / ListObjects answer, its XML written here (moto renders it
    through a botocore-model serializer, ~0.1 ms per key): the same elements in the same
    order, moto's choices kept (v2 url-encodes Prefix and CommonPrefixes, v1 only Key;
    v1 names each key's Owner, v2 only with fetch-owner). None for moto to answer."""
    from moto import settings
    from moto.s3.models import FakeKey

    backend = _backend(environ, params)
    bucket = backend and _bucket(backend, bucket_name)
    if not bucket:
        return None
    query = {name: values[0] for name, values in _plain(params).items()}
    v2 = query.get("list-type") == "2"
    token = query.get("continuation-token")
    if v2 and token is not None and token not in backend._pagination_tokens:
        return None  # "" or a token moto never gave: moto's error
    try:
        max_keys = int(query.get("max-keys", settings.get_s3_default_max_keys()))
    except ValueError:
        return None
    prefix, delimiter = query.get("prefix"), query.get("delimiter")
    encoding = query.get("encoding-type")
    out = ['<?xml version="1.0" encoding="utf-8"?>\n',
           f'<ListBucketResult xmlns="{_S3_XMLNS}">']
    if v2:
        start_after = query.get("start-after")
        items, truncated, next_token = backend.list_objects_v2(
            bucket=bucket, prefix=prefix, delimiter=delimiter, continuation_token=token,
            start_after=start_after, max_keys=max_keys)
        keys = [item for item in items if isinstance(item, FakeKey)]
        folders = [item for item in items if not isinstance(item, FakeKey)]
        if encoding == "url":
            prefix = urllib.parse.quote(prefix) if prefix else ""
            folders = [urllib.parse.quote(folder) for folder in folders]
        out.append(_element("IsTruncated", truncated))
        owner = bool(query.get("fetch-owner"))
        out += [_contents(key, encoding, owner=owner, checksum=True) for key in keys]
        out += [_element("Name", bucket.name), _element("Prefix", prefix or "")]
    else:
        keys, folders, truncated, next_token = backend.list_objects(
            bucket=bucket, prefix=prefix, delimiter=delimiter, marker=query.get("marker"),
            max_keys=max_keys)
        out.append(_element("IsTruncated", truncated))
        if next_token:
            out.append(_element("NextMarker", next_token))
        out += [_contents(key, encoding, owner=True, checksum=False) for key in keys]
        out.append(_element("Name", bucket.name))
        if prefix is not None:
            out.append(_element("Prefix", prefix))
    if delimiter:
        out.append(_element("Delimiter", delimiter))
    out.append(_element("MaxKeys", max_keys))
    if delimiter:
        out += [f"<CommonPrefixes>{_element('Prefix', folder)}</CommonPrefixes>"
                for folder in folders]
    if encoding:
        out.append(_element("EncodingType", encoding))
    if v2:
        out.append(_element("KeyCount", len(items)))
        if next_token:
            out.append(_element("NextContinuationToken", next_token))
        if not token and start_after:
            out.append(_element("StartAfter", start_after))
    out.append("</ListBucketResult>")
    headers = {"Content-Type": "application/xml", "server": "amazon.com"}
    _request_id(headers)
    return 200, headers, "".join(out).encode()


def pack_objects(objects: Iterable[tuple[str, bytes]]) -> bytes:
    """(key, content) pairs as the body of a POST to PUT_PATH + bucket."""
    out = []
    for key, data in objects:
        name = key.encode()
        out += [struct.pack(">II", len(name), len(data)), name, data]
    return b"".join(out)


def put_objects(bucket_name: str, body: bytes) -> int:
    """Store pack_objects' pairs in the bucket as moto stores a plain PutObject (no
    checksum, metadata or storage class asked: the ETag the MD5 of the content);
    returns how many."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend, at, count = s3_backends[DEFAULT_ACCOUNT_ID]["aws"], 0, 0
    while at < len(body):
        size, length = struct.unpack_from(">II", body, at)
        at += 8
        name = body[at:at + size].decode()
        backend.put_object(bucket_name, name, body[at + size:at + size + length])
        at, count = at + size + length, count + 1
    return count


def fast_answer(environ: dict[str, Any], method: str, path: str, query: str
                ) -> tuple[int, dict[str, str], bytes] | None:
    """The stand-in's own answer to a GET/HEAD it answers as moto would, without moto's
    flask app and response machinery; None for the rest (moto answers those)."""
    raw = urllib.parse.unquote(urllib.parse.urlparse(environ.get("RAW_URI") or path).path)
    bucket_name, _, key_name = raw.lstrip("/").partition("/")
    if not bucket_name:
        return None
    params = parse_qs(query, keep_blank_values=True)
    if key_name:
        answer = _object(environ, method, bucket_name, key_name, params)
    elif method == "GET" and set(_plain(params)) <= LIST_PARAMS:
        answer = _listing(environ, bucket_name, params)
    else:
        return None
    if answer is None:
        return None
    status, headers, body = answer
    # as flask's Response: its own Content-Length in place of moto's (the same number)
    headers = {("Content-Length" if name == "content-length" else name): value
               for name, value in headers.items()}
    if "Content-Length" not in headers:
        headers["Content-Length"] = str(len(body))
    if not _cors_disabled():
        headers["Access-Control-Allow-Origin"] = "*"  # flask-cors on moto's app
    return status, headers, body


def _cors_disabled() -> bool:
    from moto.settings import DISABLE_GLOBAL_CORS

    return DISABLE_GLOBAL_CORS
