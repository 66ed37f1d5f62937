"""An S3 stand-in with S3's cost model: moto's server, less moto's own artifacts.

    python -m benchmarks.s3_standin [-H 127.0.0.1] [-p PORT] [--log FILE]
                                    [--no-keepalive] [--no-index]

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
import signal
import socket
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tests.registry_server import free_port, launch, listening, stop_process
from tests.s3_server import S3Server, S3StartError

COUNTS_PATH = "/_standin/counts"
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
    """The WSGI app around moto's: counts requests, bumps the listing generation after
    each write (before its answer leaves), answers GET /_standin/counts."""

    def __init__(self, app: Any, log: Path | None) -> None:
        self.app, self.lock = app, threading.Lock()
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
        kind, operation = classify(method, path, query)
        with self.lock:
            self.kinds[kind] += 1
            self.operations[f"{method} {operation}"] += 1
            if self.log:
                self.log.write(f"{method} {path}?{query}\n")
        if method in ("GET", "HEAD"):
            return self.app(environ, start_response)
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
          log: Path | None = None) -> None:
    """Run the stand-in until SIGTERM/SIGINT."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    if index:
        install_indexed_listing()
    os.environ.setdefault("MOTO_PORT", str(port))
    app = _Counting(DomainDispatcherApplication(create_backend_app), log)
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
    log: Path | None = None

    def start(self, *, timeout: float = 30.0) -> StandinServer:
        self.port = self.port or free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.s3_standin", "-H", self.host,
                   "-p", str(self.port)]
        command += [] if self.keepalive else ["--no-keepalive"]
        command += [] if self.index else ["--no-index"]
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
    args = parser.parse_args()
    serve(args.host, args.port, keepalive=not args.no_keepalive, index=not args.no_index,
          log=args.log)


if __name__ == "__main__":
    main()
