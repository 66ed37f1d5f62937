"""What a registry says of its rate limit, and how to say it to a user.

Docker Hub meters pulls: every manifest GET spends one, HEADs and blob downloads do
not. Each answer carries ``RateLimit-Limit: 100;w=21600`` and
``RateLimit-Remaining: 76;w=21600`` (a rolling window, in seconds); some servers add
the IETF draft's ``RateLimit-Reset`` (seconds until the budget is back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """What a registry said of its rate limit (Docker Hub's ``RateLimit-*`` headers).

    ``window`` and ``reset`` are seconds; ``reset`` only when the server sent it.
    """

    limit: int | None
    remaining: int | None
    window: int | None
    reset: int | None = None

    @property
    def spent(self) -> bool:
        """True when no request of the metered kind is left."""
        return self.remaining == 0

    def describe(self) -> str:
        """The budget in words, e.g. "0 of 100 pulls left per 6 h window; back in
        at most 6 h"."""
        left = f"{self.remaining} of {self.limit}" if self.limit is not None else (
            f"{self.remaining}")
        text = f"{left} pulls left"
        if self.window:
            text += f" per {_duration(self.window)} window"
        if self.reset is not None:
            text += f"; it resets in {_duration(self.reset)}"
        elif self.spent and self.window:
            # a rolling window frees pulls as old ones age out: at most one window
            text += f"; pulls come back within {_duration(self.window)}"
        return text


# At most 18 digits and not followed by more: int() refuses a string of over 4300
# digits (ValueError), and no budget, window or reset is near 10**18. A longer number
# is no number this header means: the server said nothing of it.
_RATE = re.compile(r"\s*(\d{1,18})(?!\d)\s*(?:;\s*w\s*=\s*(\d{1,18})(?!\d))?")


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """``RateLimit-Limit: 100;w=21600``, ``RateLimit-Remaining: 76;w=21600`` and, if
    sent, ``RateLimit-Reset: 3600``. ``headers`` looks names up in lower case (an
    Answer's headers, or httpx.Headers). None when the server says nothing."""
    remaining = _RATE.match(headers.get("ratelimit-remaining", ""))
    if remaining is None:
        return None
    limit = _RATE.match(headers.get("ratelimit-limit", ""))
    window = remaining.group(2) or (limit.group(2) if limit else None)
    reset = _RATE.match(headers.get("ratelimit-reset", ""))
    return RateLimit(limit=int(limit.group(1)) if limit else None,
                     remaining=int(remaining.group(1)),
                     window=int(window) if window else None,
                     reset=int(reset.group(1)) if reset else None)


def _duration(seconds: int) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
