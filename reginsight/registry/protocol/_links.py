"""``Link`` headers: the next page of a paginated listing, and only on the same origin."""

from __future__ import annotations

import re
from urllib.parse import urljoin

from ..._errors import ProtocolViolation
from .._hosts import redact, same_origin

# <target> then ;-separated params whose quoted values may hold commas and semicolons.
# The target holds no "<": with [^>]* every "<" of a header without ">" scanned to its
# end, quadratic (100 KiB of "<" took half a minute); a URI-reference has no "<".
_LINK_RE = re.compile(
    r'<([^<>]*)>((?:\s*;\s*[^;,="\s]+\s*(?:=\s*(?:"(?:[^"\\]|\\.)*"|[^;,"]*))?)*)'
)
_PARAM_RE = re.compile(r';\s*([^;,="\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)')


def next_link(link_header: str | None, request_url: str) -> str | None:
    """The absolute URL of the ``rel="next"`` page, or None on the last page.

    Relative targets resolve against the request URL, as the registry sends them.
    A target on another scheme, host or port is refused (ProtocolViolation): a
    hostile registry must not steer the client, and its credentials, elsewhere.
    """
    if not link_header:
        return None
    for match in _LINK_RE.finditer(link_header):
        target, params = match.group(1).strip(), match.group(2)
        rels = {
            value.strip('"').lower()
            for name, value in _PARAM_RE.findall(params)
            if name.lower() == "rel"
        }
        # rel may hold several space-separated relation types
        if "next" not in {r for rel in rels for r in rel.split()}:
            continue
        try:
            absolute = urljoin(request_url, target)
            foreign = not same_origin(absolute, request_url)
        except ValueError:
            # urlsplit refuses some targets ("http://[x", a port out of range or not
            # a number): a malformed Link is the server's fault, not a crash of ours
            raise ProtocolViolation(
                f"registry at {redact(request_url)} sent a malformed Link target "
                f"{target[:80]!r}") from None
        if foreign:
            raise ProtocolViolation(
                f"registry at {redact(request_url)} sent a Link to another origin "
                f"({redact(absolute)}); refused"
            )
        return absolute
    return None
