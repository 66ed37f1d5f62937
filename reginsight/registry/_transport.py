"""The httpx transport every reginsight client sends through.

httpx reads the intermediate responses of redirects and auth flows whole, so the
caps reginsight promises (error bodies, token bodies) are enforced here, below
httpx, where every byte passes. The same place refuses addresses no registry
traffic should reach (cloud metadata services, link-local hosts) and retries what
a busy or flaky server deserves another try for, so every request gets it: API
calls, token requests, redirects alike.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator

import httpx

from .._errors import CredentialsError, TooLarge, UnsafeAddress
from . import _retry
from ._hosts import origin, unsafe_host_reason
from ._retry import RETRY_STATUSES, HostBackoff, RetryPolicy, may_retry
from .protocol import parse_retry_after

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
    a reset, and caps the bodies that must stay small."""

    def __init__(self, inner: httpx.BaseTransport, *, retry: RetryPolicy | None = None
                 ) -> None:
        self._inner = inner
        self.backoff = HostBackoff(retry or _retry.DEFAULT_POLICY)

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
        backoff, attempts = self.backoff, self.backoff.policy.attempts
        pull = bool(request.extensions.get(PULL))
        lanes = (host, backoff.pulls_lane(host)) if pull else (host,)
        for attempt in range(1, attempts + 1):
            backoff.wait(*lanes)
            try:
                response = self._inner.handle_request(request)
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
                    return self._settle(request, response)
                _discard(response)
                # a refused pull holds back pulls only; anything else, the whole host
                backoff.failure(lanes[-1] if status == 429 else host, retry_after)
                continue
            try:
                response = self._settle(request, response)
            except httpx.TransportError as exc:  # a small body cut short
                if attempt == attempts or not may_retry(request, error=exc):
                    raise
                backoff.failure(host, None)
                continue
            for lane in lanes:
                backoff.success(lane)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

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

    def _settle(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """Cap error bodies; read bodies of requests with a LIMIT (refusing larger ones)."""
        assert isinstance(response.stream, httpx.SyncByteStream)
        if not 200 <= response.status_code < 300:
            response.stream = _CappedStream(response.stream, ERROR_BODY_LIMIT)
            return response
        limit = request.extensions.get(LIMIT)
        if limit is None:
            return response  # a blob: streamed; downloads resume themselves
        announced = response.headers.get("content-length", "")
        if announced.isdigit() and int(announced) > limit:
            response.close()
            raise TooLarge(f"{_where(request)}: body of {announced} bytes exceeds the "
                           f"{limit}-byte limit; not read")
        chunks, seen = [], 0
        try:
            for chunk in response.stream:
                seen += len(chunk)
                if seen > limit:
                    raise TooLarge(f"{_where(request)}: body exceeds the {limit}-byte "
                                   "limit; reading stopped")
                chunks.append(chunk)
        finally:
            response.close()
        if announced.isdigit() and seen != int(announced):
            raise httpx.RemoteProtocolError(
                f"body cut short: {seen} of {announced} bytes", request=request)
        return httpx.Response(response.status_code, headers=response.headers,
                              content=b"".join(chunks), request=request,
                              extensions=response.extensions)

    def close(self) -> None:
        self._inner.close()


def _discard(response: httpx.Response) -> None:
    """Read a little of a response we will not use, so its connection can be reused."""
    try:
        for _ in _CappedStream(response.stream, ERROR_BODY_LIMIT):  # type: ignore[arg-type]
            pass
    except httpx.TransportError:
        pass
    finally:
        response.close()


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
