"""A proxy that makes the real registry speak like another one: the documented habits
of Docker Hub, GHCR, GitLab, Quay, ECR, Harbor and mirrors, one ``Dialect`` each.

A dialect may answer a request itself (``before``) or rewrite the registry's answer
(``after``). Every request is recorded as (method, path), so a test can say what the
client asked, how often, and what it never asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.fault_proxy import FaultProxy

Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Dialect:
    """``before(method, path)``: a reply instead of the registry's, or None.
    ``after(method, path, reply)``: the registry's reply, rewritten."""

    name: str
    before: Callable[[str, str], Reply | None] = lambda method, path: None
    after: Callable[[str, str, Reply], Reply] = lambda method, path, reply: reply


def _error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def no_catalog(status: int) -> Dialect:
    """Docker Hub (401), GitLab and GHCR (404), GHCR (405): no ``/v2/_catalog``."""
    body = {401: _error("UNAUTHORIZED", "authentication required"),
            404: b"404 page not found\n",
            405: _error("UNSUPPORTED", "The operation is unsupported.")}[status]
    headers = {"Content-Type": "application/json"} if status != 404 else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="registry"'
    return Dialect(f"no catalog ({status})", before=lambda method, path: (
        (status, dict(headers), body) if path.startswith("/v2/_catalog") else None))


def _is_manifest(path: str) -> bool:
    return "/manifests/" in path


def _rewrite_ping(method: str, path: str, reply: Reply) -> Reply:
    if path.split("?")[0] != "/v2/" or reply[0] != 200:
        return reply
    return 200, {}, b""


#: The spec's bare minimum on ``GET /v2/``: 200, no API-version header, no body.
BARE_PING = Dialect("bare 200 on /v2/", after=_rewrite_ping)


def _generic_type(method: str, path: str, reply: Reply) -> Reply:
    status, headers, body = reply
    if not _is_manifest(path) or status != 200 or method not in ("GET", "HEAD"):
        return reply
    kept = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return status, {**kept, "Content-Type": "application/json"}, body


#: Mirrors and some registries serve manifests as ``application/json``.
GENERIC_CONTENT_TYPE = Dialect("manifests as application/json", after=_generic_type)


def pull_budget(*, refuse_gets: bool, remaining: int = 0) -> Dialect:
    """Docker Hub once the pulls are spent: ``RateLimit-Remaining: 0`` on every
    manifest answer; HEADs (not counted) still 200; GETs 429 when ``refuse_gets``
    (the real thing), 200 when not (a mirror that passes the headers along).
    ``remaining`` > 0: a metered registry with pulls left."""
    spent = {"RateLimit-Limit": "100;w=21600",
             "RateLimit-Remaining": f"{remaining};w=21600",
             "Docker-RateLimit-Source": "127.0.0.1"}

    def after(method: str, path: str, reply: Reply) -> Reply:
        status, headers, body = reply
        if not _is_manifest(path):
            return reply
        if refuse_gets and method == "GET":
            return 429, {"Content-Type": "application/json", **spent}, _error(
                "TOOMANYREQUESTS", "You have reached your pull rate limit.")
        return status, {**headers, **spent}, body

    return Dialect("pull budget spent" + (", GETs refused" if refuse_gets else ""),
                   after=after)


def head_rate_limited(retry_after: str = "60") -> Dialect:
    """A registry that rate-limits HEADs of manifests but still serves GETs."""
    return Dialect("429 on HEAD", before=lambda method, path: (
        (429, {"Retry-After": retry_after}, b"") if method == "HEAD" and _is_manifest(path)
        else None))


def _repository_of(path: str, section: str) -> str:
    """``team/app`` of ``/v2/team/app/manifests/...`` (section "manifests" or "blobs")."""
    return path.split("?")[0].removeprefix("/v2/").rpartition(f"/{section}/")[0]


def keeps_tagged_manifest(kept: str) -> Dialect:
    """django-oci 0.0.17: a manifest PUT under a tag it already holds keeps the manifest
    there (``kept``) and answers 201 with a Location naming it, without
    Docker-Content-Digest. The registry behind never sees the PUT: ``kept`` stays."""
    def before(method: str, path: str) -> Reply | None:
        if method != "PUT" or not _is_manifest(path):
            return None
        return 201, {"Location": f"/v2/{_repository_of(path, 'manifests')}/manifests/{kept}"}, b""

    return Dialect("keeps the tagged manifest", before=before)


def names_stored_digest(other: str, *, section: str, header: bool, location: bool
                        ) -> Dialect:
    """A registry that stores the write (the registry behind does) but names ``other``
    for it in the 201: in its Docker-Content-Digest (``header``; else none is sent) and
    the Location (``location``; else the registry's stays). ``section``: "manifests"
    (a manifest PUT) or "blobs" (the PUT that closes an upload, a mount's POST)."""
    def after(method: str, path: str, reply: Reply) -> Reply:
        status, headers, body = reply
        if status != 201 or f"/{section}/" not in path or method not in ("PUT", "POST"):
            return reply
        kept = {k: v for k, v in headers.items()
                if k.lower() not in ("docker-content-digest", "location")}
        if header:
            kept["Docker-Content-Digest"] = other
        located = next((v for k, v in headers.items() if k.lower() == "location"), None)
        if location:
            located = f"/v2/{_repository_of(path, section)}/{section}/{other}"
        if located is not None:
            kept["Location"] = located
        return status, kept, body

    return Dialect(f"names {other} for the {section} stored", after=after)


@dataclass
class DialectProxy(FaultProxy):
    """A FaultProxy that injects no faults, only its ``dialects``, in order."""

    dialects: tuple[Dialect, ...] = ()
    rate: float = 0.0
    seen: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._seen_lock = threading.Lock()

    def count(self, method: str, contains: str = "") -> int:
        with self._seen_lock:
            return sum(1 for m, p in self.seen if m == method and contains in p)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        with self._seen_lock:
            self.seen.append((method, path))
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        for dialect in self.dialects:
            reply = dialect.before(method, path)
            if reply is not None:
                self._reply(handler, *reply)
                return
        upstream, out = self._forward(handler, body)
        reply = (upstream.status_code, out, upstream.content if method != "HEAD" else b"")
        for dialect in self.dialects:
            reply = dialect.after(method, path, reply)
        status, out, data = reply
        declared = upstream.headers.get("content-length") if method == "HEAD" else None
        self._reply(handler, status, out, data,
                    declared=int(declared) if declared and data == b"" else None)
