"""Slow servers are bounded: an answer dripped a byte at a time fails within its
deadline, a blob download below its minimum rate fails, an endless ``Link`` chain
stops at a time or page bound; each with a typed error, never a hang or a list passed
off as whole. Real loopback servers drip the bytes; an honest slow blob still comes
whole. Bounds carry generous slack: a shared 2-core machine, correctness not speed."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import reginsight as ri
from reginsight.registry import protocol as proto

SLACK = 2.0  # seconds: scheduling on a loaded machine, never the thing measured
PING = {"Docker-Distribution-API-Version": "registry/2.0", "Content-Type": "application/json"}

Route = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # a head and its body go as two writes: without this, Nagle holds the second
        # for the client's delayed ACK (40 ms a page)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        route = self.server.routes.get(path)
        if route is None:
            route = next((r for pattern, r in self.server.routes.items()
                          if pattern.startswith("^") and re.match(pattern, path)), None)
        try:
            if route is None:
                self.head(404, {"Content-Length": "0"})
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up: what the test wants

    do_HEAD = do_GET

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()

    def whole(self, body: bytes, headers: dict[str, str] | None = None, status: int = 200
              ) -> None:
        self.head(status, {**(headers or {}), "Content-Length": str(len(body))})
        if self.command != "HEAD":
            self.wfile.write(body)

    def drip(self, body: bytes, *, every: float, step: int = 1, status: int = 200,
             headers: dict[str, str] | None = None) -> None:
        """``body`` with its Content-Length, ``step`` bytes every ``every`` seconds."""
        self.head(status, {**(headers or {}), "Content-Length": str(len(body))})
        for start in range(0, len(body), step):
            if self.server.stopping.wait(every):
                return
            self.wfile.write(body[start:start + step])
            self.wfile.flush()

    def drip_head(self, *, every: float, pad: int = 30, status: bytes = b"200 OK") -> None:
        """The status line at once, then a header a byte every ``every`` seconds (``pad``
        bytes, never ended: a client that waits for them all fails anyway, late)."""
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 " + status + b"\r\n")
        self.wfile.flush()
        for byte in b"X-Pad: " + b"a" * pad:
            if self.server.stopping.wait(every):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def chunked(self, chunks: Iterator[bytes], *, every: float) -> None:
        """A chunked body, one chunk every ``every`` seconds, as long as ``chunks`` goes."""
        self.head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        for chunk in chunks:
            if self.server.stopping.wait(every):
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = {"/v2/": lambda h: h.whole(b"{}", PING), **routes}
        self.stopping = threading.Event()
        self.served: list[str] = []  # what the routes that keep count saw
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def loopback(routes: dict[str, Route]) -> Iterator[_Server]:
    """A registry on a free port of 127.0.0.1 serving ``routes``."""
    server = _Server(routes)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()  # drips end at once
        server.shutdown()
        server.server_close()


@contextmanager
def within(seconds: float) -> Iterator[None]:
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert elapsed < seconds, f"took {elapsed:.1f} s, bound {seconds:.1f} s"


CATALOG = b'{"repositories": ["a"]}\n'  # 24 bytes, as in the issue


def _token_realm(handler: _Handler) -> None:
    port = handler.server.server_address[1]
    handler.whole(b'{"errors": []}', {
        "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{port}/token",service="t"'},
        status=401)


# ---------------------------------------------------------------- answers read whole

#: a byte this often: well inside the silence a body may keep (half the 1 s bound), so
#: that only the deadline can end these answers, however loaded the machine
DRIP = 0.25

DRIPS: dict[str, tuple[dict[str, Route], Callable[[ri.Registry], object]]] = {
    "the ping": ({"/v2/": lambda h: h.drip(CATALOG, every=DRIP, headers=PING)}, None),
    "a listing page": ({"/v2/_catalog": lambda h: h.drip(CATALOG, every=DRIP)},
                       lambda reg: reg.repositories()),
    "an error body": ({"/v2/a/tags/list": lambda h: h.drip(b'{"errors": []}' + b" " * 40,
                                                           every=DRIP, status=404)},
                      lambda reg: reg.tags("a")),
    "a token answer": ({"/v2/a/tags/list": _token_realm,
                        "/token": lambda h: h.drip(b'{"token": "t"}' + b" " * 40, every=DRIP)},
                       lambda reg: reg.tags("a")),
}


@pytest.mark.parametrize("what", list(DRIPS))
def test_an_answer_dripped_byte_by_byte_fails_at_its_deadline(what):
    routes, call = DRIPS[what]
    timeout = 1.0
    with loopback(routes) as server, within(timeout + timeout + SLACK):
        with pytest.raises(ri.DeadlineExceeded, match="1-second deadline") as caught:
            with ri.Registry(server.url, timeout=timeout) as reg:
                call(reg)
    assert server.url in str(caught.value)  # names where, as every error of the client does
    assert isinstance(caught.value, ri.RegistryUnreachable)  # caught as a timeout is


def test_a_chunked_body_of_one_space_a_second_ends_at_the_deadline():
    """httpx's timeout is per read: this body never stalls, and never ended before."""
    spaces = lambda h: h.chunked(iter(lambda: b" ", None), every=1.0)  # noqa: E731
    with loopback({"/v2/a/tags/list": spaces}) as server, \
            ri.Registry(server.url, timeout=1.5, retry=ri.NO_RETRY) as reg:
        with within(1.5 + 1.5 + SLACK), pytest.raises(ri.DeadlineExceeded) as caught:
            reg.tags("a")
    assert "/v2/a/tags/list" in str(caught.value)


def test_the_deadline_is_its_own_option_and_is_never_retried():
    served = []

    def drip(handler: _Handler) -> None:
        served.append(handler.path)
        handler.drip(CATALOG, every=0.3)

    with loopback({"/v2/_catalog": drip}) as server, \
            ri.Registry(server.url, timeout=3, deadline=1) as reg:
        with within(1 + 3 + SLACK), pytest.raises(ri.DeadlineExceeded, match="1-second"):
            reg.repositories()
    assert len(served) == 1  # attempts would multiply the bound the caller set


# ---------------------------------------------------------------- heads and single reads

HEAD_DRIPS: dict[str, tuple[dict[str, Route], Callable[[ri.Registry], object] | None]] = {
    "the ping": ({"/v2/": lambda h: h.drip_head(every=1.0)}, None),
    "a manifest": ({"/v2/a/manifests/v1": lambda h: h.drip_head(every=1.0)},
                   lambda reg: reg.manifest("a", "v1")),
    "a token request": ({"/v2/a/tags/list": _token_realm,
                         "/token": lambda h: h.drip_head(every=1.0)},
                        lambda reg: reg.tags("a")),
}


@pytest.mark.parametrize("what", list(HEAD_DRIPS))
def test_headers_dripped_a_byte_a_second_fail_at_the_deadline(what):
    """The head passes below httpx's transport, bounded per read only: a byte a second
    held a call for as long as the server had header bytes (16 KiB: 4.5 hours). Each
    read now ends at the deadline: the call fails at it, not a read timeout later."""
    routes, call = HEAD_DRIPS[what]
    deadline = 1.5
    with loopback(routes) as server:
        started = time.monotonic()
        with pytest.raises(ri.DeadlineExceeded, match=r"1\.5-second deadline") as caught:
            with ri.Registry(server.url, timeout=5, deadline=deadline) as reg:
                started = time.monotonic()  # the ping came: time the call alone
                call(reg)
        elapsed = time.monotonic() - started
    assert elapsed < deadline + 1.5, f"took {elapsed:.1f} s"
    assert "head still incomplete" in str(caught.value) and server.url in str(caught.value)


def test_a_body_runs_over_its_deadline_by_a_moment_not_a_read():
    """A byte every 1.9 s never trips the 3-second timeout of one read; judged between
    reads, the body ran 1.7 s past its 4-second deadline (ending at 5.7 s). A drip:
    bytes keep coming within half the deadline."""
    drip = lambda h: h.drip(CATALOG, every=1.9)  # noqa: E731
    with loopback({"/v2/_catalog": drip}) as server, \
            ri.Registry(server.url, timeout=3, deadline=4) as reg:
        with within(4 + 1.0), pytest.raises(ri.DeadlineExceeded, match="4-second"):
            reg.repositories()


def test_a_blob_is_cut_when_its_rate_breaks_not_a_read_later():
    """8 KiB at once, then a byte every 2.5 s: at 4096 bytes/s and a grace of 3 s the
    rate breaks at 3 s of waiting; judged between reads, at the second byte (5 s)."""
    def stop_and_drip(handler: _Handler) -> None:
        handler.head(200, {"Content-Length": str(len(BLOB))})
        handler.wfile.write(BLOB[:8192])
        handler.wfile.flush()
        for byte in BLOB[8192:8200]:
            if handler.server.stopping.wait(2.5):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    with loopback({BLOB_PATH: stop_and_drip}) as server, \
            ri.Registry(server.url, timeout=3) as reg:
        with within(3 + 1.5), pytest.raises(ri.DeadlineExceeded, match="minimum rate"):
            _download(reg)


def test_a_reused_connection_gives_each_request_its_own_deadline():
    """Two heads each taking most of the 2-second deadline, one after the other on one
    kept-alive connection: the second is not held to what the first left."""
    ports = []

    def slow_head(handler: _Handler) -> None:
        ports.append(handler.client_address[1])
        body = b'{"name": "a", "tags": ["v1"]}'
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        handler.wfile.flush()
        for header in (b"X-One: 1\r\n", b"X-Two: 2\r\n"):
            if handler.server.stopping.wait(0.6):
                return
            handler.wfile.write(header)
            handler.wfile.flush()
        handler.wfile.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        handler.wfile.flush()

    with loopback({"/v2/a/tags/list": slow_head}) as server, \
            ri.Registry(server.url, timeout=5, deadline=2, retry=ri.NO_RETRY) as reg:
        for _ in range(3):
            assert reg.tags("a") == ["v1"]
    assert len(ports) == 3 and len(set(ports)) == 1  # one connection, kept alive


def test_a_server_silent_past_the_deadline_is_a_stall_and_retried_as_one():
    """Nothing at all came: a stalled connection (often that one alone), not a drip.
    It ends at the deadline (not the longer read timeout), as httpx's ReadTimeout, and
    is tried again; a drip never is."""
    served = []

    def stall(handler: _Handler) -> None:
        served.append(handler.path)
        handler.server.stopping.wait(60)

    retry = ri.RetryPolicy(attempts=2, base=0.05)
    with loopback({"/v2/_catalog": stall}) as server, \
            ri.Registry(server.url, timeout=10, deadline=1, retry=retry) as reg:
        with within(2 * 1 + SLACK), pytest.raises(ri.RegistryUnreachable,
                                                  match="ReadTimeout") as caught:
            reg.repositories()
    assert not isinstance(caught.value, ri.DeadlineExceeded)
    assert len(served) == 2


def test_a_transport_given_is_still_paced_between_reads():
    """Tests inject transports: below them reginsight cannot cut a read, but a body is
    still judged as it comes."""
    drip = lambda h: h.drip(CATALOG, every=0.4)  # noqa: E731
    with loopback({"/v2/_catalog": drip}) as server, \
            ri.Registry(server.url, timeout=1, transport=httpx.HTTPTransport()) as reg:
        with within(1 + 1 + SLACK), pytest.raises(ri.DeadlineExceeded, match="1-second"):
            reg.repositories()


def test_a_stalled_token_realm_times_out():
    """httpx sends an auth flow's token request without any timeout: a realm that
    never answered held the caller forever."""
    stall = lambda h: h.server.stopping.wait(60)  # noqa: E731
    with loopback({"/v2/a/tags/list": _token_realm, "/token": stall}) as server, \
            ri.Registry(server.url, timeout=1, retry=ri.NO_RETRY) as reg:
        with within(1 + SLACK), pytest.raises(ri.RegistryUnreachable, match="Timeout"):
            reg.tags("a")


# ---------------------------------------------------------------- streamed blobs

BLOB = bytes(range(256)) * 800  # 200 KiB
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
BLOB_PATH = f"/v2/a/blobs/{BLOB_DIGEST}"


def _download(reg: ri.Registry, *, pause: float = 0.0, size: int = 1 << 20) -> bytes:
    parts = []
    with reg.download_blob("a", BLOB_DIGEST) as stream:
        while part := stream.read(size):
            parts.append(part)
            time.sleep(pause)
    return b"".join(parts)


@pytest.mark.parametrize("path", ["/v2/_catalog", BLOB_PATH])
def test_a_connection_gone_silent_mid_body_is_a_stall_retried_or_resumed(path):
    """Part of the body, then nothing: a dead connection (a black hole), not a drip.
    The list is asked again, the blob resumed from where it broke, as a read timeout
    always was; the second connection answers."""
    body = CATALOG if path == "/v2/_catalog" else BLOB
    served = []

    def once_silent(handler: _Handler) -> None:
        served.append(handler.headers.get("Range"))
        if len(served) > 1:
            start = int((handler.headers.get("Range") or "bytes=0-")[6:].split("-")[0])
            handler.head(206 if start else 200, {"Content-Length": str(len(body) - start)})
            handler.wfile.write(body[start:])
            return
        handler.head(200, {"Content-Length": str(len(body))})
        handler.wfile.write(body[:min(len(body) // 2, 5000)])  # under 2 s of min_rate
        handler.wfile.flush()
        handler.server.stopping.wait(60)

    with loopback({path: once_silent}) as server, \
            ri.Registry(server.url, timeout=2) as reg:
        with within(2 + SLACK):
            got = reg.repositories() if path == "/v2/_catalog" else _download(reg)
    assert got == (["a"] if path == "/v2/_catalog" else BLOB)
    assert len(served) == 2


def test_a_dripped_blob_fails_below_the_minimum_rate():
    with loopback({BLOB_PATH: lambda h: h.drip(BLOB, every=0.5)}) as server, \
            ri.Registry(server.url, timeout=1) as reg:
        with within(1 + 1 + SLACK), pytest.raises(ri.DeadlineExceeded,
                                                   match="below the minimum rate"):
            _download(reg)


def test_an_honest_slow_blob_comes_whole_past_the_deadline():
    """200 KiB over about 2 s, twice the deadline of an answer read whole: a blob on a
    slow link is judged by its rate, not by a deadline."""
    steady = lambda h: h.drip(BLOB, every=0.1, step=len(BLOB) // 20)  # noqa: E731
    with loopback({BLOB_PATH: steady}) as server, ri.Registry(server.url, timeout=1) as reg:
        started = time.monotonic()
        assert _download(reg) == BLOB  # digest verified at EOF
        assert time.monotonic() - started > 1.5  # it did take longer than the deadline


def test_a_slow_reader_is_not_taken_for_a_slow_server():
    """Only time spent waiting for the server counts: a copy that uploads as it
    downloads reads slowly, from a server that sent everything at once."""
    with loopback({BLOB_PATH: lambda h: h.whole(BLOB)}) as server, \
            ri.Registry(server.url, timeout=0.5, min_rate=1_000_000) as reg:
        assert _download(reg, pause=0.15, size=len(BLOB) // 10) == BLOB  # 1.5 s of reading


# ---------------------------------------------------------------- listings


def _chain(key: str) -> Route:
    """A fast page of one entry, linking to a next page never seen before."""
    def page(handler: _Handler) -> None:
        n = int(handler.path.partition("last=")[2] or 0)
        path = handler.path.partition("?")[0]
        handler.server.served.append(handler.path)
        handler.whole(json.dumps({key: [f"e{n}"]}).encode(),
                      {"Content-Type": "application/json",
                       "Link": f'<{path}?last={n + 1}>; rel="next"'})
    return page


def test_an_endless_link_chain_stops_at_the_time_bound():
    with loopback({"/v2/_catalog": _chain("repositories")}) as server, \
            ri.Registry(server.url, timeout=1, listing_time=1.5) as reg:
        with within(1.5 + 1 + SLACK), pytest.raises(ri.ListingTooLong) as caught:
            reg.repositories()
    error = caught.value
    assert error.bound == "time" and error.pages == error.entries > 0
    assert "listing_time" in str(error) and f"{error.pages} pages" in str(error)
    assert isinstance(error, ri.ProtocolViolation)  # as the page bound was before


def test_an_endless_link_chain_stops_at_the_page_bound():
    with loopback({"/v2/_catalog": _chain("repositories")}) as server, \
            ri.Registry(server.url, max_pages=25) as reg:
        with pytest.raises(ri.ListingTooLong) as caught:
            reg.catalog()
    error = caught.value
    assert (error.bound, error.pages, error.entries) == ("pages", 25, 25)
    assert "max_pages" in str(error) and "the catalog" in str(error)
    assert len(server.served) == 25  # the page past the bound is never asked


def test_a_crawl_gives_an_endless_tag_list_one_error_row_and_goes_on():
    routes = {"/v2/_catalog": lambda h: h.whole(b'{"repositories": ["a", "b"]}'),
              "/v2/a/tags/list": _chain("tags"),
              "/v2/b/tags/list": lambda h: h.whole(b'{"name": "b", "tags": []}')}
    with loopback(routes) as server, ri.Registry(server.url, listing_time=1) as reg:
        inv = ri.crawl(reg, progress=False)
    assert list(inv.errors["repository"]) == ["a"]
    assert list(inv.errors["stage"]) == ["tags"]
    assert inv.errors["error"][0].startswith("ListingTooLong: tags of a: stopped at the 1-")


def test_a_crawl_of_an_endless_catalog_raises_typed():
    with loopback({"/v2/_catalog": _chain("repositories")}) as server, \
            ri.Registry(server.url, max_pages=20) as reg, pytest.raises(ri.ListingTooLong):
        ri.crawl(reg, progress=False)


def test_paging_is_pure_and_counts():
    paging = proto.Paging("tags of a", max_pages=3, max_seconds=10)
    paging.admit("http://r/1", 0.0)
    paging.read("http://r/1", 0, again=True)  # refused, asked smaller: no page
    paging.admit("http://r/1", 0.1)
    paging.read("http://r/1", 100)
    with pytest.raises(ri.ProtocolViolation, match="pagination loops"):
        paging.admit("http://r/1", 0.2)
    paging.admit("http://r/2", 10.0 - 1e-6)
    with pytest.raises(ri.ListingTooLong, match="10-second bound") as caught:
        paging.admit("http://r/2", 10.0)
    assert (caught.value.pages, caught.value.entries) == (1, 100)
    for n in (2, 3):
        paging.read(f"http://r/{n}", 5)
    with pytest.raises(ri.ListingTooLong, match="3-page bound"):
        paging.admit("http://r/4", 0.0)


# ---------------------------------------------------------------- options


def test_the_bounds_travel_in_the_settings():
    with loopback({}) as server:
        with ri.Registry(server.url, timeout=2, deadline=5, min_rate=100, listing_time=7,
                         max_pages=9) as reg, ri.Registry.from_settings(reg.settings) as again:
            assert again.settings == reg.settings
            bounds = (again.settings.deadline, again.settings.min_rate,
                      again.settings.listing_time, again.settings.max_pages)
            assert bounds == (5, 100, 7, 9)


@pytest.mark.parametrize("bound", [{"deadline": 0}, {"min_rate": -1}, {"listing_time": 0},
                                   {"max_pages": 0}, {"timeout": -1},
                                   {"timeout": float("nan")}, {"deadline": float("nan")}])
def test_a_bound_that_refuses_everything_is_refused_at_once(bound):
    with pytest.raises(ValueError, match=next(iter(bound))):
        ri.Registry("http://127.0.0.1:9", **bound)
