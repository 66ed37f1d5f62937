"""An S3 stand-in with S3's cost model: moto's server, less moto's own artifacts.

    python -m benchmarks.s3_standin [-H 127.0.0.1] [-p PORT] [--log FILE]
                                    [--no-keepalive] [--no-index] [--no-fast]

Plain ``moto_server`` charges for things S3 does not, which would be counted against
whichever client makes more requests. Fixed here, in a process of its own:

- **Backend lookup**: moto's dispatcher calls ``moto.backends.list_of_moto_modules()``
  on every request, ~180 ``os.path.isdir`` calls each time; cached once (same answer).
- **Keep-alive**: werkzeug's development server closes every connection ("Connection:
  close"), so every request paid a new TCP connection. Its handler here keeps HTTP/1.1
  connections open (the request body read in full first, a Content-Length on every
  answer), as S3 does; both the Go registry's client and s3fs reuse them.
- **Listing**: moto's ``list_objects``/``list_objects_v2`` walk and sort every key of the
  bucket on every page: a paged listing costs O(bucket x pages). Here a page costs
  O(log N + page): a sorted index of the bucket's key names (``bisect``), a folder
  skipped with one bisect, the index rebuilt lazily after any write (any request other
  than GET/HEAD bumps a generation). The answers are moto's own, token for token
  (tests/test_s3_standin.py compares them), moto's quirks included: a v1 listing
  with a delimiter returns every CommonPrefix on every page, and a v2 StartAfter inside
  a folder leaves that folder out.
- **Answers**: moto answers every request through flask, its dispatcher and its
  response machinery, and renders a listing through a botocore-model serializer: ~1.2 ms
  CPU per GetObject/HeadObject and ~165 ms per ListObjectsV2 page of 1,000 keys (~215
  ms for ListObjects), one Python process serving them all under its GIL, where S3
  serves requests in parallel at no cost a client sees. ``fast_answer`` answers the
  common ones itself from moto's backend objects, as moto would: a plain GetObject /
  HeadObject (no query but a presigned URL's signature; a ``Range`` cut by moto's own
  code, with its 206 and Content-Range) with moto's headers (ETag, Last-Modified,
  Content-Length, metadata, checksum when asked, ...), and ListObjectsV2 / ListObjects
  with the same XML elements in the same order, moto's choices kept (``EncodingType=url``
  quotes Key, and in v2 Prefix and CommonPrefixes; v1 names an Owner). Anything else
  goes to moto: a missing key or bucket (its 404), an unsatisfiable range (its 416),
  conditions, versions, CORS, a bucket policy or access log, auth, other queries.
  tests/test_s3_standin.py compares both answers, byte for byte, over hundreds of
  requests. Measured (16 client threads, a loaded 2-CPU machine): GetObject 1.20 ->
  0.40 ms CPU, HeadObject 1.19 -> 0.41 ms, ListObjectsV2 page of 1,000 keys 166 -> 9.6
  ms, ListObjects 216 -> ~10-13 ms; what is left of a GET is the HTTP server's own
  (werkzeug's request handler, sockets, threads).
- **Writing a tree**: ``POST /_standin/put/BUCKET`` (``StandinServer.put_objects``)
  stores many objects straight into moto's backend, as a plain PutObject stores each
  (the ETag the MD5 of the content), ~0.02 ms each instead of ~1.7 ms plus a client's
  request; counted as puts.
- **Counting**: every request is counted by kind (list / get / head / put / other) and
  by operation (``GET ListObjectsV2 delimiter``, ...); ``GET /_standin/counts`` answers
  them as JSON (no bucket name starts with ``_``: no S3 client asks for that path).

``StandinServer`` starts it like tests.s3_server.S3Server starts moto (a free port,
stopped by its process id); ``standin(workdir, delay_ms)`` also starts a latency proxy
in front of it and stops both.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import io
import json
import os
import random
import re
import signal
import socket
import string
import struct
import sys
import threading
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.registry_server import free_port, launch, listening, stop_process
from tests.s3_server import S3Server, S3StartError

COUNTS_PATH = "/_standin/counts"
PUT_PATH = "/_standin/put/"  # + bucket: objects written straight into moto's backend
KINDS = ("list", "get", "head", "put", "other")

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
            if not name.lower().startswith("x-amz-") and name not in _PRESIGNED
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
    elif method == "GET" and set(_plain(params)) <= _LIST_PARAMS:
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


# --- the server ----------------------------------------------------------------------------

#: a presigned URL's signature (SigV2; SigV4's are X-Amz-*)
_PRESIGNED = {"AWSAccessKeyId", "Signature", "Expires"}
_LIST_PARAMS = {"prefix", "delimiter", "marker", "max-keys", "encoding-type", "list-type",
                "continuation-token", "start-after", "fetch-owner"}


def classify(method: str, path: str, query: str) -> tuple[str, str]:
    """(kind, operation) of a path-style S3 request, e.g. ("list", "ListObjectsV2
    delimiter"); kind is one of KINDS."""
    bucket, _, key = path.lstrip("/").partition("/")
    params = {name: value for name, value in parse_qs(query, keep_blank_values=True).items()
              if not name.lower().startswith("x-amz-") and name not in _PRESIGNED}
    if not key:
        if method == "GET" and bucket and set(params) <= _LIST_PARAMS:
            operation = "ListObjectsV2" if params.get("list-type") == ["2"] else "ListObjects"
            if params.get("delimiter", [""])[0]:
                operation += " delimiter"
            return "list", operation
        if method == "GET" and "uploads" in params:
            return "list", "ListMultipartUploads"
        return "other", "bucket"
    if method == "GET":
        return ("other", "ListParts") if "uploadId" in params else ("get", "GetObject")
    if method == "HEAD":
        return "head", "HeadObject"
    if method == "PUT":
        return "put", "UploadPart" if "partNumber" in params else "PutObject"
    return "other", "DeleteObject" if method == "DELETE" else "object"


class _Counting:
    """The WSGI app around moto's: counts requests, answers the GET/HEAD it can itself
    (fast_answer), bumps the listing generation after each write (before its answer
    leaves), answers GET /_standin/counts."""

    def __init__(self, app: Any, log: Path | None, *, fast: bool = True) -> None:
        self.app, self.lock, self.fast = app, threading.Lock(), fast
        self.kinds: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self.log = open(log, "a", buffering=1) if log else None  # noqa: SIM115

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {"kinds": {kind: self.kinds[kind] for kind in KINDS},
                    "operations": dict(self.operations),
                    "requests": sum(self.kinds.values())}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        if path == COUNTS_PATH:
            body = json.dumps(self.counts()).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if path.startswith(PUT_PATH) and method == "POST":
            try:
                count = put_objects(path[len(PUT_PATH):], environ["wsgi.input"].read())
            finally:
                changed()
            with self.lock:
                self.kinds["put"] += count
                self.operations["POST PutObject (written straight)"] += count
            start_response("204 No Content", [])
            return []
        kind, operation = classify(method, path, query)
        with self.lock:
            self.kinds[kind] += 1
            self.operations[f"{method} {operation}"] += 1
            if self.log:
                self.log.write(f"{method} {path}?{query}\n")
        if method in ("GET", "HEAD"):
            answer = fast_answer(environ, method, path, query) if self.fast else None
            if answer is None:
                return self.app(environ, start_response)
            status, headers, body = answer
            start_response(f"{status} {HTTPStatus(status).phrase.upper()}",
                           list(headers.items()))
            return [body]
        try:
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()
        finally:
            changed()


def _keep_alive_handler() -> type:
    from werkzeug.serving import WSGIRequestHandler

    class KeepAlive(WSGIRequestHandler):
        """werkzeug's handler, keeping HTTP/1.1 connections open: the request body is
        read in full before the app runs (nothing left unread on the connection), and
        every answer gets its length."""

        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # an answer is one write, but the small ones must not wait for an ACK
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_request(self, *args: Any) -> None:  # the access log costs CPU per request
            pass

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").lower().strip() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            environ = self.make_environ()  # wraps a chunked body in DechunkedInput
            if environ.get("wsgi.input_terminated"):
                body = environ["wsgi.input"].read()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            answer: list[Any] = []

            def start_response(status: str, headers: list, exc_info: Any = None) -> Any:
                answer[:] = [status, headers]
                return chunks.append

            chunks: list[bytes] = []
            try:
                result = self.server.app(environ, start_response)
                try:
                    chunks.extend(result)
                finally:
                    if hasattr(result, "close"):
                        result.close()
            except Exception as exc:  # noqa: BLE001 - as werkzeug: a 500, logged; then close
                self.log_error("error on %s %s: %r", self.command, self.path, exc)
                answer[:] = ["500 Internal Server Error", [("Content-Type", "text/plain")]]
                chunks = [b"internal error"]
                self.close_connection = True
            payload = b"".join(chunks)
            status, headers = answer
            code, _, reason = status.partition(" ")
            self.send_response(int(code), reason)
            sized = False
            for name, value in headers:
                if name.lower() in ("connection", "transfer-encoding"):
                    continue
                sized |= name.lower() == "content-length"
                self.send_header(name, value)
            bodiless = self.command == "HEAD" or int(code) in (204, 304) or int(code) < 200
            if not sized and not bodiless:
                self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self._headers_buffer.append(b"\r\n")
            self.wfile.write(b"".join(self._headers_buffer) + (b"" if bodiless else payload))
            self._headers_buffer = []
            self.wfile.flush()

    return KeepAlive


def serve(host: str, port: int, *, keepalive: bool = True, index: bool = True,
          fast: bool = True, log: Path | None = None) -> None:
    """Run the stand-in until SIGTERM/SIGINT."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    if index:
        install_indexed_listing()
    os.environ.setdefault("MOTO_PORT", str(port))
    app = _Counting(DomainDispatcherApplication(create_backend_app), log, fast=fast)
    handler = _keep_alive_handler() if keepalive else WSGIRequestHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    server.daemon_threads = True

    def stop(*_: Any) -> None:  # shutdown() waits for serve_forever: not from its thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


# --- starting it -----------------------------------------------------------------------------

@dataclass
class StandinServer(S3Server):
    """The stand-in in a process of its own, on a free port; S3Server's clients and
    registry configuration work on it unchanged."""

    keepalive: bool = True
    index: bool = True
    fast: bool = True
    log: Path | None = None

    def start(self, *, timeout: float = 30.0) -> StandinServer:
        self.port = self.port or free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.s3_standin", "-H", self.host,
                   "-p", str(self.port)]
        command += [] if self.keepalive else ["--no-keepalive"]
        command += [] if self.index else ["--no-index"]
        command += [] if self.fast else ["--no-fast"]
        command += ["--log", str(self.log)] if self.log else []
        checkout = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))}
        self.process = launch(command, self.workdir / "standin.log", env=env)
        if listening(self.process, self.host, self.port, timeout):
            return self
        output = (self.workdir / "standin.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise S3StartError(f"the S3 stand-in did not start on {self.endpoint}:\n{output}")

    def put_objects(self, bucket: str, objects: Iterable[tuple[str, bytes]]) -> None:
        """Write (key, content) pairs straight into the bucket (PUT_PATH), as a plain
        PutObject would store them, without a request each."""
        request = urllib.request.Request(  # noqa: S310 - http on loopback
            self.endpoint + PUT_PATH + bucket, method="POST", data=pack_objects(objects))
        with urllib.request.urlopen(request, timeout=600) as answer:  # noqa: S310 - http on loopback
            answer.read()

    def counts(self) -> dict[str, Any]:
        """Requests served so far: {"kinds": {kind: n}, "operations": {...},
        "requests": n}."""
        with urllib.request.urlopen(self.endpoint + COUNTS_PATH, timeout=30) as answer:  # noqa: S310 - http on loopback
            return json.loads(answer.read())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the stand-in's process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counted(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The requests served between two ``counts()``."""
    return {"kinds": {k: after["kinds"][k] - before["kinds"][k] for k in KINDS},
            "operations": {op: n - before["operations"].get(op, 0)
                           for op, n in after["operations"].items()
                           if n != before["operations"].get(op, 0)},
            "requests": after["requests"] - before["requests"]}


@dataclass
class Standin:
    """A running stand-in and the latency proxy in front of it."""

    server: StandinServer
    proxy_port: int
    delay_ms: float

    @property
    def proxied(self) -> str:
        return f"http://{self.server.host}:{self.proxy_port}"

    def endpoint(self, *, proxied: bool) -> str:
        return self.proxied if proxied else self.server.endpoint

    def storage_options(self, *, proxied: bool = True) -> dict[str, Any]:
        """What scan_storage hands to s3fs."""
        options = self.server.storage_options()
        options["client_kwargs"]["endpoint_url"] = self.endpoint(proxied=proxied)
        return options

    def registry_storage(self, bucket: str, root: str, version: str, *,
                         proxied: bool = True) -> dict[str, Any]:
        """The registry's ``storage:`` for that version's s3 driver (3.0 addresses the
        stand-in by path)."""
        storage = self.server.registry_storage(bucket, root)
        storage["s3"]["regionendpoint"] = self.endpoint(proxied=proxied)
        if version == "3.0":
            storage["s3"]["forcepathstyle"] = True
        return storage


@contextlib.contextmanager
def standin(workdir: Path, delay_ms: float = 20.0, *, log: Path | None = None
            ) -> Iterator[Standin]:
    """The stand-in and a latency proxy adding ``delay_ms`` per request/response round
    trip (half each way, plus one round trip for each new connection, as TCP's
    handshake), on free loopback ports; both stopped by process id on exit."""
    from benchmarks.latency_proxy import latency_proxy

    server = StandinServer(workdir, log=log).start()
    try:
        with latency_proxy(server.port, delay_ms / 2, handshake=True) as (port, _):
            yield Standin(server, port, delay_ms)
    finally:
        stop_process(server.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--log", type=Path, help="append each request's line to FILE")
    parser.add_argument("--no-keepalive", action="store_true",
                        help="werkzeug's own handler (a connection per request)")
    parser.add_argument("--no-index", action="store_true", help="moto's own listing")
    parser.add_argument("--no-fast", action="store_true",
                        help="moto answers every GET/HEAD (no fast_answer)")
    args = parser.parse_args()
    serve(args.host, args.port, keepalive=not args.no_keepalive, index=not args.no_index,
          fast=not args.no_fast, log=args.log)


if __name__ == "__main__":
    main()
