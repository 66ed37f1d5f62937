"""``WWW-Authenticate`` challenges (RFC 7235), parsed without ever raising."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


_TCHARS = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_PARAM = re.compile(r'[\s,]*(' + _TCHARS + r')\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_SCHEME = re.compile(r"[\s,]*(" + _TCHARS + r")")


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` header (RFC 7235) into challenges.

    Quoted values may hold commas and escapes; unknown schemes are kept. Malformed
    input gives the challenges read so far, never an exception.
    """
    challenges: list[Challenge] = []
    text, pos = header or "", 0
    scheme: str | None = None
    params: dict[str, str] = {}
    while pos < len(text):
        param = _PARAM.match(text, pos) if scheme else None
        if param:  # name=value belongs to the current challenge
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params.setdefault(param.group(1).lower(), value)
            pos = param.end()
            continue
        token = _SCHEME.match(text, pos)
        if not token:
            break
        if scheme:
            challenges.append(Challenge(scheme, MappingProxyType(params)))
        scheme, params, pos = token.group(1).lower(), {}, token.end()
    if scheme:
        challenges.append(Challenge(scheme, MappingProxyType(params)))
    return challenges
