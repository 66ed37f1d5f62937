"""Small S3 objects read with the least work a request.

A scan reads tens of thousands of small objects (manifests, configs), and botocore's
request pipeline costs about twice the CPU of the request itself. Here the s3fs
client only presigns each GET (its credentials, endpoint, addressing style and
signature version, whatever they are configured to be), and aiohttp, which it runs
on anyway, fetches the URL. Configurations this does not cover (customer-key
encryption, other extra request arguments) keep botocore's own call.

Every wait is bounded (connect, each read, the whole request); a request that fails
on the way (a dropped connection, a 5xx) is tried again, a few times.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

#: tries of one request, and the pause before each retry (seconds, doubled each time)
ATTEMPTS, BACKOFF = 4, 0.2
#: a presigned URL's life: far longer than a scan's request waits
EXPIRES = 3600
_RETRIED = {500, 502, 503, 504}


class PresignedReads:
    """``get(key, limit)`` over one aiohttp session on the s3fs loop; use as an async
    context manager (the session is closed on exit)."""

    def __init__(self, fs: Any, bucket: str, *, connections: int) -> None:
        self.fs, self.bucket, self.connections = fs, bucket, connections
        self.session: Any = None
        self.client: Any = None

    @staticmethod
    def usable(fs: Any) -> bool:
        """Whether every GET s3fs would send is a plain one (no customer keys or other
        extra arguments a URL cannot carry)."""
        return not getattr(fs, "s3_additional_kwargs", None)

    async def __aenter__(self) -> PresignedReads:
        import aiohttp

        await self.fs.set_session()
        self.client = self.fs.s3
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.connections, ssl=self._tls()),
            timeout=aiohttp.ClientTimeout(total=120, sock_connect=30, sock_read=60),
            auto_decompress=False, trust_env=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    def _tls(self) -> ssl.SSLContext | bool:
        """What botocore would verify the endpoint's certificate against."""
        verify = (getattr(self.fs, "client_kwargs", None) or {}).get("verify")
        if verify is False:
            return False
        bundle = verify if isinstance(verify, str) else os.environ.get("AWS_CA_BUNDLE")
        return ssl.create_default_context(cafile=bundle) if bundle else True

    async def get(self, key: str, limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of the object (one more tells it is larger);
        FileNotFoundError, PermissionError or OSError when S3 says no."""
        import aiohttp

        params = {"Bucket": self.bucket, "Key": key, **(self.fs.req_kw or {})}
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(BACKOFF * 2 ** (attempt - 1))
            url = await self.client.generate_presigned_url("get_object", Params=params,
                                                           ExpiresIn=EXPIRES)
            try:
                async with self.session.get(url, headers={"Range": f"bytes=0-{limit}"},
                                            allow_redirects=False) as answer:
                    if answer.status in (200, 206):
                        return await _read(answer.content, limit + 1)
                    if answer.status == 416:  # a range of an empty object
                        return b""
                    if answer.status == 404:
                        raise FileNotFoundError(f"no such object: {key}")
                    if answer.status == 403:
                        raise PermissionError(f"access denied to {key}")
                    if answer.status not in _RETRIED or attempt == ATTEMPTS - 1:
                        raise OSError(f"S3 answered {answer.status} {answer.reason} for {key}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt == ATTEMPTS - 1:
                    raise OSError(f"cannot read {key}: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")  # every attempt returns, raises or retries


async def _read(stream: Any, most: int) -> bytes:
    chunks, size = [], 0
    while size < most and (chunk := await stream.read(most - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
