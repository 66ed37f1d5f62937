"""Registry authentication as one httpx.Auth generator flow: Basic and Bearer tokens.

The flow (after httpx's DigestAuth): send the request, with a cached credential
when one fits; on a 401, read the ``WWW-Authenticate`` challenge; for Bearer, yield
a token request to the realm, then the original request again with the token.
Tokens are cached per (realm, service, scopes) until shortly before they expire.

The client names the scopes a call needs in ``request.extensions[SCOPE]``; they
are merged with the challenge's, so one token serves the whole call.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Generator
from urllib.parse import urlsplit

import httpx

from .._errors import AuthenticationError, UnsafeAddress
from .._json import json_object
from ._credentials import Credentials
from ._hosts import host_class, origin, redact, unsafe_host_reason
from ._transport import LIMIT, REALM_ORIGIN
from .protocol import Challenge, merge_scopes, parse_challenges, with_query

#: request.extensions key holding the scopes (tuple of str) a request needs.
SCOPE = "reginsight.scope"
#: Token answers larger than this are refused (a hostile realm can send forever).
TOKEN_BODY_LIMIT = 1024 * 1024
DEFAULT_EXPIRES_IN = 60


def check_realm(realm: str, registry_url: str) -> None:
    """Refuse a token realm that would leak credentials: https downgraded to http, a
    metadata or link-local address, or an IP literal outside the registry's network
    (a public registry pointing its realm at loopback or a private address)."""
    parts = urlsplit(realm)
    registry = urlsplit(registry_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeAddress(f"token realm {redact(realm)!r} is not an http(s) URL")
    if registry.scheme == "https" and parts.scheme != "https":
        raise UnsafeAddress(
            f"token realm {redact(realm)} would downgrade {registry_url} from https to http"
        )
    reason = unsafe_host_reason(parts.hostname)
    if reason:
        raise UnsafeAddress(f"token realm {redact(realm)} points at {reason}")
    realm_class = host_class(parts.hostname)
    registry_class = host_class(registry.hostname or "") or "public"
    allowed = {"public": {"public"}, "private": {"private", "public"},
               "loopback": {"loopback", "private", "public"}}[registry_class]
    if realm_class is not None and realm_class not in allowed:
        raise UnsafeAddress(
            f"token realm {redact(realm)} is a {realm_class} address, outside the network "
            f"of {registry_url}"
        )


class RegistryAuth(httpx.Auth):
    """Basic and Bearer-token authentication for one registry (thread-safe)."""

    def __init__(self, credentials: Credentials, *, registry_url: str) -> None:
        self._credentials = credentials
        self._registry_url = registry_url
        self._origin = origin(registry_url)
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
        self._realm: tuple[str, str] | None = None  # (realm, service) once challenged
        self._basic = False  # the registry asked for Basic

    def __repr__(self) -> str:
        return f"RegistryAuth({self._credentials!r})"

    # ----------------------------------------------------------------- flow

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin(str(request.url)) != self._origin:
            # another host (an upload Location, a CDN): it gets no credential and no
            # answer to its challenges, whatever it asks
            yield request
            return
        scopes = tuple(request.extensions.get(SCOPE, ()))
        known = self._known_header(scopes)
        if known:
            request.headers["Authorization"] = known
        response = yield request
        if response.status_code != 401:
            return
        challenges = parse_challenges(response.headers.get("www-authenticate"))
        bearer = _first(challenges, "bearer")
        if bearer is not None and "realm" in bearer.params:
            if self._credentials.registry_token:
                with self._lock:
                    self._realm = (bearer.params["realm"], bearer.params.get("service", ""))
                token = self._credentials.registry_token
            else:
                token = yield from self._fetch_token(bearer, scopes)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request
        elif _first(challenges, "basic") is not None and self._basic_header() and not known:
            with self._lock:
                self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request

    def _fetch_token(
        self, challenge: Challenge, scopes: tuple[str, ...]
    ) -> Generator[httpx.Request, httpx.Response, str]:
        realm = challenge.params["realm"]
        service = challenge.params.get("service", "")
        check_realm(realm, self._registry_url)
        wanted = merge_scopes([*challenge.params.get("scope", "").split(" "), *scopes])
        with self._lock:
            self._realm = (realm, service)
        response = yield self._token_request(realm, service, wanted)
        response.read()  # capped by the transport (LIMIT)
        if response.status_code != 200:
            raise AuthenticationError(self._token_refusal(realm, response.status_code),
                                      status=response.status_code, url=redact(realm))
        token, expires_in = _parse_token(response.content, realm)
        with self._lock:
            now = time.monotonic()  # drop expired tokens: one per scope adds up
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            self._tokens[(realm, service, wanted)] = (token, _expiry(expires_in))
            if scopes and wanted != scopes:  # also findable by what the client asked
                self._tokens[(realm, service, scopes)] = (token, _expiry(expires_in))
        return token

    def _token_refusal(self, realm: str, status: int) -> str:
        who = f"user {self._credentials.username!r}" if self._credentials.username else (
            "anonymous access")
        where = f"token server {redact(realm)}"
        if status in (401, 403):
            return f"{where} refused {who} for {self._registry_url} (HTTP {status})"
        # not a verdict on the credentials: the request or the server is at fault
        return (f"{where} could not issue a token to {who} for {self._registry_url} "
                f"(HTTP {status})")

    def _token_request(self, realm: str, service: str, scopes: tuple[str, ...]) -> httpx.Request:
        creds = self._credentials
        # REALM_ORIGIN: the transport refuses to follow this request to another origin
        extensions = {LIMIT: TOKEN_BODY_LIMIT, REALM_ORIGIN: origin(realm)}
        if creds.identity_token:  # OAuth2 refresh-token grant, as docker does
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "client_id": "reginsight", "service": service, "scope": " ".join(scopes)}
            return httpx.Request("POST", realm, data=form, extensions=extensions)
        params = [("service", service)] if service else []
        params += [("scope", scope) for scope in scopes]
        headers = {"Authorization": self._basic_header()} if self._basic_header() else {}
        return httpx.Request("GET", with_query(realm, params), headers=headers,
                             extensions=extensions)

    # -------------------------------------------------------------- caching

    def _known_header(self, scopes: tuple[str, ...]) -> str | None:
        """A credential to send before being asked, when one is known to fit."""
        with self._lock:
            if self._basic:
                return self._basic_header()
            if self._realm is None:
                return None
            if self._credentials.registry_token:
                return f"Bearer {self._credentials.registry_token}"
            if not scopes:
                return None
            cached = self._tokens.get((*self._realm, merge_scopes(scopes)))
            if cached is None:
                cached = self._tokens.get((*self._realm, scopes))
        if cached and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        return None

    def _basic_header(self) -> str | None:
        creds = self._credentials
        if not creds.username or creds.password is None:
            return None
        pair = f"{creds.username}:{creds.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _first(challenges: list[Challenge], scheme: str) -> Challenge | None:
    return next((c for c in challenges if c.scheme == scheme), None)


def _expiry(expires_in: float) -> float:
    # renew a little early: a token that expires in flight costs a 401 round trip
    return time.monotonic() + expires_in - min(30.0, expires_in * 0.1)


def _parse_token(body: bytes, realm: str) -> tuple[str, float]:
    doc = json_object(body)
    token = (doc.get("token") or doc.get("access_token")) if doc is not None else None
    if not isinstance(token, str) or not token:
        raise AuthenticationError(
            f"token server {redact(realm)} sent no token", status=200, url=redact(realm)
        )
    expires_in = doc.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or expires_in <= 0:
        expires_in = DEFAULT_EXPIRES_IN
    return token, float(expires_in)
