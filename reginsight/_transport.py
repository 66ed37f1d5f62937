"""The httpx transport every reginsight client sends through.

httpx reads the intermediate responses of redirects and auth flows whole, so the
caps reginsight promises (error bodies, token bodies) are enforced here, below
httpx, where every byte passes. The same place refuses addresses no registry
traffic should reach: cloud metadata services and link-local hosts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx

from ._errors import TooLarge, UnsafeAddress

#: Bodies of answers that are not 2xx (errors, redirects, 401 challenges) are cut here.
ERROR_BODY_LIMIT = 64 * 1024
#: A request may carry ``extensions={LIMIT: n}`` to have its 2xx body refused past n bytes.
LIMIT = "reginsight.body_limit"

_METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "instance-data",
    "instance-data.ec2.internal",
})


def unsafe_host_reason(host: str) -> str | None:
    """Why ``host`` must never be contacted, or None when it may be."""
    host = host.strip("[]").lower().rstrip(".")
    if host in _METADATA_HOSTS:
        return "a cloud metadata service"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_link_local or address == ipaddress.ip_address("fd00:ec2::254"):
        return "a link-local address (cloud metadata services live there)"
    if address.is_unspecified or address.is_multicast:
        return "not a host address"
    return None


class _CappedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limit: int, *, truncate: bool, url: str):
        self._inner, self._limit, self._truncate, self._url = inner, limit, truncate, url

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._inner:
            if seen + len(chunk) > self._limit:
                if self._truncate:
                    yield chunk[: self._limit - seen]
                    return
                raise TooLarge(
                    f"{self._url}: body exceeds the {self._limit}-byte limit; reading stopped"
                )
            seen += len(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class GuardedTransport(httpx.BaseTransport):
    """Wraps a transport: refuses unsafe hosts, caps bodies that must stay small."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reason = unsafe_host_reason(request.url.host)
        if reason:
            raise UnsafeAddress(
                f"refused to contact {request.url.scheme}://{request.url.host}: {reason}"
            )
        response = self._inner.handle_request(request)
        limit = request.extensions.get(LIMIT)
        where = f"{request.url.scheme}://{request.url.netloc.decode()}{request.url.path}"
        if not 200 <= response.status_code < 300:
            limit, truncate = ERROR_BODY_LIMIT, True
        elif limit is not None:
            truncate = False
            announced = response.headers.get("content-length", "")
            if announced.isdigit() and int(announced) > limit:
                response.close()
                raise TooLarge(
                    f"{where}: body of {announced} bytes exceeds the {limit}-byte limit; not read"
                )
        else:
            return response
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _CappedStream(response.stream, limit, truncate=truncate, url=where)
        return response

    def close(self) -> None:
        self._inner.close()
