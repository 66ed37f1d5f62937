"""An HTTP proxy the tests put in front of the real registry to make it misbehave.

At a set rate it answers 429 (Retry-After) or 503 itself, resets the connection,
cuts a body short, or answers slowly; in ``tamper`` mode it flips a byte of
manifest and blob bodies instead. Choices come from a seeded generator and every
injected fault is counted, so a test can say exactly what it survived.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("429", "503", "reset", "truncate", "slow")
_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length",
        "proxy-connection", "upgrade", "te", "trailer"}


@dataclass
class FaultProxy:
    upstream: str
    rate: float = 0.1
    faults: tuple[str, ...] = FAULTS
    tamper: bool = False
    seed: int = 1
    retry_after: str = "0"
    #: requests whose path this returns True for always get ``always`` (e.g. "503")
    always: tuple[Callable[[str], bool], str] | None = None
    injected: Counter = field(default_factory=Counter)
    requests: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.upstream, timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    # -------------------------------------------------------------- serving

    def _pick(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            if self.always and self.always[0](path):
                fault = self.always[1]
            elif self.tamper:
                return None
            elif self._random.random() < self.rate:
                fault = self._random.choice(self.faults)
            else:
                return None
            if fault in ("reset", "truncate") and method not in ("GET", "HEAD"):
                fault = "503"  # never cut a write half-way: that is a different test
            self.injected[fault] += 1
            return fault

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        fault = self._pick(method, path)
        if fault in ("429", "503"):
            headers = {"Retry-After": self.retry_after} if fault == "429" else {}
            self._reply(handler, int(fault), headers, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}')
            return
        if fault == "reset" and self._coin():  # before the registry sees it, or after
            self._reset(handler)
            return
        upstream, out = self._forward(handler, body)
        data = upstream.content if method != "HEAD" else b""
        if fault == "reset":
            self._reset(handler)
            return
        if fault == "slow":
            time.sleep(0.1)
        if self.tamper and self._tamperable(method, path, upstream, data):
            self.injected["tamper"] += 1
            position = len(data) // 2
            data = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]
        if fault == "truncate" and len(data) > 1:
            self._reply(handler, upstream.status_code, out, data,
                        declared=len(data), cut=len(data) // 2)
            return
        self._reply(handler, upstream.status_code, out, data,
                    declared=int(upstream.headers.get("content-length") or len(data)))

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes
                 ) -> tuple[httpx.Response, dict[str, str]]:
        """The registry's answer to the request, and its headers as the proxy passes
        them on (hop-by-hop ones dropped, the registry's URL replaced by the proxy's)."""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
        upstream = self._client.request(handler.command, handler.path, headers=headers,
                                        content=body)
        out = {k: v.replace(self.upstream, self.url) for k, v in upstream.headers.items()
               if k.lower() not in _HOP and k.lower() != "content-encoding"}
        return upstream, out

    def _coin(self) -> bool:
        with self._lock:
            return self._random.random() < 0.5

    def _tamperable(self, method: str, path: str, upstream: httpx.Response,
                    data: bytes) -> bool:
        if method != "GET" or upstream.status_code != 200 or not data:
            return False
        if "/manifests/" not in path and "/blobs/" not in path:
            return False
        with self._lock:
            return self._random.random() < self.rate

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str],
               data: bytes, *, declared: int | None = None, cut: int | None = None) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data) if declared is None else declared))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data if cut is None else data[:cut])
        if cut is not None:
            handler.wfile.flush()
            FaultProxy._reset(handler)

    @staticmethod
    def _reset(handler: BaseHTTPRequestHandler) -> None:
        """Close with RST, as a crashed peer or a middlebox does."""
        handler.close_connection = True
        sock = handler.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
