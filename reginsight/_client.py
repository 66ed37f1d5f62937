"""The synchronous registry client: a thin I/O shell over the sans-I/O protocol core."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from . import __version__
from . import _protocol as proto
from ._auth import CATALOG_SCOPE, SCOPE, RegistryAuth, repository_scope
from ._blobreader import BlobReader
from ._credentials import Credentials, resolve_credentials
from ._digest import validate_digest
from ._errors import (
    NotFound,
    ProtocolViolation,
    RegistryError,
    RegistryUnreachable,
    ResponseError,
)
from ._json import json_object
from ._manifest import Descriptor, Manifest, parse_manifest
from ._mediatypes import MANIFEST_ACCEPT, essence
from ._reference import validate_repository, validate_tag
from ._retry import RateLimit, RetryPolicy
from ._transport import LIMIT, Body, GuardedTransport, ssl_context
from ._write import Writes

#: Catalog and tag-list pages are JSON lists of names; a page over this is refused.
LIST_PAGE_LIMIT = 32 * 1024 * 1024
#: A paginated listing that goes on longer than this is a loop or an attack.
MAX_PAGES = 100_000


def _no_cookies() -> http.cookiejar.CookieJar:
    # Registries (Harbor) set session cookies; replaying them across calls is
    # state we do not want, and a cookie jar is one more place secrets hide.
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class Registry(Writes):
    """A Docker Registry HTTP API V2 / OCI Distribution registry.

    ``Registry(url, username=None, password=None)`` pings ``GET /v2/`` at once: a URL
    that is not a registry, a refused connection or refused credentials fail here
    with a typed error naming the URL (never the password).

    Credentials: ``username``/``password`` (or ``credentials=ri.Credentials(...)`` for
    an identity or registry token) > docker's config.json ``auths`` > its credential
    helpers > anonymous. Basic and Bearer-token registries work alike.

    Keyword options: ``verify`` (True, a CA bundle path, or an ``ssl.SSLContext``),
    ``cert`` (client certificate: a PEM path, or ``(cert, key)`` paths), ``insecure``
    (no TLS verification: only when asked), ``timeout`` in seconds,
    ``max_connections`` for the pool threads share, ``docker_config`` (path of a
    docker config.json), ``retry`` (a :class:`RetryPolicy`: attempts and backoff for
    408/429/5xx and dropped connections), ``transport`` (an httpx transport, for tests).
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
        max_connections: int = 32,
        docker_config: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
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
        if transport is None:
            transport = httpx.HTTPTransport(
                verify=ssl_context(verify, cert, insecure=insecure), limits=limits
            )
        self._transport = GuardedTransport(transport, retry=retry)
        self._http = httpx.Client(
            auth=RegistryAuth(credentials, registry_url=self.url),
            timeout=timeout,
            transport=self._transport,
            follow_redirects=True,
            cookies=_no_cookies(),
            headers={"User-Agent": f"reginsight/{__version__}"},
        )
        try:
            self._ping()
        except BaseException:
            self._http.close()
            raise

    @property
    def username(self) -> str | None:
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

    @contextmanager
    def _transport_errors(self, method: str, url: str) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            # httpx messages hold no credentials; the URL is redacted anyway.
            raise RegistryUnreachable(
                f"{method} {proto.redact(url)}: cannot reach the registry at {self.url} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        except httpx.RequestError as exc:  # redirect loops, undecodable bodies
            raise ProtocolViolation(
                f"{method} {proto.redact(url)}: {type(exc).__name__}: {exc}") from None

    def _open(
        self,
        method: str,
        path: str,
        *,
        scope: tuple[str, ...] = (),
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        limit: int | None = None,
        check: bool = True,
    ) -> tuple[httpx.Response, Body]:
        """Send a request; return the streaming response (and its body, to release).

        ``scope`` names the token scopes the call needs; ``limit`` caps a 2xx body
        (TooLarge past it). With ``check``, an error status raises the typed error
        from :func:`proto.decipher_error` (its body capped by the transport).
        """
        url = path if "://" in path else self.url + path
        extensions: dict[str, Any] = {SCOPE: scope}
        if limit is not None:
            extensions[LIMIT] = limit
        sent = Body(content or b"")
        with self._transport_errors(method, url):
            request = self._http.build_request(method, url, headers=headers,
                                               extensions=extensions)
            if content is not None:
                request.stream = sent
                request.headers["Content-Length"] = str(len(content))
            response = self._http.send(request, stream=True)
        if check and response.status_code >= 400:
            try:
                body = self._body(response)
            finally:
                self._release(response)
                sent.release()
            raise proto.decipher_error(
                response.status_code, response.headers, body, method=method, url=url)
        return response, sent

    @contextmanager
    def _send(self, method: str, path: str, **options: Any) -> Iterator[httpx.Response]:
        """:meth:`_open` as a context: the response is released on exit."""
        response, sent = self._open(method, path, **options)
        try:
            yield response
        finally:
            self._release(response)
            sent.release()

    def _release(self, response: httpx.Response) -> None:
        """Close a response, first reading a small unread body so that its connection
        goes back to the pool instead of being dropped (and left to the cyclic GC)."""
        length = response.headers.get("content-length", "")
        small = response.request.method == "HEAD" or (length.isdigit() and int(length) <= 65536)
        if small and not response.is_stream_consumed and not response.is_closed:
            with contextlib.suppress(httpx.HTTPError, RegistryError):
                response.read()
        response.close()

    def _body(self, response: httpx.Response) -> bytes:
        with self._transport_errors(response.request.method, str(response.url)):
            return response.read()

    def _get_json(self, url: str, scope: tuple[str, ...]) -> tuple[httpx.Response, Any]:
        with self._send("GET", url, scope=scope, limit=LIST_PAGE_LIMIT) as response:
            body = self._body(response)
        doc = json_object(body)
        if doc is None:
            raise ProtocolViolation(f"GET {proto.redact(url)}: the registry sent no JSON object")
        return response, doc

    def _ping(self) -> None:
        with self._send("GET", "/v2/", check=False) as response:
            body = self._body(response)
        proto.check_ping(
            response.status_code, response.headers, body,
            url=self.url, has_credentials=not self.credentials.anonymous,
        )

    def _paginate(self, url: str, key: str, scope: tuple[str, ...]) -> Iterator[Any]:
        """Yield the entries under ``key`` of every page, following Link rel="next"."""
        seen: set[str] = set()
        while url:
            if url in seen or len(seen) >= MAX_PAGES:
                raise ProtocolViolation(
                    f"{proto.redact(url)}: pagination loops; stopped after {len(seen)} pages"
                )
            seen.add(url)
            try:
                response, doc = self._get_json(url, scope)
            except ResponseError as exc:
                smaller = _smaller_page(url, exc)
                if smaller is None:
                    raise
                seen.discard(url)
                url = smaller
                continue
            entries = doc.get(key) or []
            if not isinstance(entries, list):
                raise ProtocolViolation(f"GET {proto.redact(url)}: {key!r} is not a list")
            yield from entries
            url = proto.next_link(response.headers.get("link"), url) or ""

    # ------------------------------------------------------------ read API

    def repositories(self, *, page_size: int | None = None) -> list[str]:
        """Every repository in the catalog (all pages of ``/v2/_catalog``), in catalog order.

        ``page_size`` asks for ``n`` entries a page (the registry's default when None:
        100 on Distribution 2.8); a registry that refuses the number (400
        PAGINATION_NUMBER_INVALID) is asked again with smaller pages. A catalog entry
        that is not a valid repository name raises ProtocolViolation.
        """
        url = f"{self.url}/v2/_catalog" + (f"?n={int(page_size)}" if page_size else "")
        names = []
        for name in self._paginate(url, "repositories", (CATALOG_SCOPE,)):
            names.append(_checked(name, validate_repository, "repository name"))
        return names

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository`` (all pages), sorted; registries serve them unsorted."""
        url = self.url + proto.tags_path(repository)
        tags = self._paginate(url, "tags", _pull(repository))
        return sorted({_checked(tag, validate_tag, "tag") for tag in tags})

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest at ``reference`` (a tag or a digest), as a frozen model.

        Sends every manifest media type in Accept so the registry serves the stored
        document unchanged. The bytes are checked against the digest asked for, or the
        ``Docker-Content-Digest`` the registry announced. Over 4 MiB is refused (TooLarge).
        """
        path = proto.manifest_path(repository, reference)
        with self._send("GET", path, scope=_pull(repository), limit=proto.MANIFEST_LIMIT,
                        headers={"Accept": MANIFEST_ACCEPT}) as response:
            raw = self._body(response)
        expected = reference if ":" in reference else self._announced_digest(response)
        return parse_manifest(
            raw, content_type=response.headers.get("content-type"), digest=expected
        )

    def manifest_digest(self, repository: str, reference: str) -> str:
        """The digest of the manifest at ``reference``, by HEAD: what ``manifest()`` gives."""
        return self.manifest_descriptor(repository, reference).digest

    def manifest_descriptor(self, repository: str, reference: str) -> Descriptor:
        """Digest, size and media type of the manifest at ``reference``, by HEAD.

        A registry that sends no ``Docker-Content-Digest`` on HEAD is asked with GET.
        """
        path = proto.manifest_path(repository, reference)
        with self._send("HEAD", path, scope=_pull(repository),
                        headers={"Accept": MANIFEST_ACCEPT}) as response:
            digest = self._announced_digest(response)
            length = response.headers.get("content-length", "")
            media_type = essence(response.headers.get("content-type"))
        if digest is None or not length.isdigit():
            return self.manifest(repository, reference).descriptor()
        return Descriptor(media_type=media_type, digest=digest, size=int(length))

    def has_blob(self, repository: str, digest: str) -> bool:
        """True if the blob exists in (is linked into) ``repository``."""
        try:
            with self._send("HEAD", proto.blob_path(repository, validate_digest(digest)),
                            scope=_pull(repository)):
                return True
        except NotFound:
            return False

    def blob_size(self, repository: str, digest: str) -> int:
        """The blob's size in bytes, by HEAD."""
        path = proto.blob_path(repository, validate_digest(digest))
        with self._send("HEAD", path, scope=_pull(repository)) as response:
            length = response.headers.get("content-length", "")
        if not length.isdigit():
            raise ProtocolViolation(f"HEAD blob {digest}: no Content-Length from {self.url}")
        return int(length)

    @contextmanager
    def download_blob(
        self, repository: str, digest: str, *, chunk_size: int = 1 << 20
    ) -> Iterator[BlobReader]:
        """Stream a blob: ``with reg.download_blob(repo, digest) as f: f.read(...)``.

        Bytes are hashed while read; reaching EOF with the wrong digest or length raises
        DigestMismatch. Redirects (to storage or a CDN) are followed; httpx drops the
        Authorization header when the redirect leaves the registry's origin.
        """
        path = proto.blob_path(repository, validate_digest(digest))
        # identity: the digest and Range offsets count stored bytes, not decoded ones
        with self._send("GET", path, scope=_pull(repository),
                        headers={"Accept-Encoding": "identity"}) as response:
            length = response.headers.get("content-length", "")
            reader = BlobReader(
                self._resumable(response, path, repository, chunk_size),
                digest=digest,
                size=int(length) if length.isdigit() else None,
            )
            with reader:
                yield reader

    def _resumable(self, response: httpx.Response, path: str, repository: str,
                   chunk_size: int) -> Iterator[bytes]:
        """The body's chunks; when the connection drops mid-body, ask again from the
        byte where it broke (``Range``; a server that ignores it is skipped forward),
        so a download is never returned short."""
        received, skip, current = 0, 0, response
        attempts = self._transport.backoff.policy.attempts
        try:
            for attempt in range(1, attempts + 1):
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
                    if attempt == attempts:
                        raise RegistryUnreachable(
                            f"GET {proto.redact(str(current.url))}: connection lost "
                            f"{attempts} times; {received} bytes read ({exc})") from None
                except httpx.RequestError as exc:  # an undecodable body: not worth a retry
                    raise ProtocolViolation(
                        f"GET {proto.redact(str(current.url))}: {exc}") from None
                if current is not response:
                    self._release(current)
                self._transport.backoff.failure(httpx.URL(self.url).host, None)
                current, _ = self._open("GET", path, scope=_pull(repository),
                                        headers={"Range": f"bytes={received}-",
                                                 "Accept-Encoding": "identity"})
                ranged = current.headers.get("content-range", "")
                skip = 0 if current.status_code == 206 and ranged.startswith(
                    f"bytes {received}-") else received
        finally:
            if current is not response:
                self._release(current)

    def _announced_digest(self, response: httpx.Response) -> str | None:
        value = response.headers.get(proto.DOCKER_CONTENT_DIGEST)
        if not value:
            return None
        return _checked(value.strip(), validate_digest, "Docker-Content-Digest")


def _pull(repository: str) -> tuple[str, ...]:
    return (repository_scope(repository, "pull"),)


def _checked(value: Any, validate: Any, what: str) -> str:
    """Validate a value the registry sent; a bad one is the server's fault, not the user's."""
    try:
        if not isinstance(value, str):
            raise TypeError
        return validate(value)
    except (TypeError, ValueError):
        raise ProtocolViolation(
            f"the registry sent an invalid {what}: {str(value)[:80]!r}"
        ) from None


def _smaller_page(url: str, exc: ResponseError) -> str | None:
    """On 400 PAGINATION_NUMBER_INVALID, the same page asked with a smaller ``n``."""
    if exc.status != 400 or "PAGINATION_NUMBER_INVALID" not in exc.codes:
        return None
    parsed = httpx.URL(url)
    current = parsed.params.get("n", "")
    if not current.isdigit() or int(current) <= 10:
        return None
    return str(parsed.copy_set_param("n", str(max(10, int(current) // 2))))
