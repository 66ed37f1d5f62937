"""S3 requests with the least work each: listings and small reads.

A scan lists a page of 1,000 keys per request and reads tens of thousands of small
objects (manifests, configs); botocore's request pipeline costs about twice the CPU
of a small read, and its parse of a listing page seven times that of ElementTree.
Here the s3fs client only presigns each request (its credentials, endpoint,
addressing style and signature version, whatever they are configured to be), aiohttp,
which it runs on anyway, sends it, and a listing's XML is parsed directly.
Configurations this does not cover (customer-key encryption, other extra request
arguments) keep botocore's own calls.

Every wait is bounded (connect, each read, the whole request); a request that fails
on the way (a dropped connection, a 5xx) is tried again, a few times.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from typing import Any
from urllib.parse import unquote_plus
from xml.etree import ElementTree

#: tries of one request, and the pause before each retry (seconds, doubled each time)
ATTEMPTS, BACKOFF = 4, 0.2
#: a presigned URL's life: far longer than a scan's request waits
EXPIRES = 3600
#: seconds a request may take: to connect, between two reads, in all
CONNECT_TIMEOUT, READ_TIMEOUT, TIMEOUT = 30, 60, 120
_RETRIED = {500, 502, 503, 504}
#: the bytes a listing page of 1,000 keys may take (keys of 1,024 bytes, escaped)
LISTING_LIMIT = 8 * 2**20


class PresignedRequests:
    """``get(key, last)`` and ``list_objects(**params)`` over one aiohttp session on
    the s3fs loop; use as an async context manager (the session is closed on exit)."""

    def __init__(self, fs: Any, bucket: str, *, connections: int) -> None:
        self.fs, self.bucket, self.connections = fs, bucket, connections
        self.session: Any = None
        self.client: Any = None
        self.proxy: Any = None
        self.proxy_auth: Any = None

    @staticmethod
    def usable(fs: Any) -> bool:
        """Whether ``fs`` is s3fs's and every request it would send is a plain one (no
        customer keys or other extra arguments a URL cannot carry, no proxy given to
        botocore rather than by the environment)."""
        config = getattr(fs, "config_kwargs", None) or {}
        return (is_s3(fs) and not getattr(fs, "s3_additional_kwargs", None)
                and not config.get("proxies") and not config.get("proxies_config"))

    async def __aenter__(self) -> PresignedRequests:
        import aiohttp
        import yarl

        await self.fs.set_session()
        self.client = self.fs.s3
        config = getattr(self.fs, "config_kwargs", None) or {}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, ssl=self._tls()),
            timeout=aiohttp.ClientTimeout(  # botocore's own timeouts, when given
                total=TIMEOUT, sock_connect=config.get("connect_timeout", CONNECT_TIMEOUT),
                sock_read=config.get("read_timeout", READ_TIMEOUT)),
            auto_decompress=False)
        # a proxy the environment names, as botocore would use (looked up once: aiohttp's
        # trust_env reads the environment and ~/.netrc again for every request)
        try:
            self.proxy, self.proxy_auth = aiohttp.helpers.get_env_proxy_for_url(
                yarl.URL(self.client.meta.endpoint_url))
        except LookupError:
            self.proxy = self.proxy_auth = None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    def _tls(self) -> ssl.SSLContext | bool:
        """What botocore would verify the endpoint's certificate against."""
        if not str(self.client.meta.endpoint_url).startswith("https:"):
            return True  # no TLS: no context to build
        verify = (getattr(self.fs, "client_kwargs", None) or {}).get("verify")
        if verify is False:
            return False
        bundle = verify if isinstance(verify, str) else os.environ.get("AWS_CA_BUNDLE")
        return ssl.create_default_context(cafile=bundle) if bundle else True

    async def get(self, key: str, last: int) -> bytes:
        """The object's bytes up to offset ``last`` (``last`` + 1 at most: ask one more
        than wanted to tell a larger object); FileNotFoundError, PermissionError or
        OSError when S3 says no."""
        params = {"Bucket": self.bucket, "Key": key, **(self.fs.req_kw or {})}
        return await self._send("get_object", params, key, last + 1,
                                {"Range": f"bytes=0-{last}"})

    async def list_objects(self, **params: Any) -> dict[str, Any]:
        """One ListObjectsV2 page, as botocore gives it (the fields a walk reads:
        Contents with Key, Size, LastModified as text, ETag; CommonPrefixes;
        IsTruncated; NextContinuationToken)."""
        params = {"Bucket": self.bucket, "EncodingType": "url", **params,
                  **(self.fs.req_kw or {})}  # a requester-pays bucket
        try:
            raw = await self._send("list_objects_v2", params, params.get("Prefix", ""),
                                   LISTING_LIMIT, {})
        except FileNotFoundError:  # a listing finds nothing only when there is no bucket
            raise FileNotFoundError(f"no such bucket: {self.bucket}") from None
        if len(raw) >= LISTING_LIMIT:
            raise OSError(f"a listing page of more than {LISTING_LIMIT:,} bytes")
        return parse_listing(raw)

    async def _send(self, operation: str, params: dict[str, Any], what: str, most: int,
                    headers: dict[str, str]) -> bytes:
        import aiohttp

        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(BACKOFF * 2 ** (attempt - 1))
            url = await self.client.generate_presigned_url(operation, Params=params,
                                                           ExpiresIn=EXPIRES)
            try:
                async with self.session.get(url, headers=headers, proxy=self.proxy,
                                            proxy_auth=self.proxy_auth,
                                            allow_redirects=False) as answer:
                    if answer.status in (200, 206):
                        return await _read(answer.content, most)
                    if answer.status == 416:  # a range of an empty object
                        return b""
                    if answer.status == 404:
                        raise FileNotFoundError(f"no such object: {what}")
                    if answer.status == 403:
                        raise PermissionError(f"access denied to {what}")
                    if answer.status not in _RETRIED or attempt == ATTEMPTS - 1:
                        raise OSError(f"S3 answered {answer.status} {answer.reason} "
                                      f"for {what}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise OSError(f"cannot reach S3 for {what}: {type(exc).__name__}: "
                                  f"{unsigned(str(exc))}") from None
        raise AssertionError("unreachable")  # every attempt returns, raises or retries


def is_s3(fs: Any) -> bool:
    """Whether ``fs`` is s3fs's filesystem."""
    return type(fs).__module__.split(".")[0] == "s3fs"


def unsigned(text: str) -> str:
    """``text`` without the query of any URL in it: a presigned URL's query is its
    signature (and a session token), valid for an hour."""
    return _QUERY.sub("?…", text)


_QUERY = re.compile(r"\?[^\s'\"<>]*")


def parse_listing(raw: bytes) -> dict[str, Any]:
    """A ListObjectsV2 answer (``EncodingType=url``) as botocore's dict, for the
    fields a walk reads; anything that is no such answer is a ValueError."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:  # no S3 answer declares entities
        raise ValueError("not a listing: it declares a document type")
    try:
        root = ElementTree.fromstring(raw)  # noqa: S314 -- no entities (above), capped
    except ElementTree.ParseError as exc:
        raise ValueError(f"not a listing: {exc}") from None
    namespace = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{namespace}ListBucketResult":
        raise ValueError(f"not a listing: <{root.tag}>")
    encoded = root.findtext(f"{namespace}EncodingType") == "url"

    def text(element: Any, name: str) -> str:
        value = element.findtext(f"{namespace}{name}") or ""
        return unquote_plus(value) if encoded and name in ("Key", "Prefix") else value

    answer: dict[str, Any] = {
        "Contents": [{"Key": text(item, "Key"), "Size": int(text(item, "Size") or 0),
                      "LastModified": text(item, "LastModified"),
                      "ETag": text(item, "ETag")}
                     for item in root.iterfind(f"{namespace}Contents")],
        "CommonPrefixes": [{"Prefix": text(item, "Prefix")}
                           for item in root.iterfind(f"{namespace}CommonPrefixes")],
        "IsTruncated": root.findtext(f"{namespace}IsTruncated") == "true"}
    if token := root.findtext(f"{namespace}NextContinuationToken"):
        answer["NextContinuationToken"] = token
    return answer


async def _read(stream: Any, most: int) -> bytes:
    chunks, size = [], 0
    while size < most and (chunk := await stream.read(most - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
