"""The network below httpcore: every wait for the server ends at the answer's deadline.

httpx's timeout bounds one read, and above httpcore a body can only be judged between
reads, while the status line and the headers pass below unseen: a server dripping
16 KiB of headers a byte a second held a request for hours. Here, where httpcore
reads, each wait for the server is cut at the deadline of the answer it belongs to
(:class:`Deadline`, set per thread by :func:`bounded_by`), head or body; a request
on a reused connection gets its own. (The TLS handshake needs no cut: Python bounds
it as a whole by its timeout, httpx's connect timeout.)

:class:`NetworkTransport` is httpx.HTTPTransport's work (an httpcore pool, httpcore
errors as httpx's) on this network: httpx has no public way to hand its pool a backend.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from .._errors import DeadlineExceeded


class Overdue(DeadlineExceeded):
    """The deadline of the answer being read passed while waiting for the server.
    The layer above says which answer; typed right even if it does not."""


class Deadline:
    """When the server must have answered by: ``seconds`` from the answer's first wait
    for it: the first read, once the request is sent. Connecting and the TLS handshake
    are bounded by httpx's connect timeout each; a wait for a free connection of the
    pool, or time spent sending an upload, is not the server's answer.

    Cut before the server sent anything, a wait is a stall: httpx's ReadTimeout,
    retried as any stall (only sooner). Cut once it has begun: Overdue, a drip."""

    def __init__(self, seconds: float, *, heard: bool = False) -> None:
        self.seconds, self.heard = seconds, heard
        self.at: float | None = None

    def left(self) -> float:
        if self.at is None:
            self.at = time.monotonic() + self.seconds
        return self.at - time.monotonic()


# A ContextVar is per thread as a thread-local is, and httpcore's sync pool reads in
# the thread that asked; set and reset around each call, never across a yield.
_CURRENT: ContextVar[Deadline | None] = ContextVar("reginsight_deadline", default=None)


@contextmanager
def bounded_by(deadline: Deadline | None) -> Iterator[None]:
    """Cut every wait for the server in this block at ``deadline``."""
    token = _CURRENT.set(deadline)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _cut(deadline: Deadline) -> Exception:
    if deadline.heard:
        return Overdue(f"no answer within the {deadline.seconds:g}-second deadline")
    return httpcore.ReadTimeout(
        f"nothing from the server within the {deadline.seconds:g}-second deadline")


class _BoundedStream(httpcore.NetworkStream):
    """A connection whose every read ends at the current deadline, if sooner than
    httpx's timeout of one read."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = _CURRENT.get()
        if deadline is None:
            return self._inner.read(max_bytes, timeout)
        left = deadline.left()
        if left <= 0:
            raise _cut(deadline)
        if left == math.inf or (timeout is not None and timeout <= left):
            data = self._inner.read(max_bytes, timeout)  # httpx's timeout comes first
        else:
            try:
                data = self._inner.read(max_bytes, left)
            except httpcore.ReadTimeout:
                raise _cut(deadline) from None
        deadline.heard = deadline.heard or bool(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)  # ALPN, is_readable for keep-alive


class DeadlineBackend(httpcore.SyncBackend):
    """httpcore's own sync backend, its connections' reads bounded by the deadline."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _BoundedStream(super().connect_tcp(
            host, port, timeout, local_address=local_address, socket_options=socket_options))


# httpcore's errors as httpx's, as httpx.HTTPTransport maps them (0.27 and 0.28 alike)
_AS_HTTPX: dict[type[Exception], type[httpx.TransportError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
}


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        # the most specific: the first of its classes, in method resolution order
        mapped = next((_AS_HTTPX[cls] for cls in type(exc).__mro__ if cls in _AS_HTTPX), None)
        if mapped is None:
            raise  # ours (Overdue) and anything httpx would let through too
        raise mapped(str(exc)) from exc


class _Body(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class NetworkTransport(httpx.BaseTransport):
    """What ``httpx.HTTPTransport(verify=context, limits=limits)`` did for reginsight,
    on :class:`DeadlineBackend`: HTTP/1.1, no connection retries, no proxy (httpx
    never read one from the environment for a client given its transport), the TLS
    context as given (httpx used an SSLContext as is)."""

    def __init__(self, *, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        url = request.url
        asked = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            answer = self._pool.handle_request(asked)
        assert isinstance(answer.stream, Iterable)
        return httpx.Response(status_code=answer.status, headers=answer.headers,
                              stream=_Body(answer.stream), extensions=answer.extensions)

    def close(self) -> None:
        self._pool.close()
