"""When and how long to wait before trying a request again; rate-limit budgets.

One :class:`HostBackoff` per client is shared by all its threads: when a host says
429 or 503, every request to that host waits, not just the one that was told. A
metered registry's pulls (Docker Hub: manifest GETs) have a lane of their own: a
spent pull budget holds back pulls only, never HEADs or blob downloads.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from .._errors import RateLimitWarning
from .protocol import RateLimit, parse_rate_limit

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


#: one attempt, no retry: for a caller that retries by itself, or a test
NO_RETRY = RetryPolicy(attempts=1)
#: What a client uses unless given ``retry=``.
DEFAULT_POLICY = RetryPolicy()


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
    """Per-host backoff shared by every thread of one client.

    Waits are kept per lane: a host's name for all its requests, and
    ``pulls_lane(host)`` for its metered pulls alone.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self.rate_limits: dict[str, RateLimit] = {}
        self.retries = 0  # how many retries this client made, for reports
        self.waited = 0.0  # seconds its requests were held back, all threads together

    @staticmethod
    def pulls_lane(host: str) -> str:
        return host + " pulls"

    def wait(self, *lanes: str) -> None:
        with self._lock:
            until = max((self._not_before.get(lane, 0.0) for lane in lanes), default=0.0)
        delay = min(until - time.monotonic(), self.policy.max_retry_after)
        if delay > 0:
            with self._lock:
                self.waited += delay
            time.sleep(delay)

    def failure(self, lane: str, retry_after: float | None) -> None:
        policy = self.policy
        with self._lock:
            self.retries += 1
            failures = self._failures.get(lane, 0) + 1
            self._failures[lane] = failures
            if retry_after is not None:
                delay = min(retry_after, policy.max_retry_after)
            else:
                delay = min(policy.cap, policy.base * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not secrecy
            until = time.monotonic() + delay
            self._not_before[lane] = max(self._not_before.get(lane, 0.0), until)

    def resumptions(self, host: str) -> range:
        """Attempt numbers for a loop that resumes its own work (a download from the
        byte where it broke, an upload chunk from the registry's offset): the policy's
        ``attempts``, the first try included. Call :meth:`retry` before each resumption."""
        return range(1, self.policy.attempts + 1)

    def retry(self, host: str) -> None:
        """Count a failure on ``host`` and wait out its backoff before trying again."""
        self.failure(host, None)
        self.wait(host)

    def success(self, lane: str) -> None:
        with self._lock:
            self._failures[lane] = 0

    def observe(self, host: str, headers: Mapping[str, str]) -> RateLimit | None:
        """Note the ``RateLimit-*`` headers of any answer. Only says when the pull
        budget runs out (a warning, once until it is back): an answer that came is
        never held back, and what does not count against the budget goes on."""
        rate = parse_rate_limit(headers)
        if rate is None:
            return None
        with self._lock:
            before = self.rate_limits.get(host)
            self.rate_limits[host] = rate
        newly_spent = rate.spent and not (before is not None and before.spent)
        if newly_spent:
            # once per spell of an empty budget, decided here: a fresh registry keeps
            # Python's filter from hiding the next spell (same text, same line)
            warnings.warn_explicit(
                f"{host}: the pull budget is spent ({rate.describe()}); manifest GETs will "
                "be refused until it is back; HEADs and blob downloads go on",
                RateLimitWarning, filename=__file__, lineno=0, module=__name__,
                registry={})
        return rate

    def metered(self, host: str) -> bool:
        """True once ``host`` has sent ``RateLimit-*``: it counts pulls."""
        return host in self.rate_limits

    def budget_spent(self, host: str) -> bool:
        rate = self.rate_limits.get(host)
        return rate is not None and rate.spent
