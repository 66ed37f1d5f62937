"""The cleanup policy's vocabulary, shared by :func:`reginsight.plan_cleanup`, the
command line, the report and the explorer: the suggested rules, ages such as ``90d``,
the protect regex. Standard library only, so that ``reginsight --help`` and a flag
checked before a long crawl need no pandas."""

from __future__ import annotations

import datetime as dt
import re
from types import MappingProxyType

from ._errors import PlanError

#: the rules the report, the explorer and ``reginsight cleanup`` start from
SUGGESTED_POLICY = MappingProxyType(
    {"keep_last": 3, "older_than": "180d", "protect": r"^(latest|stable)$"})

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")
#: an age of nothing ("0d", "0"): older than nothing is every image, as no age rule
_NO_AGE = re.compile(r"\s*0+(?:\.0*)?\s*[smhdw]?\s*")


def age_limit(older_than: str | dt.timedelta | None) -> dt.timedelta | None:
    """``"90d"``, ``"12h"``, ``"4w"`` (s, m, h, d, w) or a timedelta, as a positive
    timedelta; None stays None. A bare number is refused (pandas would read ``"90"`` as
    90 nanoseconds and plan to delete nearly everything): PlanError."""
    if older_than is None:
        return None
    if isinstance(older_than, str):
        parts = _AGE.fullmatch(older_than)
        if parts is None:
            raise PlanError(f"older_than={older_than!r}: give a number and a unit, "
                            "e.g. '90d', '12h', '4w'")
        try:
            limit = dt.timedelta(**{_UNITS[parts.group(2)]: float(parts.group(1))})
        except OverflowError:
            raise PlanError(f"older_than={older_than!r} is too long") from None
    elif isinstance(older_than, dt.timedelta):
        limit = older_than
    else:
        raise PlanError(f"older_than={older_than!r}: give a timedelta or e.g. '90d'")
    if limit <= dt.timedelta(0):
        raise PlanError(f"older_than={older_than!r} must be a positive duration")
    return limit


def protect_pattern(protect: str | re.Pattern[str]) -> re.Pattern[str]:
    """The protect rule as a compiled regex (searched in the tag name); PlanError when
    it is not one."""
    try:
        return re.compile(protect)
    except re.error as exc:
        raise PlanError(f"protect={protect!r} is not a regular expression: {exc}") from None


def policy_flags(rules: dict[str, object]) -> list[str]:
    """The command line's policy flags saying exactly ``rules`` (plan_cleanup's
    keep_last, older_than, protect): each written out, as the flags' defaults are the
    suggested policy ("0d" and "" turn a rule off, as :func:`policy_from_text` reads)."""
    keep_last, older_than, protect = rules["keep_last"], rules["older_than"], rules["protect"]
    return ["--keep-last", str(0 if keep_last is None else keep_last),
            "--older-than", str(older_than or "0d"), "--protect", str(protect or "")]


def policy_from_text(*, keep_last: int | None, older_than: str | None, protect: str | None
                     ) -> dict[str, object]:
    """The rules as typed in a flag or a text box, as :func:`reginsight.plan_cleanup`'s
    arguments: an empty or zero age (``""``, ``"0d"``) is no age rule, an empty protect
    no protection. Checked here (PlanError), before anything is read."""
    age = (older_than or "").strip()
    age = None if not age or _NO_AGE.fullmatch(age) else age
    age_limit(age)
    if protect:
        protect_pattern(protect)
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise PlanError(f"keep_last={keep_last!r} must be a non-negative integer")
    return {"keep_last": keep_last, "older_than": age, "protect": protect or None}
