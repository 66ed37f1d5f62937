"""The synchronous registry client: a thin I/O shell over the sans-I/O protocol core."""

from __future__ import annotations

import contextlib
import http.cookiejar
import io
import json
import math
import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from .._errors import (
    DigestMismatch,
    NotFound,
    ProtocolViolation,
    RateLimited,
    RegistryError,
    RegistryUnreachable,
    ResponseError,
)
from .._version import __version__
from . import protocol as proto
from ._auth import SCOPE, RegistryAuth
from ._blobreader import BlobReader
from ._credentials import Credentials, resolve_credentials
from ._digest import Digest, DigestVerifier, is_digest, parse_digest, validate_digest
from ._hosts import redact
from ._manifest import Descriptor, Manifest
from ._network import NetworkTransport
from ._reference import validate_repository
from ._retry import RetryPolicy
from ._transport import (
    FALLBACK,
    LIMIT,
    MIN_RATE,
    PULL,
    STREAM,
    Body,
    GuardedTransport,
    Pace,
    ssl_context,
)
from .protocol import RateLimit

#: Blobs up to this size (and all in-memory bytes up to it) go in one PUT.
MONOLITHIC_LIMIT = 16 * 1024 * 1024
#: Seconds manifest HEADs are skipped (GET instead) after one was refused with 429.
HEAD_PAUSE = 60.0
#: Chunk size of PATCH uploads: memory stays near one chunk whatever the blob size.
CHUNK_SIZE = 8 * 1024 * 1024

#: how OpenSSL says the other side answered a TLS handshake in plain HTTP
_PLAIN_HTTP_SIGNS = ("wrong_version_number", "wrong version number", "record layer failure",
                     "packet length too long")

BlobSource = bytes | bytearray | memoryview | IO[bytes]
T = TypeVar("T")


def _no_cookies() -> http.cookiejar.CookieJar:
    # Registries (Harbor) set session cookies; replaying them across calls is
    # state we do not want, and a cookie jar is one more place secrets hide.
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


@dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    """What a :class:`Registry` was built with, credentials resolved, so that another
    process (a Dask worker of a distributed crawl) can build the same client:
    ``Registry.from_settings(reg.settings)``. ``retry`` is the policy in force, not
    None. ``transport`` and an ``ssl.SSLContext`` in ``verify`` are objects of this
    process: :meth:`portable` says why such settings cannot travel."""

    url: str
    credentials: Credentials  # its repr hides every secret
    verify: bool | str | ssl.SSLContext = True
    cert: str | tuple[str, str] | None = None
    insecure: bool = False
    timeout: float = 30.0
    deadline: float | None = None  # None: the timeout
    min_rate: float = MIN_RATE
    listing_time: float = proto.LISTING_TIME
    max_pages: int = proto.MAX_PAGES
    max_connections: int = 32
    retry: RetryPolicy | None = None
    transport: httpx.BaseTransport | None = None

    def portable(self) -> str | None:
        """None when these settings rebuild the client in another process, else why not."""
        if self.transport is not None:
            return ("it was given transport= (a test transport lives in one process); "
                    "build it without one")
        if isinstance(self.verify, ssl.SSLContext):
            return ("its verify= is an ssl.SSLContext, which cannot be sent to another "
                    "process; pass a CA bundle path (present on every worker) instead")
        return None


class Registry:
    """A Docker Registry HTTP API V2 / OCI Distribution registry.

    ``Registry(url, username=None, password=None)`` pings ``GET /v2/`` at once: a URL
    that is not a registry, a refused connection or refused credentials fail here
    with a typed error naming the URL (never the password).

    Credentials: ``username``/``password`` (or ``credentials=ri.Credentials(...)`` for
    an identity or registry token) > docker's config.json ``auths`` > its credential
    helpers > anonymous. Basic and Bearer-token registries work alike.

    Keyword options: ``verify`` (True, a CA bundle path, or an ``ssl.SSLContext``),
    ``cert`` (client certificate: a PEM path, or ``(cert, key)`` paths), ``insecure``
    (no TLS verification: only when asked), ``timeout`` in seconds (to connect, and
    for each read), ``max_connections`` for the pool threads share, ``docker_config``
    (path of a docker config.json), ``retry`` (a :class:`RetryPolicy`: attempts and
    backoff for 408/429/5xx and dropped connections), ``transport`` (an httpx
    transport, for tests).

    Slow servers are bounded, not only stalled ones (a server may send a byte a
    second): ``deadline`` (seconds; None, the default: ``timeout``) is the time an
    answer read whole (a manifest, a listing page, an error, a token, the ping) may
    take to arrive; ``min_rate`` (bytes/s, default 4096; 0: none) is the rate a blob
    download must keep on average once ``timeout`` seconds have passed, so a big blob
    on a slow link still comes. Too slow: DeadlineExceeded (a RegistryUnreachable),
    not retried. A listing (catalog, tags, referrers) stops after ``listing_time``
    seconds (default 600) or ``max_pages`` pages (default 10,000) with ListingTooLong,
    never handing back part of a listing as if it were whole.

    ``settings`` keeps all of these (credentials resolved) to build the same client
    elsewhere (:meth:`from_settings`).
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        credentials: Credentials | None = None,
        verify: bool | str | ssl.SSLContext = True,
        cert: str | tuple[str, str] | None = None,
        insecure: bool = False,
        timeout: float = 30.0,
        deadline: float | None = None,
        min_rate: float = MIN_RATE,
        listing_time: float = proto.LISTING_TIME,
        max_pages: int = proto.MAX_PAGES,
        max_connections: int = 32,
        docker_config: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        _check_bounds(timeout=timeout, deadline=deadline, min_rate=min_rate,
                      listing_time=listing_time, max_pages=max_pages)
        parsed = proto.parse_registry_url(url)
        self.url = parsed.base
        if credentials is None:
            credentials = resolve_credentials(
                self.url,
                username if username is not None else parsed.username,
                password if password is not None else parsed.password,
                config_path=Path(docker_config) if docker_config else None,
            )
        self.credentials = credentials
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        given_transport = transport
        if transport is None:
            # httpx's pool on a network whose every wait ends at the answer's deadline
            transport = NetworkTransport(
                ssl_context=ssl_context(verify, cert, insecure=insecure), limits=limits
            )
        patience = math.inf if timeout is None else timeout  # httpx's None: no timeout
        pace = Pace(timeout=timeout, deadline=patience if deadline is None else deadline,
                    min_rate=min_rate, grace=patience)
        self._transport = GuardedTransport(transport, retry=retry, pace=pace)
        self.settings = RegistrySettings(
            url=self.url, credentials=credentials, verify=verify, cert=cert,
            insecure=insecure, timeout=timeout, deadline=deadline, min_rate=min_rate,
            listing_time=listing_time, max_pages=max_pages,
            max_connections=max_connections, retry=self._transport.backoff.policy,
            transport=given_transport)
        self._heads_refused_until = 0.0  # monotonic time; see manifest_descriptor
        self._http = httpx.Client(
            auth=RegistryAuth(credentials, registry_url=self.url),
            timeout=timeout,
            transport=self._transport,
            follow_redirects=True,
            cookies=_no_cookies(),
            headers={"User-Agent": f"reginsight/{__version__}"},
        )
        try:
            self._call(proto.ping_request(), lambda answer: proto.interpret_ping(
                answer, registry=self.url, has_credentials=not self.credentials.anonymous))
        except BaseException:
            self._http.close()
            raise

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> Registry:
        """A client built as ``settings`` say (pings the registry, as the constructor does)."""
        return cls(settings.url, credentials=settings.credentials, verify=settings.verify,
                   cert=settings.cert, insecure=settings.insecure, timeout=settings.timeout,
                   deadline=settings.deadline, min_rate=settings.min_rate,
                   listing_time=settings.listing_time, max_pages=settings.max_pages,
                   max_connections=settings.max_connections, retry=settings.retry,
                   transport=settings.transport)

    @property
    def username(self) -> str | None:
        """The user name the registry is read as (None: anonymous or a token only)."""
        return self.credentials.username

    @property
    def rate_limit(self) -> RateLimit | None:
        """The registry's last ``RateLimit-*`` answer (Docker Hub), if it sent one."""
        return self._transport.backoff.rate_limits.get(httpx.URL(self.url).host)

    @property
    def retries(self) -> int:
        """How many requests this client has had to try again."""
        return self._transport.backoff.retries

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return f"Registry({self.url!r}{user})"

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ I/O shell
    # Everything below this line and above "read API" is the only code that does I/O;
    # what to send and what an answer means come from the protocol core.

    def _absolute(self, url: str) -> str:
        return url if "://" in url else self.url + url

    @contextmanager
    def _transport_errors(self, method: str, url: str) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            # httpx messages hold no credentials; the URL is redacted anyway.
            raise RegistryUnreachable(
                f"{method} {redact(url)}: cannot reach the registry at {self.url} "
                f"({type(exc).__name__}: {exc}){self._plain_http_hint(exc)}"
            ) from None
        except httpx.RequestError as exc:  # redirect loops, undecodable bodies
            raise ProtocolViolation(f"{method} {redact(url)}: {type(exc).__name__}: {exc}"
                                    ) from None

    def _plain_http_hint(self, exc: Exception) -> str:
        """TLS spoken to a plain-HTTP server fails with OpenSSL's "wrong version number"
        (the server's HTTP answer read as a TLS record): say what it most likely means."""
        if not self.url.startswith("https://"):
            return ""
        text = str(exc).lower()
        if not any(sign in text for sign in _PLAIN_HTTP_SIGNS):
            return ""
        return (f"; the server may speak plain HTTP: try "
                f"http://{self.url.removeprefix('https://')}")

    @contextmanager
    def _naming_404(self, what: str, unknown: str) -> Iterator[None]:
        """A 404 says what is missing (``not found: team/app:v1 (...)``), not only which
        request failed. A HEAD's 404 has no body, so no error code: ``unknown`` says
        what the 404 of that endpoint means."""
        try:
            yield
        except NotFound as exc:
            said = "; ".join(f"{e.code}: {e.message}" if e.message else e.code
                             for e in exc.errors) or unknown
            raise NotFound(f"not found: {what} ({said}, HTTP {exc.status} from {self.url})",
                           status=exc.status, url=exc.url, errors=exc.errors) from exc

    @contextmanager
    def _exchange(self, request: proto.Request, *, streamed: bool = False
                  ) -> Iterator[httpx.Response]:
        """Send ``request``; the streaming response, released (and its request body
        let go) on exit. ``streamed``: its body goes to the caller as it comes (a blob
        download), held to a minimum rate rather than a deadline."""
        url = self._absolute(request.url)
        extensions: dict[str, Any] = {SCOPE: request.scope}
        if streamed:
            extensions[STREAM] = True
        if request.limit is not None:
            extensions[LIMIT] = request.limit
        if request.pull:
            extensions[PULL] = True
        if request.fallback:
            extensions[FALLBACK] = True
        sent = Body(request.content or b"")
        with self._transport_errors(request.method, url):
            message = self._http.build_request(request.method, url, headers=request.headers,
                                               extensions=extensions)
            if request.content is not None:
                message.stream = sent
                message.headers["Content-Length"] = str(len(request.content))
            response = self._http.send(message, stream=True)
        try:
            yield response
        finally:
            self._release(response)
            sent.release()

    def _answer(self, request: proto.Request, response: httpx.Response, *, read: bool = True
                ) -> proto.Answer:
        """The response as the protocol core's Answer. Error bodies are always read
        (capped by the transport); a body without a limit at most SMALL_BODY_LIMIT."""
        body = b""
        if read or response.status_code >= 400:
            # the transport already read (or capped) bodies with a limit and error bodies
            bounded = request.limit is not None or response.status_code >= 400
            body = self._body(response, cap=None if bounded else proto.SMALL_BODY_LIMIT)
        return proto.Answer.of(response.status_code, response.headers.items(), body,
                               url=self._absolute(request.url), method=request.method)

    def _call(self, request: proto.Request, interpret: Callable[[proto.Answer], T]) -> T:
        """The one request path: send ``request``, hand its answer to ``interpret``."""
        with self._exchange(request) as response:
            answer = self._answer(request, response)
        return interpret(answer)

    def _release(self, response: httpx.Response) -> None:
        """Close a response, first reading a small unread body so that its connection
        goes back to the pool instead of being dropped (and left to the cyclic GC)."""
        length = proto.decimal(response.headers.get("content-length"))
        small = response.request.method == "HEAD" or (length is not None and length <= 65536)
        if small and not response.is_stream_consumed and not response.is_closed:
            with contextlib.suppress(httpx.HTTPError, RegistryError):
                response.read()
        response.close()

    def _body(self, response: httpx.Response, *, cap: int | None = None) -> bytes:
        with self._transport_errors(response.request.method, str(response.url)):
            if cap is None:
                return response.read()
            parts, seen = [], 0
            for chunk in response.iter_bytes():
                parts.append(chunk[: cap - seen])
                seen += len(chunk)
                if seen >= cap:
                    break
            return b"".join(parts)

    def _pages(self, what: str, first: proto.Request,
               interpret: Callable[[proto.Request, proto.Answer], proto.Page], *,
               page_size: int | None = None) -> Iterator[proto.Page]:
        """Every page, following Link rel="next" (asked with ``n`` = ``page_size``, or
        ``proto.PAGE_SIZE``, where the registry pages smaller); a loop is refused, and
        a listing past ``max_pages`` or ``listing_time`` stops (ListingTooLong)."""
        paging = self._paging(what, page_size=page_size or proto.PAGE_SIZE)
        started = time.monotonic()
        request: proto.Request | None = first
        while request is not None:
            url = self._absolute(request.url)
            paging.admit(url, time.monotonic() - started)
            try:
                page = self._call(request,
                                  lambda answer, asked=request: interpret(asked, answer))
            except ResponseError as exc:
                request = paging.refused(exc)  # a page asked bigger: as the registry says
                if request is None:
                    raise
                continue
            paging.read(url, len(page.entries) + len(page.invalid), again=page.again)
            yield page
            request = paging.follow(page)

    def _paging(self, what: str, *, page_size: int | None = None) -> proto.Paging:
        return proto.Paging(what, max_pages=self.settings.max_pages,
                            max_seconds=self.settings.listing_time, page_size=page_size)

    # ------------------------------------------------------------ read API

    def repositories(self, *, page_size: int | None = None) -> list[str]:
        """Every repository in the catalog (all pages of ``/v2/_catalog``), in catalog order.

        ``page_size`` asks for ``n`` entries a page (when None: the registry's default
        for the first page, 100 on Distribution, and ``n=1000`` for the pages after it
        where the registry's Link says less); a registry that refuses the number (400
        PAGINATION_NUMBER_INVALID) is asked again with smaller pages. A catalog entry
        that is not a valid repository name raises ProtocolViolation, so every name
        returned can be asked for; :meth:`catalog` sets such entries apart instead.
        """
        return [name for page in self._pages("the catalog",
                                             proto.catalog_page(page_size=page_size),
                                             proto.interpret_catalog_page,
                                             page_size=page_size)
                for name in page.entries]

    def catalog(self, *, page_size: int | None = None) -> proto.Listing:
        """The catalog as listed (every page): ``names``, the valid repository names in
        catalog order, as :meth:`repositories` gives them, and ``invalid``, the entries
        that are no repository name, set apart (each ``shown`` safely, with its
        ``problem``), never put in a URL. What a crawl reads: one bad entry there is an
        ``errors`` row, not the end of the crawl."""
        pages = list(self._pages("the catalog", proto.catalog_page(page_size=page_size),
                                 partial(proto.interpret_catalog_page, keep_invalid=True),
                                 page_size=page_size))
        return proto.Listing(names=tuple(name for page in pages for name in page.entries),
                             invalid=tuple(entry for page in pages for entry in page.invalid))

    def tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repository`` (all pages), sorted; registries serve them unsorted.
        A tag that is not valid raises ProtocolViolation.

        ``page_size`` asks for ``n`` tags a page. None (the default) asks the first
        page without ``n``, which Distribution 2.8 and 3.0 answer with every tag at
        once, and the pages after it with ``n=1000`` where a registry pages by a
        smaller ``n`` of its own. A size refused (400) is asked again smaller, or as
        the registry's Link says.
        """
        first = proto.tags_page(repository, page_size=page_size)
        with self._naming_404(repository, "repository unknown"):
            return sorted({tag for page in self._pages(f"tags of {repository}", first,
                                                       proto.interpret_tags_page,
                                                       page_size=page_size)
                           for tag in page.entries})

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest at ``reference`` (a tag or a digest), as a frozen model.

        Sends every manifest media type in Accept so the registry serves the stored
        document unchanged. The bytes are checked against the digest asked for, or the
        ``Docker-Content-Digest`` the registry announced. Over 4 MiB is refused (TooLarge).
        """
        with self._naming_404(_manifest_name(repository, reference), "manifest unknown"):
            return self._call(proto.get_manifest(repository, reference),
                              lambda answer: proto.interpret_manifest(answer, reference))

    def manifest_digest(self, repository: str, reference: str) -> str:
        """The digest of the manifest at ``reference``, by HEAD: what ``manifest()`` gives."""
        return self.manifest_descriptor(repository, reference).digest

    def manifest_descriptor(self, repository: str, reference: str) -> Descriptor:
        """Digest, size and media type of the manifest at ``reference``, by HEAD.

        A registry that sends no ``Docker-Content-Digest`` on HEAD is asked with GET.
        So is one that refuses HEADs with 429 while it still serves GETs (at once;
        on a registry that meters GETs, once the HEAD's retries are spent): for the
        next minute (or its longer ``Retry-After``), this client asks by GET at once.
        """
        found = None
        if time.monotonic() >= self._heads_refused_until:
            try:
                with self._naming_404(_manifest_name(repository, reference),
                                      "manifest unknown"):
                    found = self._call(proto.head_manifest(repository, reference),
                                       proto.interpret_manifest_head)
            except RateLimited as exc:
                pause = max(exc.retry_after or 0.0, HEAD_PAUSE)
                self._heads_refused_until = time.monotonic() + pause
        return found or self.manifest(repository, reference).descriptor()

    def referrers(self, repository: str, digest: str, *, artifact_type: str | None = None
                  ) -> list[Descriptor] | None:
        """The manifests whose ``subject`` is ``digest`` (OCI 1.1 referrers API), every
        page; only ``artifact_type`` ones if given. None when the registry has no
        referrers API: its referrers are then indexed under the fallback tag
        (``proto.fallback_tag(digest)``)."""
        found: list[Descriptor] = []
        paging = self._paging(f"referrers of {repository}@{digest}")
        started = time.monotonic()
        request: proto.Request | None = proto.referrers(repository, digest,
                                                         artifact_type=artifact_type)
        while request is not None:
            url = self._absolute(request.url)
            paging.admit(url, time.monotonic() - started)
            page = self._call(request, lambda answer, asked=request: proto.interpret_referrers(
                asked, answer, artifact_type=artifact_type))
            if page is None:
                return None
            entries, request = page
            paging.read(url, len(entries))
            found.extend(entries)
        return found

    def has_blob(self, repository: str, digest: str) -> bool:
        """True if the blob exists in (is linked into) ``repository``."""
        return self._call(proto.head_blob(repository, digest), proto.interpret_has_blob)

    def blob_size(self, repository: str, digest: str) -> int:
        """The blob's size in bytes, by HEAD."""
        with self._naming_404(f"blob {digest} in {repository}", "blob unknown"):
            return self._call(proto.head_blob(repository, digest), proto.interpret_blob_size)

    @contextmanager
    def download_blob(
        self, repository: str, digest: str, *, chunk_size: int = 1 << 20
    ) -> Iterator[BlobReader]:
        """Stream a blob: ``with reg.download_blob(repo, digest) as f: f.read(...)``.

        Bytes are hashed while read; reaching EOF with the wrong digest or length raises
        DigestMismatch. Redirects (to storage or a CDN) are followed; httpx drops the
        Authorization header when the redirect leaves the registry's origin.
        """
        request = proto.get_blob(repository, digest)
        with self._exchange(request, streamed=True) as response:
            size = proto.interpret_blob_start(self._answer(request, response, read=False))
            chunks = self._resumable(response, repository, digest, chunk_size)
            with BlobReader(chunks, digest=digest, size=size) as reader:
                yield reader

    def _resumable(self, response: httpx.Response, repository: str, digest: str,
                   chunk_size: int) -> Iterator[bytes]:
        """The body's chunks; when the connection drops mid-body, ask again from the
        byte where it broke (``Range``; a server that ignores it is skipped forward),
        so a download is never returned short. Attempts and waits: the RetryPolicy's."""
        backoff, host = self._transport.backoff, httpx.URL(self.url).host
        received, skip = 0, 0
        with contextlib.ExitStack() as resumed:
            current = response
            attempts = backoff.resumptions(host)
            for attempt in attempts:
                try:
                    for chunk in current.iter_bytes(chunk_size):
                        if skip:
                            dropped = min(skip, len(chunk))
                            chunk, skip = chunk[dropped:], skip - dropped
                        received += len(chunk)
                        if chunk:
                            yield chunk
                    return
                except httpx.TransportError as exc:
                    if attempt == attempts[-1]:
                        raise RegistryUnreachable(
                            f"GET {redact(str(current.url))}: connection lost "
                            f"{attempt} times; {received} bytes read ({exc})") from None
                except httpx.RequestError as exc:  # an undecodable body: not worth a retry
                    raise ProtocolViolation(f"GET {redact(str(current.url))}: {exc}") from None
                resumed.close()  # the previous resumption's response
                backoff.retry(host)
                request = proto.get_blob(repository, digest, offset=received)
                current = resumed.enter_context(self._exchange(request, streamed=True))
                skip = proto.resume_skip(self._answer(request, current, read=False), received)

    # ------------------------------------------------------------ write API

    def upload_blob(
        self, repository: str, data: BlobSource, digest: str | None = None,
        *, chunk_size: int = CHUNK_SIZE, check_present: bool = True,
    ) -> str:
        """Upload a blob from bytes or a binary file object; return its digest.

        Skips the upload when the registry already has the blob (``check_present=False``:
        the caller has just asked, so no HEAD is sent again). Small blobs go in
        one PUT; large or unknown-size streams in PATCH chunks of ``chunk_size``,
        resumed from the registry's ``Range`` when a connection drops. The digest is
        computed while streaming and checked against ``digest`` (DigestMismatch,
        upload cancelled) before the registry verifies it again; so is the digest the
        registry says it stored (``Docker-Content-Digest``, the ``Location`` it answers).
        """
        validate_repository(repository)
        expected = parse_digest(digest) if digest is not None else None
        algorithm = expected.algorithm if expected else "sha256"
        if isinstance(data, bytes | bytearray | memoryview):
            data = bytes(data)
            actual = Digest.of(data, algorithm)
            if expected is not None and actual != expected:
                raise DigestMismatch(f"upload to {repository}: data is not {expected}",
                                     expected=str(expected), actual=str(actual))
            if check_present and self.has_blob(repository, str(actual)):
                return str(actual)
            if len(data) <= MONOLITHIC_LIMIT:
                session = self._call(proto.start_upload(repository),
                                     proto.interpret_start_upload)
                return self._finish_upload(repository, session, actual, body=data)
            return self._chunked_upload(repository, io.BytesIO(data), actual, chunk_size)
        if not hasattr(data, "read"):
            raise TypeError("upload_blob takes bytes or a binary file object")
        if expected is None and _seekable(data):
            # hash a seekable file first: an existing blob is then never sent
            start, verifier = data.tell(), DigestVerifier(Digest.of(b"", algorithm))
            while chunk := data.read(chunk_size):
                verifier.update(chunk)
            data.seek(start)
            expected = verifier.actual
        if check_present and expected is not None and self.has_blob(repository,
                                                                    str(expected)):
            return str(expected)
        return self._chunked_upload(repository, data, expected, chunk_size,
                                    algorithm=algorithm)

    def _chunked_upload(
        self, repository: str, stream: IO[bytes], expected: Digest | None, chunk_size: int,
        *, algorithm: str = "sha256",
    ) -> str:
        session = self._call(proto.start_upload(repository), proto.interpret_start_upload)
        verifier = DigestVerifier(expected or Digest.of(b"", algorithm))
        offset = 0
        try:
            while chunk := _read_full(stream, chunk_size):
                verifier.update(chunk)
                session, offset = self._patch(repository, session, chunk, offset)
            actual = verifier.actual
            if expected is not None and actual != expected:
                raise DigestMismatch(
                    f"upload to {repository}: {offset} bytes read hash to {actual}, "
                    f"not {expected}", expected=str(expected), actual=str(actual))
            return self._finish_upload(repository, session, actual, body=b"")
        except BaseException:
            self._cancel_upload(repository, session)
            raise

    def _patch(self, repository: str, session: str, chunk: bytes, offset: int
               ) -> tuple[str, int]:
        """Send ``chunk`` at ``offset``; after a drop, resume from the registry's Range
        (attempts and waits: the RetryPolicy's)."""
        backoff, host = self._transport.backoff, httpx.URL(self.url).host
        sent = 0
        attempts = backoff.resumptions(host)
        for attempt in attempts:
            if attempt > 1:
                backoff.retry(host)
            request = proto.patch_chunk(repository, session, chunk[sent:], offset + sent)
            try:
                progress = self._call(request, proto.interpret_patch)
            except RegistryUnreachable as exc:
                if attempt == attempts[-1]:
                    raise
                try:  # where did the registry get to? (2.8 cannot say once it moved on)
                    progress = self._call(proto.upload_status(repository, session),
                                          proto.interpret_upload_status)
                except ResponseError:
                    raise exc from None
            session = progress.location
            accepted = proto.accepted_offset(progress, offset=offset, length=len(chunk),
                                             repository=repository)
            sent = accepted - offset
            if sent == len(chunk):
                return session, accepted
        raise ProtocolViolation(f"upload to {repository}: chunk at {offset} never accepted")

    def _finish_upload(self, repository: str, session: str, digest: Digest, *,
                       body: bytes) -> str:
        return self._call(proto.finish_upload(repository, session, digest, body),
                          lambda answer: proto.interpret_finish_upload(
                              answer, digest, what=f"blob upload to {repository}"))

    def _cancel_upload(self, repository: str, session: str) -> None:
        # best effort: the error that made us cancel is the one worth raising
        with contextlib.suppress(RegistryError):
            self._call(proto.cancel_upload(repository, session), lambda answer: None)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Mount a blob from another repository of this registry without sending it.

        True when mounted (201). False when the registry opened an upload session
        instead (202): that session is cancelled, never leaked.
        """
        result = self._call(proto.mount_blob(repository, digest, from_repository),
                            lambda answer: proto.interpret_mount(
                                answer, validate_digest(digest),
                                what=f"mount into {repository}"))
        if not result.mounted and result.session:
            self._cancel_upload(repository, result.session)
        return result.mounted

    def put_manifest(
        self, repository: str, reference: str, manifest: Manifest | Mapping[str, Any] | bytes,
        media_type: str | None = None,
    ) -> str:
        """Store a manifest under a tag (or its digest); return the digest.

        ``manifest`` is a model (its bytes are sent unchanged), a dict (sent as JSON)
        or raw bytes. The Content-Type is ``media_type`` or the document's own
        ``mediaType``; they must agree. The digest the registry says it stored (its
        ``Docker-Content-Digest``, and the digest its ``Location`` names) is checked
        against the bytes sent (for signed schema1: the signed payload): another one
        raises DigestMismatch, as a registry that kept the manifest a tag already named
        answers (django-oci: 201, Location naming the old digest).
        """
        request, parsed = proto.put_manifest(repository, reference, _manifest_bytes(manifest),
                                             media_type)

        return self._call(request, lambda answer: proto.interpret_put_manifest(
            answer, parsed, what=f"manifest {_manifest_name(repository, reference)}"))

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete the manifest ``digest``: every tag pointing at it goes with it.

        Only digests are accepted (registry 2.8 refuses tags here). This is the bare
        API call: it does not check what the deletion takes with it. To remove one tag
        and nothing else, use :func:`reginsight.delete_tag`; to delete a manifest only
        when no tag and no tagged index (a multi-arch image it is a platform of) holds
        it, :func:`reginsight.delete_digest`. A registry with deletion disabled
        answers 405: UnsupportedOperation.
        """
        with self._naming_404(_manifest_name(repository, digest), "manifest unknown"):
            self._call(proto.delete_manifest(repository, digest), proto.interpret_delete)

    def untag(self, repository: str, tag: str) -> None:
        """Remove one tag only, by the OCI ``DELETE /manifests/<tag>``.

        Registries without it (Distribution 2.8 answers 400 DIGEST_INVALID) raise
        UnsupportedOperation; nothing is deleted then.
        """
        self._call(proto.untag(repository, tag),
                   lambda answer: proto.interpret_untag(answer, registry=self.url))


def _check_bounds(*, timeout: float | None, deadline: float | None, min_rate: float,
                  listing_time: float, max_pages: int) -> None:
    """Refuse a bound that would refuse every answer (0 s), none by mistake (-1), or
    that compares with nothing (NaN: httpx's own error named no option)."""
    def positive(value: float | None) -> bool:
        return value is None or value > 0  # False for NaN

    wrong = [f"{name}={value!r}" for name, value, ok in (
        ("timeout", timeout, positive(timeout)),
        ("deadline", deadline, positive(deadline)),
        ("min_rate", min_rate, min_rate >= 0),
        ("listing_time", listing_time, listing_time > 0),
        ("max_pages", max_pages, max_pages >= 1)) if not ok]
    if wrong:
        raise ValueError(f"Registry({', '.join(wrong)}): timeout (None: none), deadline and "
                         "listing_time must be > 0, min_rate >= 0 (0: no minimum), "
                         "max_pages >= 1")


def _manifest_name(repository: str, reference: str) -> str:
    """``team/app:v1`` or ``team/app@sha256:...``, as the user would write it."""
    return f"{repository}{'@' if is_digest(reference) else ':'}{reference}"


def _read_full(stream: IO[bytes], size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads (pipes, sockets, BlobReader)."""
    parts, wanted = [], size
    while wanted:
        part = stream.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _manifest_bytes(manifest: Manifest | Mapping[str, Any] | bytes) -> bytes:
    if isinstance(manifest, Manifest):
        return manifest.raw
    if isinstance(manifest, bytes | bytearray | memoryview):
        return bytes(manifest)
    if isinstance(manifest, Mapping):
        return json.dumps(manifest, indent=3).encode()
    raise TypeError("manifest must be a reginsight Manifest, a dict or bytes")
