"""Real httpx transports with a test's eye on them: they connect for real (to the
loopback registry) and record, or break, what passes."""

from __future__ import annotations

import httpx


class CountingTransport(httpx.HTTPTransport):
    """Records (method, path) of every request actually sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.method, request.url.path))
        return super().handle_request(request)

    def count(self, method: str, contains: str = "") -> int:
        return sum(1 for m, p in self.sent if m == method and contains in p)


class DropPatch(CountingTransport):
    """Breaks the n-th PATCH: before it reaches the registry (``delivered=False``, as
    ``error``), or after the registry took the bytes but before its answer arrives."""

    def __init__(self, drop_patch: int, *, delivered: bool,
                 error: type[httpx.TransportError] = httpx.WriteError) -> None:
        super().__init__()
        self.drop_patch, self.delivered, self.error = drop_patch, delivered, error

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        nth = request.method == "PATCH" and self.count("PATCH") + 1 == self.drop_patch
        if nth and not self.delivered:
            self.sent.append((request.method, "(dropped) " + request.url.path))
            raise self.error("connection reset by test", request=request)
        response = super().handle_request(request)
        if nth:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by test", request=request)
        return response
