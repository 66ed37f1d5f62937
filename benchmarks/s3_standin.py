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
import contextlib
import io
import json
import os
import signal
import socket
import sys
import threading
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from benchmarks.s3_moto import (
    LIST_PARAMS,
    PRESIGNED,
    changed,
    fast_answer,
    install_indexed_listing,
    pack_objects,
    put_objects,
)
from tests.registry_server import free_port, launch, listening, stop_process
from tests.s3_server import S3Server, S3StartError

COUNTS_PATH = "/_standin/counts"
PUT_PATH = "/_standin/put/"  # + bucket: objects written straight into moto's backend
KINDS = ("list", "get", "head", "put", "other")

# --- the server ----------------------------------------------------------------------------

#: a presigned URL's signature (SigV2; SigV4's are X-Amz-*)


def classify(method: str, path: str, query: str) -> tuple[str, str]:
    """(kind, operation) of a path-style S3 request, e.g. ("list", "ListObjectsV2
    delimiter"); kind is one of KINDS."""
    bucket, _, key = path.lstrip("/").partition("/")
    params = {name: value for name, value in parse_qs(query, keep_blank_values=True).items()
              if not name.lower().startswith("x-amz-") and name not in PRESIGNED}
    if not key:
        if method == "GET" and bucket and set(params) <= LIST_PARAMS:
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
