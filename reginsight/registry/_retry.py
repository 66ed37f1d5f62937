"""When and how long to wait before trying a request again; rate-limit headers.

One :class:`HostBackoff` per client is shared by all its threads: when a host says
429 or 503, every request to that host waits, not just the one that was told.
"""

from __future__ import annotations

import random
import re
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

#: Statuses worth another try: the server was busy, not wrong.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: For POST/PATCH only these: the server refused before doing anything.
REFUSED_STATUSES = frozenset({408, 429, 503})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Connection failures that happen before a request is delivered.
NOT_DELIVERED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    ``attempts`` counts the first try; the n-th retry waits ``base * 2**(n-1)`` seconds
    (at most ``cap``), times a jitter in [0.5, 1.5). A ``Retry-After`` from the server
    is used instead, up to ``max_retry_after`` seconds.
    """

    attempts: int = 4
    base: float = 0.3
    cap: float = 30.0
    max_retry_after: float = 60.0


NO_RETRY = RetryPolicy(attempts=1)
#: What a client uses unless given ``retry=``.
DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class RateLimit:
    """What a registry said of its rate limit (Docker Hub's ``RateLimit-*`` headers)."""

    limit: int | None
    remaining: int | None
    window: int | None  # seconds


_RATE = re.compile(r"\s*(\d+)\s*(?:;\s*w\s*=\s*(\d+))?")


def parse_rate_limit(headers: httpx.Headers) -> RateLimit | None:
    """``RateLimit-Limit: 100;w=21600`` and ``RateLimit-Remaining: 76;w=21600``."""
    remaining = _RATE.match(headers.get("ratelimit-remaining", ""))
    if remaining is None:
        return None
    limit = _RATE.match(headers.get("ratelimit-limit", ""))
    window = remaining.group(2) or (limit.group(2) if limit else None)
    return RateLimit(limit=int(limit.group(1)) if limit else None,
                     remaining=int(remaining.group(1)),
                     window=int(window) if window else None)


def replayable(request: httpx.Request) -> bool:
    """True when the request body can be sent again (bytes, or a re-iterable body)."""
    return isinstance(request.stream, httpx.ByteStream) or getattr(
        request.stream, "replayable", False)


def _tls_failure(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, ssl.SSLError):
            return True
        error = error.__cause__ or error.__context__
    return False


def may_retry(request: httpx.Request, *, status: int | None = None,
              error: Exception | None = None) -> bool:
    """Whether a failed exchange may be tried again at all (attempts aside).

    Never: a body that cannot be replayed, a TLS failure (a bad certificate stays bad).
    """
    if not replayable(request) or _tls_failure(error):
        return False
    idempotent = request.method in IDEMPOTENT
    if status is not None:
        return status in (RETRY_STATUSES if idempotent else REFUSED_STATUSES)
    return idempotent or isinstance(error, NOT_DELIVERED)


class HostBackoff:
    """Per-host backoff shared by every thread of one client."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self.rate_limits: dict[str, RateLimit] = {}
        self.retries = 0  # how many retries this client made, for reports

    def wait(self, host: str) -> None:
        with self._lock:
            delay = self._not_before.get(host, 0.0) - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, self.policy.max_retry_after))

    def failure(self, host: str, retry_after: float | None) -> None:
        policy = self.policy
        with self._lock:
            self.retries += 1
            failures = self._failures.get(host, 0) + 1
            self._failures[host] = failures
            if retry_after is not None:
                delay = min(retry_after, policy.max_retry_after)
            else:
                delay = min(policy.cap, policy.base * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not secrecy
            until = time.monotonic() + delay
            self._not_before[host] = max(self._not_before.get(host, 0.0), until)

    def resumptions(self, host: str) -> range:
        """Attempt numbers for a loop that resumes its own work (a download from the
        byte where it broke, an upload chunk from the registry's offset): the policy's
        ``attempts``, the first try included. Call :meth:`retry` before each resumption."""
        return range(1, self.policy.attempts + 1)

    def retry(self, host: str) -> None:
        """Count a failure on ``host`` and wait out its backoff before trying again."""
        self.failure(host, None)
        self.wait(host)

    def success(self, host: str, response: Any = None) -> None:
        with self._lock:
            self._failures[host] = 0
        if response is not None:
            rate = parse_rate_limit(response.headers)
            if rate is not None:
                with self._lock:
                    self.rate_limits[host] = rate
                if rate.remaining == 0 and rate.limit and rate.window:
                    # out of budget: pace requests instead of walking into 429s
                    with self._lock:
                        pace = min(self.policy.cap, rate.window / rate.limit)
                        self._not_before[host] = time.monotonic() + pace
