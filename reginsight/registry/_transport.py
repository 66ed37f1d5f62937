"""The httpx transport every reginsight client sends through.

httpx reads the intermediate responses of redirects and auth flows whole, so the
caps reginsight promises (error bodies, token bodies) are enforced here, below
httpx, where every byte passes. The same place refuses addresses no registry
traffic should reach (cloud metadata services, link-local hosts) and retries what
a busy or flaky server deserves another try for, so every request gets it: API
calls, token requests, redirects alike. It also holds every answer to a pace
(:class:`Pace`): httpx's timeout bounds one read, so a server sending a byte a
second would otherwise hold the caller for as long as it likes. Each wait for the
server, head or body, ends at the answer's deadline (``_network``): a drip is cut
when its time is up, not at the next read.
"""

from __future__ import annotations

import math
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from .._errors import CredentialsError, DeadlineExceeded, TooLarge, UnsafeAddress
from . import _retry
from ._hosts import origin, unsafe_host_reason
from ._network import Deadline, Overdue, bounded_by
from ._retry import RETRY_STATUSES, HostBackoff, RetryPolicy, may_retry
from .protocol import decimal, parse_retry_after

#: Bodies of answers that are not 2xx (errors, redirects, 401 challenges) are cut here.
ERROR_BODY_LIMIT = 64 * 1024
#: A request may carry ``extensions={LIMIT: n}`` to have its 2xx body refused past n bytes.
LIMIT = "reginsight.body_limit"
#: A token request carries its realm's origin here: it may not be redirected elsewhere
#: (httpx copies extensions to redirects, so every hop is checked).
REALM_ORIGIN = "reginsight.token_for"
#: A request metered registries count against a pull budget (protocol Request.pull).
PULL = "reginsight.pull"
#: A request whose caller falls back to another way when refused with 429.
FALLBACK = "reginsight.fallback"
#: A request whose 2xx body the caller streams (a blob download): held to a minimum
#: rate, not a deadline. httpx copies extensions to redirects: a CDN's answer too.
STREAM = "reginsight.stream"
#: Bytes/s a streamed body must average (``Registry(min_rate=)``): slower than any
#: link worth the name (32 kbit/s), far faster than a drip.
MIN_RATE = 4096.0
_TIMEOUTS = ("connect", "read", "write", "pool")


@dataclass(frozen=True, kw_only=True)
class Pace:
    """How slowly a server may answer, past httpx's timeout of one read (``timeout``,
    also the timeout of requests httpx sends without one: token requests of an auth
    flow).

    An answer read whole (documents, listings, error bodies, token answers, the
    ping) must come within ``deadline`` seconds, head (status line and headers) and
    body together. A streamed answer (a blob download) must have its head within
    ``deadline``, then average ``min_rate`` bytes/s (0: no minimum) once ``grace``
    seconds have passed, so a big blob on a slow, honest link comes whole and a drip
    does not. Only time spent waiting for the server counts: a caller that reads
    slowly (a copy uploading as it downloads) is not the server's fault, nor is the
    time spent sending the request (an upload) or waiting for a pooled connection.
    On reginsight's own network (``_network``) every wait ends when its bound is up;
    through a transport given instead, bodies are judged between reads (running
    over by up to one read, ``timeout``) and heads per read only.
    """

    timeout: float | None = 30.0
    deadline: float = 30.0
    min_rate: float = MIN_RATE
    grace: float = 30.0


def _overdue(where: str, pace: Pace, detail: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        f"{where}: the answer did not arrive within its {pace.deadline:g}-second deadline "
        f"({detail}); the server is too slow or dripping")


class _Paced(httpx.SyncByteStream):
    """Passes a body through while its server keeps ``pace``; else DeadlineExceeded.
    A body read whole has ``allowed`` seconds: what its head left of the deadline."""

    def __init__(self, inner: httpx.SyncByteStream, pace: Pace, where: str, *,
                 streamed: bool, allowed: float) -> None:
        self._inner, self._pace, self._where, self._streamed = inner, pace, where, streamed
        self._allowed = allowed
        # a cut read that heard nothing for this long was a stall, shorter a drip: a
        # drip sends again well within half the bound, or it would not be one
        self._stall = min(pace.deadline, pace.timeout or math.inf) / 2

    def __iter__(self) -> Iterator[bytes]:
        waited, received = 0.0, 0
        chunks = iter(self._inner)
        while True:
            asked = time.monotonic()
            try:
                # the next read ends when the pace would be broken, not a read later;
                # its head came: a cut is the server's slowness, never a stall to retry
                with bounded_by(Deadline(self._patience(waited, received), heard=True)):
                    chunk = next(chunks, None)
            except Overdue:
                silent = time.monotonic() - asked
                if silent >= self._stall:
                    # nothing at all for that long: a connection that went dead (a black
                    # hole), not a drip; retried or resumed as a read timeout always was
                    raise httpx.ReadTimeout(
                        f"{self._where}: nothing from the server for {silent:.1f} s "
                        f"after {received} bytes") from None
                raise self._too_slow(waited + silent, received) from None
            waited += time.monotonic() - asked
            if chunk is None:
                return
            received += len(chunk)
            if self._broken(waited, received):
                raise self._too_slow(waited, received)
            yield chunk

    def _patience(self, waited: float, received: int) -> float:
        """How much longer the server may take, at most, before the next bytes."""
        pace = self._pace
        if not self._streamed:
            return self._allowed - waited
        if not pace.min_rate:
            return math.inf
        return max(pace.grace, received / pace.min_rate) - waited

    def _broken(self, waited: float, received: int) -> bool:
        pace = self._pace
        if not self._streamed:
            return waited > self._allowed
        return bool(pace.min_rate) and waited > pace.grace and received < pace.min_rate * waited

    def _too_slow(self, waited: float, received: int) -> DeadlineExceeded:
        if not self._streamed:
            return _overdue(self._where, self._pace, f"{received} bytes in {waited:.1f} s")
        return DeadlineExceeded(
            f"{self._where}: {received} bytes in {waited:.1f} s, below the minimum "
            f"rate of {self._pace.min_rate:g} bytes/s; the server is too slow or dripping")

    def close(self) -> None:
        self._inner.close()


class _CappedStream(httpx.SyncByteStream):
    """Passes an error body through, cut at ``limit`` bytes."""

    def __init__(self, inner: httpx.SyncByteStream, limit: int) -> None:
        self._inner, self._limit = inner, limit

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._inner:
            if seen + len(chunk) >= self._limit:
                yield chunk[: self._limit - seen]
                return
            seen += len(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


def _where(request: httpx.Request) -> str:
    return origin(str(request.url)) + request.url.path


class GuardedTransport(httpx.BaseTransport):
    """Wraps a transport: refuses unsafe hosts, retries what is worth retrying (with
    one backoff per host), reads small bodies here so a truncated one is retried like
    a reset, caps the bodies that must stay small and holds every answer to a pace.

    An answer past its deadline (or below its rate) is not tried again: it came, only
    too slowly for the bound the caller set, and a dripping server spends that whole
    bound on every attempt; retried, the caller would wait ``attempts`` times the
    bound it asked for. A crawl makes it an ``errors`` row and goes on. A read that
    times out (nothing at all for ``timeout``, or nothing of the answer by its
    deadline) is still retried: a stalled connection is often that connection alone."""

    def __init__(self, inner: httpx.BaseTransport, *, retry: RetryPolicy | None = None,
                 pace: Pace | None = None) -> None:
        self._inner = inner
        self.backoff = HostBackoff(retry or _retry.DEFAULT_POLICY)
        self.pace = pace or Pace()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        reason = unsafe_host_reason(host)
        if reason:
            raise UnsafeAddress(f"refused to contact {request.url.scheme}://{host}: {reason}")
        realm = request.extensions.get(REALM_ORIGIN)
        if realm is not None and origin(str(request.url)) != realm:
            raise UnsafeAddress(f"token request for {realm} redirected to "
                                f"{origin(str(request.url))}; refused: "
                                "credentials go to the realm the registry named, nowhere else")
        self._bound_reads(request)
        backoff, attempts = self.backoff, self.backoff.policy.attempts
        pull = bool(request.extensions.get(PULL))
        lanes = (host, backoff.pulls_lane(host)) if pull else (host,)
        for attempt in range(1, attempts + 1):
            backoff.wait(*lanes)
            deadline = Deadline(self.pace.deadline)  # each attempt, each hop: its own
            try:
                with bounded_by(deadline):
                    response = self._inner.handle_request(request)
            except Overdue:
                raise _overdue(f"{request.method} {_where(request)}", self.pace,
                               "its head still incomplete") from None
            except httpx.TransportError as exc:
                if attempt == attempts or not may_retry(request, error=exc):
                    raise
                backoff.failure(host, None)
                continue
            rate = backoff.observe(host, response.headers)
            status = response.status_code
            if status in RETRY_STATUSES and attempt < attempts and may_retry(
                    request, status=status):
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if retry_after is None and status == 429 and rate is not None and rate.spent:
                    retry_after = rate.reset  # the IETF draft's way of saying when
                if status == 429 and self._answer_now(request, host, retry_after):
                    return self._settle(request, response, deadline)
                self._discard(request, response, deadline)
                # a refused pull holds back pulls only; anything else, the whole host
                backoff.failure(lanes[-1] if status == 429 else host, retry_after)
                continue
            try:
                response = self._settle(request, response, deadline)
            except httpx.TransportError as exc:  # a small body cut short
                if attempt == attempts or not may_retry(request, error=exc):
                    raise
                backoff.failure(host, None)
                continue
            for lane in lanes:
                backoff.success(lane)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _bound_reads(self, request: httpx.Request) -> None:
        """Give every read a timeout: httpx sends the token request of an auth flow
        with none, and a stalled realm held the caller forever. A new dict: redirects
        share the extensions of the request they follow."""
        given = request.extensions.get("timeout") or {}
        wanted = {key: self.pace.timeout if given.get(key) is None else given[key]
                  for key in _TIMEOUTS}
        if wanted != given:
            request.extensions = {**request.extensions, "timeout": wanted}

    def _paced(self, request: httpx.Request, stream: httpx.SyncByteStream,
               deadline: Deadline, *, streamed: bool = False) -> _Paced:
        """The body, paced; read whole, it has what the head left of ``deadline``
        (all of it through a transport given instead: its clock never started)."""
        return _Paced(stream, self.pace, f"{request.method} {_where(request)}",
                      streamed=streamed, allowed=deadline.left())

    def _answer_now(self, request: httpx.Request, host: str, retry_after: float | None
                    ) -> bool:
        """Whether a 429 goes back to the caller at once instead of being waited out:
        the caller has another way to ask (HEAD -> GET) that costs nothing extra (a
        metered registry counts GETs: there HEADs wait their turn first), or a pull
        was refused for a spent budget and the server did not say when to come back
        (Docker Hub's window is hours: retrying in seconds only spends requests)."""
        if request.extensions.get(FALLBACK):
            return not self.backoff.metered(host)
        told = retry_after is not None and retry_after <= self.backoff.policy.max_retry_after
        return bool(request.extensions.get(PULL)) and self.backoff.budget_spent(host) and (
            not told)

    def _settle(self, request: httpx.Request, response: httpx.Response,
                deadline: Deadline) -> httpx.Response:
        """Cap error bodies; read bodies of requests with a LIMIT (refusing larger ones);
        hold every body to its pace."""
        assert isinstance(response.stream, httpx.SyncByteStream)
        if not 200 <= response.status_code < 300:
            response.stream = self._paced(
                request, _CappedStream(response.stream, ERROR_BODY_LIMIT), deadline)
            return response
        limit = request.extensions.get(LIMIT)
        if limit is None:
            # a blob (streamed; downloads resume themselves) or a small answer the
            # client reads whole (the ping, an upload's)
            response.stream = self._paced(request, response.stream, deadline,
                                          streamed=bool(request.extensions.get(STREAM)))
            return response
        announced = decimal(response.headers.get("content-length"))
        if announced is not None and announced > limit:
            response.close()
            raise TooLarge(f"{_where(request)}: body of {announced} bytes exceeds the "
                           f"{limit}-byte limit; not read")
        chunks, seen = [], 0
        try:
            for chunk in self._paced(request, response.stream, deadline):
                seen += len(chunk)
                if seen > limit:
                    raise TooLarge(f"{_where(request)}: body exceeds the {limit}-byte "
                                   "limit; reading stopped")
                chunks.append(chunk)
        finally:
            response.close()
        if announced is not None and seen != announced:
            raise httpx.RemoteProtocolError(
                f"body cut short: {seen} of {announced} bytes", request=request)
        return httpx.Response(response.status_code, headers=response.headers,
                              content=b"".join(chunks), request=request,
                              extensions=response.extensions)

    def _discard(self, request: httpx.Request, response: httpx.Response,
                 deadline: Deadline) -> None:
        """Read a little of a response we will not use, so its connection can be
        reused; one that drips is dropped at its deadline."""
        capped = _CappedStream(response.stream, ERROR_BODY_LIMIT)  # type: ignore[arg-type]
        try:
            for _ in self._paced(request, capped, deadline):
                pass
        except (httpx.TransportError, DeadlineExceeded):
            pass
        finally:
            response.close()

    def close(self) -> None:
        self._inner.close()


class Body(httpx.SyncByteStream):
    """A request body that can be sent again (auth retries replay it) and then let go.

    httpcore keeps a request and its response in a reference cycle; with plain bytes
    content each upload chunk would live until the cyclic GC runs. Released once the
    exchange is over, the chunk is freed at once and upload memory stays at a chunk.
    """

    replayable = True  # retries and auth may send it again

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data

    def release(self) -> None:
        self._data = b""


def ssl_context(
    verify: bool | str | ssl.SSLContext, cert: str | tuple[str, str] | None, *, insecure: bool
) -> ssl.SSLContext:
    """TLS settings: verified by default, a custom CA bundle, a client certificate."""
    try:
        return _load_ssl_context(verify, cert, insecure=insecure)
    except (OSError, ssl.SSLError) as exc:
        raise CredentialsError(f"TLS material could not be loaded: {exc}") from None


def _load_ssl_context(
    verify: bool | str | ssl.SSLContext, cert: str | tuple[str, str] | None, *, insecure: bool
) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        context = verify
    elif insecure or verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str | os.PathLike):
        context = ssl.create_default_context(cafile=os.fspath(verify))
    else:
        context = ssl.create_default_context()
    if cert is not None:
        certfile, keyfile = (cert, None) if isinstance(cert, str | os.PathLike) else cert
        context.load_cert_chain(certfile, keyfile)
    return context
